//! Per-target delivery (DESIGN.md "The actors": `WebhookDelivery`): every outbound target — a
//! vendor endpoint, a webhook, a media server — gets a supervised delivery actor of its own (a
//! [`Sink`] of the actor runtime) that admits at most [`Deliveries::per_target`] exchanges at
//! once. A slow or rate-limited vendor fills its own slots and makes its own callers wait; the
//! runs that call other targets go on.
//!
//! A target is the origin of the request's URL (`scheme://host:port`): the unit a server
//! rate-limits. Targets are started the first time a request goes there; their actors live on
//! a thread of the registry's own (an actix system), and the exchanges they admit run on the
//! caller's runtime. An actor found stopped is started again — the supervision — and counted
//! in `conserver_actor_restarts_total{kind="sink"}`.
//!
//! Retries stay with the caller, under its own module's retry policy: one try holds one slot,
//! and a backoff (or a server's `Retry-After`) waits without holding any.
//!
//! How a link uses it — the process's registry is [`ModuleContext::deliveries`]; keep a clone
//! (cheap) where the link keeps its client:
//!
//! ```ignore
//! // one try, under the target's limit (instead of `http::send(&self.http, &request)`):
//! let response = self.deliveries.send(&request).await?;
//! // or: until a 2xx, with the link's retry policy; any other status is the error
//! let response = self.deliveries.exchange(&request, &self.retry, &self.component).await?;
//! ```
//!
//! [`ModuleContext::deliveries`]: crate::modules::ModuleContext::deliveries

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use conserver_actors::{BoxFuture, Deliver, Observer, RetryPolicy, Sink, SinkError};
use reqwest::Url;

use super::{send, with_retries, HttpError, Request, Response};
use crate::engine::observer::MetricsObserver;
use crate::metrics::Metrics;

/// Exchanges one target handles at once on this instance, unless the registry says otherwise.
pub const DEFAULT_PER_TARGET: usize = 32;

/// The process's delivery actors, one per target. Cheap to clone: clones share the targets.
#[derive(Clone)]
pub struct Deliveries {
    shared: Arc<Shared>,
}

/// What the clones of a registry share.
struct Shared {
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    per_target: usize,
    targets: Mutex<HashMap<String, Sink<Exchanger>>>,
    /// Starts actors on their thread (made at the first delivery).
    starter: OnceLock<Option<tokio::sync::mpsc::UnboundedSender<Start>>>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("per_target", &self.shared.per_target)
            .finish_non_exhaustive()
    }
}

/// One exchange handed to a target's actor: the request, and the answer once it came.
struct Exchange {
    request: Request,
    answer: Mutex<Option<Response>>,
}

/// What a target's actor runs for each admitted exchange: one try with the process's client.
struct Exchanger {
    http: reqwest::Client,
}

impl Deliver for Exchanger {
    type Item = Exchange;
    type Error = HttpError;

    fn deliver(self: Arc<Self>, item: Arc<Exchange>) -> BoxFuture<Result<(), HttpError>> {
        Box::pin(async move {
            let response = send(&self.http, &item.request).await?;
            *item.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(response);
            Ok(())
        })
    }
}

/// One try per admission: retries are the caller's (module doc).
fn single_try() -> RetryPolicy {
    RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    }
}

impl Deliveries {
    /// A registry over the process's client, [`DEFAULT_PER_TARGET`] exchanges per target.
    pub fn new(http: reqwest::Client, metrics: Arc<Metrics>) -> Deliveries {
        Deliveries::with_limit(http, metrics, DEFAULT_PER_TARGET)
    }

    /// A registry admitting `per_target` (at least 1) exchanges at once per target.
    pub fn with_limit(
        http: reqwest::Client,
        metrics: Arc<Metrics>,
        per_target: usize,
    ) -> Deliveries {
        Deliveries {
            shared: Arc::new(Shared {
                http,
                metrics,
                per_target: per_target.max(1),
                targets: Mutex::new(HashMap::new()),
                starter: OnceLock::new(),
            }),
        }
    }

    /// The process's client (for what is not a request to a target, such as building one).
    pub fn client(&self) -> &reqwest::Client {
        &self.shared.http
    }

    /// Exchanges one target handles at once.
    pub fn per_target(&self) -> usize {
        self.shared.per_target
    }

    /// Send `request` once, under its target's limit: waits for a free slot of that target
    /// first. An answer of any status is `Ok`, a failure to get one is `Err` (as
    /// [`super::send`]).
    pub async fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let key = target_key(&request.url);
        // A target whose actor has stopped is started again once for this exchange.
        for restarted in [false, true] {
            let sink = self.sink(&key, restarted).await?;
            let exchange = Arc::new(Exchange {
                request: request.clone(),
                answer: Mutex::new(None),
            });
            match sink.deliver(exchange.clone()).await {
                Ok(()) => {
                    let answer = exchange
                        .answer
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    return answer.ok_or_else(|| HttpError::Permanent {
                        url: request.url.to_string(),
                        message: "the delivery ended without an answer".to_owned(),
                    });
                }
                Err(SinkError::Failed(error)) => return Err(error),
                Err(SinkError::Closed) if !restarted => {
                    MetricsObserver(self.shared.metrics.clone()).restarted("sink", &key);
                }
                Err(SinkError::Closed) => break,
            }
        }
        Err(HttpError::Connect {
            url: request.url.to_string(),
            message: "the delivery actor of this target stopped".to_owned(),
        })
    }

    /// Send `request` until it is answered with a 2xx, retrying transient failures (connection,
    /// timeout, 408, 429, 5xx — `Retry-After` honoured) under `retry`; any other status fails at
    /// once with the answer in the error. Retries are counted under `component`.
    pub async fn exchange(
        &self,
        request: &Request,
        retry: &RetryPolicy,
        component: &str,
    ) -> Result<Response, HttpError> {
        with_retries(retry, &self.shared.metrics, component, || async {
            let response = self.send(request).await?;
            if response.status.is_success() {
                Ok(response)
            } else {
                Err(response.into_error(&request.url))
            }
        })
        .await
    }

    /// The actor of target `key`, started when there is none (or, with `replace`, a new one in
    /// place of one that stopped).
    async fn sink(&self, key: &str, replace: bool) -> Result<Sink<Exchanger>, HttpError> {
        if !replace {
            if let Some(sink) = self.locked().get(key) {
                return Ok(sink.clone());
            }
        }
        let unavailable = || HttpError::Connect {
            url: key.to_owned(),
            message: "the delivery actors could not be started".to_owned(),
        };
        let (reply, started) = tokio::sync::oneshot::channel();
        self.shared
            .starter
            .get_or_init(|| start_thread(&self.shared))
            .as_ref()
            .ok_or_else(unavailable)?
            .send((key.to_owned(), reply))
            .map_err(|_| unavailable())?;
        let sink = started.await.map_err(|_| unavailable())?;
        let mut targets = self.locked();
        match targets.get(key) {
            // Another caller started this target meanwhile: one actor per target.
            Some(existing) if !replace => Ok(existing.clone()),
            _ => {
                targets.insert(key.to_owned(), sink.clone());
                Ok(sink)
            }
        }
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sink<Exchanger>>> {
        self.shared
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// A request to start the actor of a target.
type Start = (String, tokio::sync::oneshot::Sender<Sink<Exchanger>>);

/// The thread the delivery actors live on: an actix system of its own, so they outlive the run
/// threads that call them and serve callers on any runtime. It ends when the registry is
/// dropped. `None` when the thread could not be started (every delivery then fails, logged).
fn start_thread(shared: &Shared) -> Option<tokio::sync::mpsc::UnboundedSender<Start>> {
    let (sender, mut requests) = tokio::sync::mpsc::unbounded_channel::<Start>();
    let http = shared.http.clone();
    let metrics = shared.metrics.clone();
    let per_target = shared.per_target;
    let started = std::thread::Builder::new()
        .name("conserver-deliveries".to_owned())
        .spawn(move || {
            actix::System::new().block_on(async move {
                while let Some((key, reply)) = requests.recv().await {
                    let sink = Sink::start(
                        key,
                        Arc::new(Exchanger { http: http.clone() }),
                        per_target,
                        single_try(),
                        Arc::new(MetricsObserver(metrics.clone())),
                    );
                    let _ = reply.send(sink);
                }
            });
        });
    match started {
        Ok(_) => Some(sender),
        Err(error) => {
            tracing::error!(%error, "the thread of the delivery actors could not be started");
            None
        }
    }
}

/// The target a URL belongs to: its origin, without user information.
pub fn target_key(url: &Url) -> String {
    match url.host_str() {
        Some(host) => match url.port_or_known_default() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        },
        None => url.scheme().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_origins() {
        let key = |u: &str| target_key(&Url::parse(u).unwrap());
        assert_eq!(
            key("https://api.deepgram.com/v1/listen?x=1"),
            "https://api.deepgram.com:443"
        );
        assert_eq!(key("http://u:p@127.0.0.1:8080/a"), "http://127.0.0.1:8080");
        assert_eq!(
            key("http://127.0.0.1:8080/b"),
            key("http://127.0.0.1:8080/a")
        );
        assert_ne!(
            key("http://127.0.0.1:8081/a"),
            key("http://127.0.0.1:8080/a")
        );
    }
}
