//! Decoding the base64url parts of the signed and encrypted forms (vcon.md §4): a JWS payload
//! (the unsigned vCon's JSON text, or its gzip) and a JWE protected header.

use std::io::Read;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use flate2::read::MultiGzDecoder;

/// base64url with or without `=` padding, as JOSE libraries differ on it.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

const GZIP_MAGIC: &[u8] = &[0x1F, 0x8B];

/// Decode base64url text; `None` when it is not base64url.
pub(crate) fn base64url(text: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(text).ok()
}

/// Decode a JWS payload into JSON text bytes: base64url, then gunzip when it starts with the
/// gzip magic bytes. The inflated size is bounded by `max_bytes` (a small payload must not
/// inflate into gigabytes); `None` when the payload does not decode within it.
pub(crate) fn decode_payload(text: &str, max_bytes: usize) -> Option<Vec<u8>> {
    let bytes = base64url(text)?;
    if !bytes.starts_with(GZIP_MAGIC) {
        return Some(bytes);
    }
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut inflated = Vec::new();
    MultiGzDecoder::new(bytes.as_slice())
        .take(limit)
        .read_to_end(&mut inflated)
        .ok()?;
    (inflated.len() <= max_bytes).then_some(inflated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn base64url_with_and_without_padding() {
        assert_eq!(base64url("eyJhIjoxfQ").unwrap(), br#"{"a":1}"#);
        assert_eq!(base64url("eyJhIjoxfQ==").unwrap(), br#"{"a":1}"#);
        assert_eq!(base64url("_-8").unwrap(), [0xFF, 0xEF]);
        assert!(
            base64url("/+8").is_none(),
            "standard base64 is not base64url"
        );
        assert!(base64url("not base64!").is_none());
    }

    #[test]
    fn gzipped_payload_is_inflated_within_the_limit() {
        let json = br#"{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"}"#;
        let encoded = BASE64URL.encode(gzip(json));
        assert_eq!(decode_payload(&encoded, 1000).unwrap(), json);
        assert_eq!(decode_payload(&encoded, json.len()).unwrap(), json);
        assert_eq!(decode_payload(&encoded, json.len() - 1), None);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let encoded = BASE64URL.encode(gzip(&vec![b' '; 10_000_000]));
        assert!(encoded.len() < 20_000);
        assert_eq!(decode_payload(&encoded, 1_000_000), None);
    }

    #[test]
    fn broken_gzip_is_not_a_payload() {
        let encoded = BASE64URL.encode([0x1F, 0x8B, 0x08, 0x00, 0x01]);
        assert_eq!(decode_payload(&encoded, 1000), None);
    }
}
