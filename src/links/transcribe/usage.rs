//! Usage reporting (modules.md §1.6): after each vendor call, when `send_ai_usage_data_to_url`
//! is set, a record of what the call cost is POSTed there. A failed report is logged and never
//! affects the vCon.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, Url};
use serde_json::json;

use crate::http::{self, Deliveries, Request, LOGGED_BODY_BYTES};

/// The timeout of a report.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where usage goes, when the options say.
#[derive(Debug, Clone)]
pub struct Usage {
    url: Url,
    token: String,
}

/// What one vendor call cost.
pub struct Cost<'a> {
    /// `DEEPGRAM_TRANSCRIBE`, `OPENAI_TRANSCRIBE`.
    pub sub_type: &'a str,
    /// `tokens` or `seconds`.
    pub unit_type: &'a str,
    /// Units in.
    pub input_units: u64,
    /// Units out.
    pub output_units: u64,
    /// The model used.
    pub model: &'a str,
}

impl Usage {
    /// Reporting to `url` (none: no reporting) with `token` as bearer token.
    pub fn new(url: Option<&str>, token: Option<&str>) -> Result<Option<Usage>, String> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let url = Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
        Ok(Some(Usage {
            url,
            token: token.unwrap_or_default().to_owned(),
        }))
    }

    /// Send the record of `cost` for the vCon `uuid`; failures are logged.
    pub async fn report(&self, deliveries: &Deliveries, uuid: &str, cost: Cost<'_>) {
        let record = json!({
            "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "record_id": uuid,
            "type": "VCON_PROCESSING",
            "sub_type": cost.sub_type,
            "unit_type": cost.unit_type,
            "input_units": cost.input_units,
            "output_units": cost.output_units,
            "ai_model": cost.model,
        });
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", self.token)) {
            headers.insert(AUTHORIZATION, value);
        }
        let request = Request {
            method: Method::POST,
            url: self.url.clone(),
            headers: http::json_headers(&headers),
            body: Bytes::from(record.to_string()),
            timeout: TIMEOUT,
            max_response_bytes: LOGGED_BODY_BYTES,
        };
        let outcome = match deliveries.send(&request).await {
            Ok(response) if response.status.is_success() => return,
            Ok(response) => response.into_error(&self.url),
            Err(error) => error,
        };
        tracing::warn!(error = %crate::report(&outcome), "the usage report could not be sent; the vCon is not affected");
    }
}
