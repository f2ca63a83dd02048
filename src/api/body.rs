//! Request bodies (api.md §1.2): the content-type rule (415), the size limit (413) on the
//! received and on the inflated size, and gunzip. Reading is bounded: a body over the limit is
//! never buffered in full.

use std::io::Read;

use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::error::ApiError;

/// Bodies larger than this are inflated on the blocking pool, not on an async worker.
const INLINE_GUNZIP_BYTES: usize = 64 * 1024;

/// What the headers say about a body; checked before authentication (413, then 415).
pub struct BodyHeaders {
    gzip: bool,
    limit: usize,
}

impl BodyHeaders {
    /// Check `Content-Length` against the limit and the content type.
    pub fn check(req: &HttpRequest, limit: usize) -> Result<BodyHeaders, ApiError> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let gzip_type = match req.headers().get(CONTENT_TYPE) {
            None => false,
            Some(value) => {
                let text = value.to_str().unwrap_or("");
                let essence = text
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                match json_kind(&essence) {
                    Some(gzip) => gzip,
                    None => return Err(ApiError::UnsupportedMediaType(text.to_owned())),
                }
            }
        };
        let gzip_encoding = req
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        Ok(BodyHeaders {
            gzip: gzip_type || gzip_encoding,
            limit,
        })
    }

    /// Read the body within the limit it was checked against, gunzipped when the headers say so (the limit
    /// applies to the inflated size too).
    pub async fn read(self, mut payload: web::Payload) -> Result<Bytes, ApiError> {
        let limit = self.limit;
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::debug!(error = %e, "request body could not be read");
                ApiError::BadRequest("The request body could not be read")
            })?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        if !self.gzip {
            return Ok(body);
        }
        if body.len() <= INLINE_GUNZIP_BYTES {
            gunzip(&body, limit)
        } else {
            web::block(move || gunzip(&body, limit))
                .await
                .map_err(|_| ApiError::Internal("Failed to read the request body"))?
        }
    }
}

/// `Some(is_gzip)` for an accepted media type (lowercase essence), `None` otherwise.
fn json_kind(essence: &str) -> Option<bool> {
    match essence {
        "application/json" | "application/vcon" | "application/vcon+json" => Some(false),
        "application/vcon+gzip" => Some(true),
        other if other.starts_with("application/") && other.ends_with("+json") => Some(false),
        _ => None,
    }
}

fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|_| ApiError::BadRequest("The request body is not valid gzip"))?;
    if inflated.len() > limit {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    Ok(Bytes::from(inflated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_media_types() {
        assert_eq!(json_kind("application/json"), Some(false));
        assert_eq!(json_kind("application/vcon"), Some(false));
        assert_eq!(json_kind("application/vcon+json"), Some(false));
        assert_eq!(json_kind("application/problem+json"), Some(false));
        assert_eq!(json_kind("application/vcon+gzip"), Some(true));
        assert_eq!(json_kind("text/plain"), None);
        assert_eq!(json_kind("application/xml"), None);
    }

    #[test]
    fn gunzip_respects_the_inflated_limit() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&[b'a'; 5000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 5000).unwrap().len(), 5000);
        assert!(matches!(
            gunzip(&gz, 4999),
            Err(ApiError::PayloadTooLarge(4999))
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(ApiError::BadRequest(_))
        ));
    }
}
