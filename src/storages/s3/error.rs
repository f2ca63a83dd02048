//! Transient or permanent (modules.md §1.4) for an object store's error: a request that never
//! got an answer (connection refused or reset, DNS, timeout), HTTP 408, 429 and 5xx, and S3's
//! `SlowDown` are worth another try; an answer refusing the request (403, 400, a missing
//! bucket…) is not.

use std::error::Error as StdError;

use object_store::client::HttpError;

use crate::storages::StorageError;

/// `error` as a storage error of its class, with what was being done.
pub fn classified(what: String, error: object_store::Error) -> StorageError {
    if is_transient(&error) {
        StorageError::transient(what, error)
    } else {
        StorageError::permanent(what, error)
    }
}

fn is_transient(error: &object_store::Error) -> bool {
    use object_store::Error as E;
    match error {
        E::Generic { .. } => {}
        E::JoinError { .. } => return true,
        // An answer that says no (401, 403, 404, 409, 412…) or a request that cannot be made.
        _ => return false,
    }
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(layer) = current {
        // No answer at all: the transport failed.
        if layer.downcast_ref::<HttpError>().is_some() {
            return true;
        }
        let text = layer.to_string();
        if text.contains("SlowDown") {
            return true;
        }
        if let Some(status) = answered_status(&text) {
            return status == 408 || status == 429 || status >= 500;
        }
        current = layer.source();
    }
    // A failure the client could not place (a credential provider's answer…): another try is
    // the safe side, the retry policy bounds it.
    true
}

/// The status code of an answer the client quotes ("… status code: 503 Service Unavailable").
fn answered_status(text: &str) -> Option<u16> {
    let (_, rest) = text.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Error performing PUT http://h/b/k in 2ms - Server returned non-2xx status code: {0}: <Error/>")]
    struct Answer(&'static str);

    fn generic(answer: &'static str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(Answer(answer)),
        }
    }

    #[test]
    fn statuses_decide() {
        assert!(is_transient(&generic("503 Service Unavailable")));
        assert!(is_transient(&generic("500 Internal Server Error")));
        assert!(is_transient(&generic("429 Too Many Requests")));
        assert!(is_transient(&generic("408 Request Timeout")));
        assert!(!is_transient(&generic("400 Bad Request")));
        assert!(!is_transient(&generic("413 Payload Too Large")));
        assert_eq!(answered_status("status code: 50"), None);
    }

    #[test]
    fn refusals_are_permanent() {
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: Box::new(Answer("403 Forbidden")),
        };
        assert!(!is_transient(&denied));
        let bad = object_store::Error::NotSupported {
            source: Box::new(Answer("x")),
        };
        assert!(!is_transient(&bad));
    }
}
