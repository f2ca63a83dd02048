//! `GET /metrics` and the per-request counters it exports (api.md §5.4).

use std::time::Instant;

use actix_web::dev::ServiceResponse;
use actix_web::{web, HttpResponse};

use super::state::AppState;

/// `GET /metrics`: Prometheus text; queue and DLQ depths are sampled now.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    sample_depths(&state).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// Set the depth gauges of every list of the config. A store failure leaves the last values
/// (and is logged), so a scrape never fails because Redis is down.
async fn sample_depths(state: &AppState) {
    let config = state.config();
    let mut lists: Vec<&str> = Vec::new();
    for chain in &config.chains {
        for list in chain.ingress_lists.iter().chain(&chain.egress_lists) {
            if !lists.contains(&list.as_str()) {
                lists.push(list);
            }
        }
    }
    for list in lists {
        match state.store.list_len(list).await {
            Ok(depth) => state
                .metrics
                .queue_depth
                .with_label_values(&[list])
                .set(depth as i64),
            Err(e) => {
                tracing::debug!(error = %crate::report(&e), "queue depths not sampled");
                return;
            }
        }
    }
    for chain in &config.chains {
        for list in &chain.ingress_lists {
            if let Ok(items) = state.store.dlq_items(list).await {
                let name = format!("DLQ:{list}");
                state
                    .metrics
                    .dlq_depth
                    .with_label_values(&[name.as_str()])
                    .set(items.len() as i64);
            }
        }
    }
}

/// Count and time a request by method, route template (without the prefix) and status.
pub fn observe<B>(response: &ServiceResponse<B>, prefix: &str, start: Instant) {
    let request = response.request();
    let Some(state) = request.app_data::<web::Data<AppState>>() else {
        return;
    };
    let route = match request.match_pattern() {
        Some(pattern) => match pattern.strip_prefix(prefix) {
            Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest.to_owned(),
            _ => pattern,
        },
        None => "unmatched".to_owned(),
    };
    let method = request.method().as_str();
    state
        .metrics
        .http_requests
        .with_label_values(&[method, route.as_str(), response.status().as_str()])
        .inc();
    state
        .metrics
        .http_duration
        .with_label_values(&[method, route.as_str()])
        .observe(start.elapsed().as_secs_f64());
}
