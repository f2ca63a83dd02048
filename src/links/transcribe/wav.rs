//! The duration of a WAV recording from its header alone (RIFF `fmt ` and `data` chunks):
//! what the `deepgram` vendor reads for a dialog without `duration`, and what tells the
//! `openai` vendor whether a recording must be split.

/// Bytes of a WAV file enough to hold its header in practice (chunks before `data`).
pub const HEADER_BYTES: usize = 64 * 1024;

/// Seconds of audio the header describes: the `data` chunk's size over the byte rate. `None`
/// when `head` is not the start of a PCM-style WAV file.
pub fn duration(head: &[u8]) -> Option<f64> {
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut byte_rate: Option<u32> = None;
    while at + 8 <= head.len() {
        let id = &head[at..at + 4];
        let size = u32::from_le_bytes(head[at + 4..at + 8].try_into().ok()?);
        let body = at + 8;
        match id {
            b"fmt " => {
                let rate = head.get(body + 8..body + 12)?;
                byte_rate = Some(u32::from_le_bytes(rate.try_into().ok()?));
            }
            b"data" => {
                let rate = byte_rate.filter(|r| *r > 0)?;
                return Some(f64::from(size) / f64::from(rate));
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body + size as usize + (size as usize & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mono 16-bit WAV header of `samples` samples at `rate` Hz, with a `LIST` chunk first.
    pub fn header(rate: u32, samples: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + 12 + samples * 2).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(b"abc\0");
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(samples * 2).to_le_bytes());
        out
    }

    #[test]
    fn the_duration_is_read_from_the_header() {
        assert_eq!(duration(&header(8000, 8000 * 90)), Some(90.0));
        assert_eq!(duration(&header(16000, 8000)), Some(0.5));
        assert_eq!(duration(b"ID3\x03 not a wav"), None);
        assert_eq!(duration(&header(8000, 10)[..30]), None);
    }
}
