//! `ApiError`: every error a route can answer, as `{"detail": …}` (api.md §1.4). The status
//! comes from the variant; a 5xx body never carries the cause, which goes to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::problem::Problem;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON.
    #[error("Malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// 400 with a route-specific message.
    #[error("{0}")]
    BadRequest(&'static str),
    /// 403 with the Python server's messages.
    #[error("{0}")]
    Forbidden(String),
    /// 404 with a route-specific message.
    #[error("{0}")]
    NotFound(String),
    /// 405, with what the resource serves for `Allow`.
    #[error("Method Not Allowed")]
    MethodNotAllowed(&'static str),
    #[error("Request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("Unsupported media type '{0}'; send application/json")]
    UnsupportedMediaType(String),
    /// 422: every problem found.
    #[error("{} problem(s) in the request", .0.len())]
    Unprocessable(Vec<Problem>),
    /// The store failed: 503 when it cannot be reached, else 500 with the route's message.
    #[error("{message}")]
    Store {
        message: &'static str,
        #[source]
        source: StoreError,
    },
    /// 500 with a route-specific message; the cause is logged where it happened.
    #[error("{0}")]
    Internal(&'static str),
}

/// What a client sees while the store is down; the cause is in the log.
pub const STORE_UNAVAILABLE: &str =
    "Redis is unavailable; the request can be retried when it is back";

impl ApiError {
    /// A store failure, answered with the route's message (api.md §5).
    pub fn store(message: &'static str) -> impl FnOnce(StoreError) -> ApiError {
        move |source| ApiError::Store { message, source }
    }

    /// One problem as a 422.
    pub fn problem(problem: Problem) -> ApiError {
        ApiError::Unprocessable(vec![problem])
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store { source, .. } if source.is_unavailable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Store { .. } | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = match self {
            ApiError::Unprocessable(problems) => json!(problems),
            ApiError::Store { message, source } => {
                if source.is_unavailable() {
                    tracing::warn!(error = %crate::report(source), "{message}: the store is unavailable");
                    json!(STORE_UNAVAILABLE)
                } else {
                    tracing::error!(error = %crate::report(source), "{message}");
                    json!(message)
                }
            }
            other => json!(other.to_string()),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::MethodNotAllowed(allow) = self {
            response.insert_header((actix_web::http::header::ALLOW, *allow));
        }
        response.json(json!({ "detail": detail }))
    }
}
