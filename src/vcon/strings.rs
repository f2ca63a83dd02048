//! JSON string helpers shared by the scanner and the view: the fast search through a string's
//! plain characters, and decoding escapes.
//!
//! vCons carry long strings (base64 recordings, transcripts), so both passes spend most of
//! their time inside strings; looking at eight bytes at a time there makes them several times
//! faster than a byte loop.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The index of the first byte at or after `from` that is `"`, `\` or a control character
/// (below 0x20), or `bytes.len()` when there is none.
pub(crate) fn find_special(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        // The classic "has a zero byte" test, on the word XORed with each sought byte; and bytes
        // below 0x20 are those for which subtracting 0x20 borrows without the high bit set.
        // Only the lowest flagged byte is exact, which is the one wanted.
        let quote = has_zero_byte(word ^ (ONES * u64::from(b'"')));
        let backslash = has_zero_byte(word ^ (ONES * u64::from(b'\\')));
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
        let found = quote | backslash | control;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&byte) = bytes.get(at) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            return at;
        }
        at += 1;
    }
    bytes.len()
}

fn has_zero_byte(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGH_BITS
}

/// Decode the escapes of a string's content (without its quotes) that the scanner has already
/// checked; anything impossible there becomes U+FFFD rather than a panic.
pub(crate) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next() {
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => {
                let high = hex_unit(&mut chars);
                if (0xD800..0xDC00).contains(&high) {
                    // Skip the `\u` of the low surrogate the scanner has seen follow.
                    chars.next();
                    chars.next();
                    let low = hex_unit(&mut chars);
                    char::from_u32(0x10000 + ((high - 0xD800) << 10) + low.wrapping_sub(0xDC00))
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                } else {
                    char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            }
            Some(other) => other,
            None => break,
        };
        out.push(decoded);
    }
    out
}

fn hex_unit(chars: &mut std::str::Chars<'_>) -> u32 {
    chars
        .by_ref()
        .take(4)
        .fold(0, |unit, c| unit * 16 + c.to_digit(16).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(bytes: &[u8], from: usize) -> usize {
        (from..bytes.len())
            .find(|&i| bytes[i] == b'"' || bytes[i] == b'\\' || bytes[i] < 0x20)
            .unwrap_or(bytes.len())
    }

    #[test]
    fn finds_the_first_special_byte_like_a_byte_loop() {
        let samples: &[&[u8]] = &[
            b"",
            b"abc",
            b"abcdefgh\"",
            b"abcdefghijklmnop\\x",
            b"\x7f\x80\xff\xc3\xa9 aaaaaaaaaaaaaa\x1f",
            b"aaaaaaa\"bbbbbbbb\"",
            b"\x21\x21\x21\x21\x21\x21\x21\x21\x21\x20\x00",
            "ééééééééééé😀😀😀\"".as_bytes(),
        ];
        for sample in samples {
            for from in 0..=sample.len() {
                assert_eq!(
                    find_special(sample, from),
                    naive(sample, from),
                    "{sample:?} from {from}"
                );
            }
        }
        // Every byte value at every position of a word.
        for byte in 0..=255u8 {
            for position in 0..16 {
                let mut sample = vec![b'a'; 16];
                sample[position] = byte;
                assert_eq!(
                    find_special(&sample, 0),
                    naive(&sample, 0),
                    "{byte} at {position}"
                );
            }
        }
    }

    #[test]
    fn unescapes_every_form() {
        assert_eq!(
            unescape(r#"a\"b\\c\/d\b\f\n\r\t"#),
            "a\"b\\c/d\u{8}\u{c}\n\r\t"
        );
        assert_eq!(unescape(r"caf\u00e9 \u00E9"), "café é");
        assert_eq!(unescape(r"\ud83d\ude00"), "😀");
        assert_eq!(unescape("plain é"), "plain é");
    }
}
