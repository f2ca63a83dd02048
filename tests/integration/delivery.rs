//! The per-target delivery actors (`conserver::http::delivery`): each target admits a bounded
//! number of exchanges at once, so a slow target holds up its own callers only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conserver::http::{Deliveries, Request};
use conserver::metrics::Metrics;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn get(server: &MockServer) -> Request {
    Request {
        method: Method::GET,
        url: Url::parse(&format!("{}/x", server.uri())).unwrap(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        timeout: Duration::from_secs(30),
        max_response_bytes: 1024,
    }
}

async fn received(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_does_not_hold_up_another_targets_deliveries() {
    let slow = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&slow)
        .await;
    let quick = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&quick)
        .await;
    let deliveries = Deliveries::with_limit(reqwest::Client::new(), Arc::new(Metrics::new()), 2);
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let deliveries = deliveries.clone();
            let request = get(&slow);
            tokio::spawn(async move { deliveries.send(&request).await.map(|r| r.status) })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(&slow).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the slow target never got its first requests"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Both of the slow target's slots are taken; another target is served at once.
    let answer = deliveries.send(&get(&quick)).await.unwrap();
    assert_eq!(answer.status, 204);
    assert_eq!(
        received(&slow).await,
        2,
        "the third exchange waits for a slot of its target"
    );
    assert!(waiting.iter().all(|task| !task.is_finished()));
    for task in waiting {
        assert_eq!(task.await.unwrap().unwrap(), 200);
    }
    assert_eq!(received(&slow).await, 3);
}

#[tokio::test]
async fn exchanges_retry_transient_statuses_and_return_other_ones_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_string("forbidden: bad key"))
        .mount(&server)
        .await;
    let metrics = Arc::new(Metrics::new());
    let deliveries = Deliveries::new(reqwest::Client::new(), metrics.clone());
    let retry = conserver_actors::RetryPolicy {
        attempts: 5,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        multiplier: 2.0,
    };
    let error = deliveries
        .exchange(&get(&server), &retry, "probe")
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(403));
    assert!(error.to_string().contains("forbidden: bad key"));
    assert_eq!(received(&server).await, 2);
    assert_eq!(
        metrics.retries.with_label_values(&["probe", "5xx"]).get(),
        1
    );
}
