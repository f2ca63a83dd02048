//! "Did you mean …?" for misspelt keys.

/// The candidate closest to `word` by edit distance, when it is close enough to be a likely
/// typo (at most two edits, or a third of the word's length for long words).
pub fn nearest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|candidate| (distance(&word.to_lowercase(), candidate), *candidate))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// Edit distance counting a swap of two neighbouring characters as one edit (optimal string
/// alignment), since swapped letters are the commonest typo.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between the first i characters of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: &[&str] = &[
        "links",
        "storages",
        "chains",
        "tracers",
        "followers",
        "ingress_auth",
    ];

    #[test]
    fn typos_find_their_key() {
        assert_eq!(nearest("storage", TOP), Some("storages"));
        assert_eq!(nearest("chian", TOP), Some("chains"));
        assert_eq!(nearest("Links", TOP), Some("links"));
        assert_eq!(nearest("ingress-auth", TOP), Some("ingress_auth"));
    }

    #[test]
    fn unrelated_words_find_nothing() {
        assert_eq!(nearest("database", TOP), None);
        assert_eq!(nearest("x", TOP), None);
    }
}
