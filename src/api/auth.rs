//! Authentication (api.md §2 and §5.14): API tokens for token routes, per-list keys for
//! external ingress. Comparisons are constant-time and every candidate is compared, so the
//! answer time does not tell which token was close.

use std::sync::Arc;

use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use super::body::BodyHeaders;
use super::error::ApiError;
use super::state::{AppState, Live};
use crate::config::Config;

/// The configuration in force, once the request's API token is checked.
pub fn authorized(req: &HttpRequest, state: &AppState) -> Result<Arc<Live>, ApiError> {
    let config = state.config();
    require_token(req, &config)?;
    Ok(config)
}

/// For a token route with a body: the body's headers (413, 415), then the token (403), in the
/// order of api.md §1.4. The body is read later, after the query is checked.
pub fn authorized_with_body(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(Arc<Live>, BodyHeaders), ApiError> {
    let config = state.config();
    let body = BodyHeaders::check(req, config.api.max_body_bytes)?;
    require_token(req, &config)?;
    Ok((config, body))
}

/// Check the API token of a token route. With no token configured, the server only runs on a
/// loopback address (or with `allow_unauthenticated`), so every request passes.
pub fn require_token(req: &HttpRequest, config: &Config) -> Result<(), ApiError> {
    if config.api.tokens.is_empty() {
        return Ok(());
    }
    let presented = presented_key(req, config);
    if presented.is_some_and(|key| matches_any(key, &config.api.tokens)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("Invalid API Key".into()))
    }
}

/// Check the per-list key of `POST /vcon/external-ingress`, with the Python server's messages.
pub fn require_ingress_key(req: &HttpRequest, config: &Config, list: &str) -> Result<(), ApiError> {
    let Some(presented) = presented_key(req, config).filter(|k| !k.is_empty()) else {
        return Err(ApiError::Forbidden("API Key required".into()));
    };
    if config.ingress_auth.is_empty() {
        return Err(ApiError::Forbidden(
            "No ingress authentication configured".into(),
        ));
    }
    let Some((_, keys)) = config.ingress_auth.iter().find(|(name, _)| name == list) else {
        return Err(ApiError::Forbidden(format!(
            "Ingress list '{list}' not configured"
        )));
    };
    if matches_any(presented, keys) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "Invalid API Key for ingress list '{list}'"
        )))
    }
}

fn presented_key<'r>(req: &'r HttpRequest, config: &Config) -> Option<&'r str> {
    req.headers()
        .get(config.api.header_name.as_str())
        .and_then(|v| v.to_str().ok())
}

/// Constant-time membership: compares against every candidate whatever the outcome.
fn matches_any(presented: &str, candidates: &[String]) -> bool {
    let mut found = subtle::Choice::from(0);
    for candidate in candidates {
        found |= presented.as_bytes().ct_eq(candidate.as_bytes());
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use super::matches_any;

    #[test]
    fn membership_is_exact() {
        let tokens = vec!["alpha".to_owned(), "beta".to_owned()];
        assert!(matches_any("beta", &tokens));
        assert!(!matches_any("bet", &tokens));
        assert!(!matches_any("", &tokens));
        assert!(!matches_any("alpha ", &tokens));
    }
}
