//! Why an outbound HTTP call failed, classified next to the client that raised it
//! (modules.md §1.4): connection failures, timeouts, 408, 429 and 5xx are transient; any other
//! status, TLS certificate errors and requests that cannot be built are permanent. The URL an
//! error names has its secrets masked (`config::redact::url_secrets`): errors reach logs.

use std::time::Duration;

use conserver_actors::Retriable;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::config::redact::url_secrets;

/// The part of a failure's response body kept for logs (modules.md §3.8: first 1 KiB).
pub const LOGGED_BODY_BYTES: usize = 1024;

/// An outbound HTTP call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connection refused or reset, DNS failure, a response cut short: transient.
    #[error("connection to {url} failed: {message}")]
    Connect {
        /// The URL called.
        url: String,
        /// The client's description, with its causes.
        message: String,
    },
    /// No complete answer within the timeout: transient.
    #[error("no answer from {url} within the timeout: {message}")]
    Timeout {
        /// The URL called.
        url: String,
        /// The client's description, with its causes.
        message: String,
    },
    /// The server answered with a status the caller does not accept.
    #[error("{url} answered HTTP {status}{}", body_suffix(.body))]
    Status {
        /// The URL called.
        url: String,
        /// The status of the answer.
        status: StatusCode,
        /// The wait the server asked for with `Retry-After` (on a 429 or 503).
        retry_after: Option<Duration>,
        /// The first [`LOGGED_BODY_BYTES`] of the answer, for logs.
        body: String,
    },
    /// Anything retrying cannot fix: a TLS certificate error, a request that cannot be built,
    /// an answer that is not what the protocol says.
    #[error("request to {url} failed: {message}")]
    Permanent {
        /// The URL called.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl HttpError {
    /// A failure the HTTP client raised before a status was read (or while reading the body).
    pub fn from_client(url: &str, error: &reqwest::Error) -> HttpError {
        // The client's own message may quote the URL: its secrets are masked there too.
        let message = url_secrets(&with_causes(error));
        let url = url_secrets(url);
        if error.is_timeout() {
            HttpError::Timeout { url, message }
        } else if message.to_ascii_lowercase().contains("certificate") {
            // A certificate the server presents will not change by asking again.
            HttpError::Permanent { url, message }
        } else if error.is_connect() || error.is_request() || error.is_body() {
            HttpError::Connect { url, message }
        } else {
            HttpError::Permanent { url, message }
        }
    }

    /// A status the caller does not accept; `body` is the answer (only its start is kept).
    pub fn from_status(
        url: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> HttpError {
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => retry_after(headers),
            _ => None,
        };
        HttpError::Status {
            url: url_secrets(url),
            status,
            retry_after,
            body: logged_body(body),
        }
    }

    /// The status of the answer, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl Retriable for HttpError {
    fn is_retriable(&self) -> bool {
        match self {
            HttpError::Connect { .. } | HttpError::Timeout { .. } => true,
            HttpError::Status { status, .. } => transient_status(*status),
            HttpError::Permanent { .. } => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn retry_reason(&self) -> &'static str {
        match self {
            HttpError::Connect { .. } => "connect",
            HttpError::Timeout { .. } => "timeout",
            HttpError::Status { status, .. } if *status == StatusCode::REQUEST_TIMEOUT => "timeout",
            HttpError::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => "429",
            HttpError::Status { status, .. } if status.is_server_error() => "5xx",
            _ => "other",
        }
    }
}

/// 408, 429 and 5xx: the same request may succeed later.
pub fn transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// The first [`LOGGED_BODY_BYTES`] of a body as text (invalid UTF-8 replaced).
pub fn logged_body(body: &[u8]) -> String {
    let start = &body[..body.len().min(LOGGED_BODY_BYTES)];
    String::from_utf8_lossy(start).into_owned()
}

fn body_suffix(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", body.trim())
    }
}

/// `Retry-After`: seconds, or an HTTP-date (a date already past means "now").
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    // IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`) is an RFC 2822 date.
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// reqwest's top-level message rarely says why ("error sending request"); the causes do.
fn with_causes(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn status_error(code: u16, retry_after: Option<&str>) -> HttpError {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        HttpError::from_status(
            "http://x/",
            StatusCode::from_u16(code).unwrap(),
            &headers,
            b"oops",
        )
    }

    #[test]
    fn statuses_are_classified_as_the_spec_says() {
        for (code, retriable, reason) in [
            (408, true, "timeout"),
            (429, true, "429"),
            (500, true, "5xx"),
            (503, true, "5xx"),
            (400, false, "other"),
            (401, false, "other"),
            (404, false, "other"),
            (422, false, "other"),
        ] {
            let error = status_error(code, None);
            assert_eq!(error.is_retriable(), retriable, "{code}");
            assert_eq!(error.retry_reason(), reason, "{code}");
        }
    }

    #[test]
    fn retry_after_is_read_on_429_and_503_only() {
        assert_eq!(
            status_error(429, Some("3")).retry_after(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            status_error(503, Some(" 1.5 ")).retry_after(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(status_error(500, Some("3")).retry_after(), None);
        assert_eq!(
            status_error(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")).retry_after(),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = status_error(503, Some(&later)).retry_after().unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(status_error(429, Some("-1")).retry_after(), None);
        assert_eq!(status_error(429, Some("soon")).retry_after(), None);
    }

    #[test]
    fn the_logged_body_is_cut_at_one_kib() {
        let long = vec![b'a'; 5000];
        assert_eq!(logged_body(&long).len(), LOGGED_BODY_BYTES);
        let message = status_error(404, None).to_string();
        assert_eq!(message, "http://x/ answered HTTP 404 Not Found: oops");
    }
}
