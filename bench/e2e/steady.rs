//! The steady-rate client of the end-to-end benchmark (`scripts/bench-e2e latency|soak`,
//! bench/README.md): POSTs ~5 KB vCons to `POST /vcon?ingress_lists=<ingress>` at a fixed
//! rate for a fixed time, and at the same time pops the egress list, so that every vCon's
//! latency from POST to egress is known.
//!
//! - Open loop: vCon `i` is due at `start + i / rate` whatever happened to the previous ones
//!   (at most `--max-in-flight` POSTs are outstanding). Its latency is measured from that due
//!   instant, so a client or server that falls behind shows up in the figures instead of
//!   slowing the load down (no coordinated omission). How far the sender fell behind its
//!   schedule is reported as `max_lag_ms`.
//! - The uuid carries the sequence number (`e2e10000-0000-4000-8000-<i as 12 hex digits>`), so
//!   the consumer finds the due instant of each uuid it pops without a table of uuids.
//! - The consumer uses Redis directly: `BLPOP <egress> 0.2`, then `LPOP <egress> 1000`, so a
//!   uuid is seen within a fraction of a millisecond of its push. (An HTTP consumer would use
//!   `GET /vcon/egress?egress_list=…&limit=1000`, which is the same `LPOP`.)
//! - With `--sample-every S` a `SAMPLE` line is printed every S seconds: vCons posted and seen
//!   so far, latency percentiles of the window, the RSS of each `--watch name=pid` process,
//!   Redis's `used_memory` and its number of keys.
//!
//! The last line is `RESULT key=value …`, read by scripts/bench-e2e.
//!
//! `cargo run --release --example e2e_steady -- --api http://127.0.0.1:8092 \
//!    --redis redis://127.0.0.1:6379 --rate 500 --seconds 30`

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "POST vCons at a fixed rate and measure POST→egress latency")]
struct Args {
    /// Base URL of the conserver API.
    #[arg(long, default_value = "http://127.0.0.1:8092")]
    api: String,
    /// The Redis conserver uses (the egress list is popped there).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// The ingress list the vCons are posted to.
    #[arg(long, default_value = "e2e_ingress")]
    ingress: String,
    /// The egress list of the chain.
    #[arg(long, default_value = "e2e_egress")]
    egress: String,
    /// POSTs per second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// How long to POST, in seconds.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// How long to wait, after the last POST, for the last vCons to reach the egress list.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// At most this many POSTs outstanding.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Print a SAMPLE line every this many seconds (0: never).
    #[arg(long, default_value_t = 0.0)]
    sample_every: f64,
    /// A process whose RSS is sampled, as name=pid (repeatable).
    #[arg(long)]
    watch: Vec<String>,
}

/// The text of vCon `i`: the 5.3 KB vCon of bench/post.lua (two parties, one text dialog of
/// 600 words), with party values of its own (`+1555…`/`+1666…`, `Caller …`, `Agent …`,
/// `agent….@example.com`) as in real traffic. With values shared by every vCon, each party
/// index set (`tel:…`, `name:…`) would collect every uuid of the soak and never expire, since
/// each addition renews its TTL; with values of its own, a vCon's index entries expire after
/// `redis.index_ttl` like the vCon.
fn body(i: usize, text: &str) -> String {
    format!(
        concat!(
            r#"{{"uuid":"{uuid}","vcon":"0.4.0","created_at":"2026-11-28T10:00:00Z","subject":"benchmark call","#,
            r#""parties":[{{"tel":"+1555{i:07}","name":"Caller {i}","role":"customer"}},"#,
            r#"{{"tel":"+1666{i:07}","name":"Agent {i}","role":"agent","mailto":"agent{i}@example.com"}}],"#,
            r#""dialog":[{{"type":"text","start":"2026-11-28T10:00:00Z","duration":42.5,"parties":[0,1],"#,
            r#""originator":0,"mediatype":"text/plain","encoding":"none","body":"{text}"}}],"#,
            r#""analysis":[],"attachments":[]}}"#
        ),
        uuid = uuid_of(i),
        i = i,
        text = text,
    )
}

/// The dialog text of every vCon: 600 words, as in bench/post.lua.
fn dialog_text() -> String {
    let words: Vec<String> = (1..=600).map(|i| format!("word{}", i % 97)).collect();
    words.join(" ")
}

const UUID_PREFIX: &str = "e2e10000-0000-4000-8000-";

fn uuid_of(i: usize) -> String {
    format!("{UUID_PREFIX}{i:012x}")
}

fn seq_of(uuid: &str) -> Option<usize> {
    let hex = uuid.strip_prefix(UUID_PREFIX)?;
    usize::from_str_radix(hex, 16).ok()
}

/// POST outcome per sequence number.
const NOT_SENT: u8 = 0;
const CREATED: u8 = 1;
const POST_FAILED: u8 = 2;

/// What the sender, the consumer and the sampler share.
struct Shared {
    start: Instant,
    period: Duration,
    outcome: Vec<AtomicU8>,
    created: AtomicU64,
    post_errors: AtomicU64,
    seen: AtomicU64,
    /// POST round trips in µs (send → 201).
    post_us: Mutex<Vec<u32>>,
    /// POST→egress latencies in µs since the last sample.
    window_us: Mutex<Vec<u32>>,
    /// The largest delay, in µs, between a POST's due instant and its sending.
    max_lag_us: AtomicU64,
    /// µs from `start` to the sending of the last POST.
    last_send_us: AtomicU64,
    /// Every POST was answered.
    sending_done: AtomicBool,
}

impl Shared {
    fn due(&self, i: usize) -> Instant {
        self.start + self.period.mul_f64(i as f64)
    }
}

/// The value at quantile `q` of sorted µs values, in ms.
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

async fn redis_used_mb(connection: &mut redis::aio::MultiplexedConnection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(connection)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|bytes| bytes.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |bytes| bytes / 1024.0 / 1024.0)
}

/// The number of keys in Redis (`DBSIZE`).
async fn redis_keys(connection: &mut redis::aio::MultiplexedConnection) -> i64 {
    redis::cmd("DBSIZE")
        .query_async(connection)
        .await
        .unwrap_or(-1)
}

/// Pops the egress list until every created vCon was seen or, once sending is done, the drain
/// timeout expires. Returns the latencies (µs) of all uuids seen, the counts of duplicates and
/// of foreign uuids, and when the last of ours was seen.
async fn consume(
    shared: Arc<Shared>,
    mut connection: redis::aio::MultiplexedConnection,
    egress: String,
    total: usize,
    drain_timeout: Duration,
) -> (Vec<u32>, u64, u64, Instant) {
    let mut seen = vec![false; total];
    let mut latencies = Vec::with_capacity(total);
    let (mut duplicates, mut foreign) = (0u64, 0u64);
    let mut deadline: Option<Instant> = None;
    let mut last_seen = shared.start;
    loop {
        let first: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(&egress)
            .arg(0.2)
            .query_async(&mut connection)
            .await
            .expect("BLPOP on the egress list");
        let now = Instant::now();
        let mut batch: Vec<String> = Vec::new();
        if let Some((_, uuid)) = first {
            batch.push(uuid);
            let more: Option<Vec<String>> = redis::cmd("LPOP")
                .arg(&egress)
                .arg(1000)
                .query_async(&mut connection)
                .await
                .expect("LPOP on the egress list");
            batch.extend(more.unwrap_or_default());
        }
        let mut window = Vec::with_capacity(batch.len());
        for uuid in &batch {
            match seq_of(uuid).filter(|&i| i < total) {
                Some(i) if seen[i] => duplicates += 1,
                Some(i) => {
                    seen[i] = true;
                    let micros = now.saturating_duration_since(shared.due(i)).as_micros();
                    window.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
                None => foreign += 1,
            }
        }
        if !window.is_empty() {
            last_seen = now;
        }
        shared
            .seen
            .fetch_add(window.len() as u64, Ordering::Relaxed);
        latencies.extend_from_slice(&window);
        shared.window_us.lock().unwrap().extend(window);

        // Once the sender is done: stop when every created vCon was seen, or at the deadline.
        if deadline.is_none() && shared.sending_done.load(Ordering::Acquire) {
            deadline = Some(Instant::now() + drain_timeout);
        }
        if let Some(deadline) = deadline {
            let created = shared.created.load(Ordering::Relaxed);
            if shared.seen.load(Ordering::Relaxed) >= created || Instant::now() >= deadline {
                break;
            }
        }
    }
    (latencies, duplicates, foreign, last_seen)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(
        args.rate > 0.0 && args.seconds > 0.0,
        "rate and seconds must be > 0"
    );
    let total = (args.rate * args.seconds).round() as usize;
    let watched: Vec<(String, String)> = args
        .watch
        .iter()
        .map(|w| {
            let (name, pid) = w.split_once('=').expect("--watch name=pid");
            (name.to_owned(), pid.to_owned())
        })
        .collect();

    let client = redis::Client::open(args.redis.as_str()).expect("Redis URL");
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let consumer_connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect to Redis");
    let mut info_connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_in_flight)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let url = format!("{}/vcon?ingress_lists={}", args.api, args.ingress);
    let text = dialog_text();

    // Memory before any load.
    let mut rss: Vec<Vec<f64>> = watched.iter().map(|(_, pid)| vec![rss_mb(pid)]).collect();
    let mut redis_used = vec![redis_used_mb(&mut info_connection).await];

    let shared = Arc::new(Shared {
        start: Instant::now() + Duration::from_millis(100),
        period: Duration::from_secs_f64(1.0 / args.rate),
        outcome: (0..total).map(|_| AtomicU8::new(NOT_SENT)).collect(),
        created: AtomicU64::new(0),
        post_errors: AtomicU64::new(0),
        seen: AtomicU64::new(0),
        post_us: Mutex::new(Vec::with_capacity(total)),
        window_us: Mutex::new(Vec::new()),
        max_lag_us: AtomicU64::new(0),
        last_send_us: AtomicU64::new(0),
        sending_done: AtomicBool::new(false),
    });
    let consumer = tokio::spawn(consume(
        shared.clone(),
        consumer_connection,
        args.egress.clone(),
        total,
        Duration::from_secs_f64(args.drain_timeout),
    ));

    // Memory before the load, as the first SAMPLE line.
    let sampling = args.sample_every > 0.0;
    if sampling {
        let mut out = "SAMPLE t=0 posted=0 egressed=0 p50_ms=- p99_ms=-".to_owned();
        for ((name, _), values) in watched.iter().zip(&rss) {
            out += &format!(" {name}_rss_mb={:.1}", values[0]);
        }
        out += &format!(" redis_used_mb={:.1}", redis_used[0]);
        out += &format!(" redis_keys={}", redis_keys(&mut info_connection).await);
        println!("{out}");
    }

    let sender = {
        let shared = shared.clone();
        let limit = Arc::new(Semaphore::new(args.max_in_flight));
        tokio::spawn(async move {
            for i in 0..total {
                tokio::time::sleep_until(shared.due(i)).await;
                let permit = limit.clone().acquire_owned().await.expect("semaphore");
                let lag = Instant::now()
                    .saturating_duration_since(shared.due(i))
                    .as_micros() as u64;
                shared.max_lag_us.fetch_max(lag, Ordering::Relaxed);
                let since_start = shared.start.elapsed().as_micros() as u64;
                shared.last_send_us.store(since_start, Ordering::Relaxed);
                let body = body(i, &text);
                let request = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let created =
                        matches!(request.send().await, Ok(r) if r.status().as_u16() == 201);
                    let micros = sent.elapsed().as_micros();
                    drop(permit);
                    if created {
                        shared.outcome[i].store(CREATED, Ordering::Relaxed);
                        shared.created.fetch_add(1, Ordering::Relaxed);
                        shared
                            .post_us
                            .lock()
                            .unwrap()
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    } else {
                        shared.outcome[i].store(POST_FAILED, Ordering::Relaxed);
                        shared.post_errors.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            // Every POST answered: wait for the permits to come back.
            let _all = limit
                .acquire_many(args.max_in_flight as u32)
                .await
                .expect("semaphore");
        })
    };

    let mut sender = Some(sender);
    let mut next_sample = 1u64;
    let period = Duration::from_secs_f64(args.sample_every.max(0.05));
    while !consumer.is_finished() {
        if let Some(handle) = sender.as_ref() {
            if handle.is_finished() {
                sender.take().unwrap().await.expect("sender");
                shared.sending_done.store(true, Ordering::Release);
            }
        }
        if sampling {
            let at = shared.start + period * next_sample as u32;
            if Instant::now() >= at {
                next_sample += 1;
                let mut window = std::mem::take(&mut *shared.window_us.lock().unwrap());
                window.sort_unstable();
                for (values, (_, pid)) in rss.iter_mut().zip(&watched) {
                    values.push(rss_mb(pid));
                }
                redis_used.push(redis_used_mb(&mut info_connection).await);
                let mut out = format!(
                    "SAMPLE t={:.0} posted={} egressed={} p50_ms={:.1} p99_ms={:.1}",
                    (at - shared.start).as_secs_f64(),
                    shared.created.load(Ordering::Relaxed),
                    shared.seen.load(Ordering::Relaxed),
                    quantile_ms(&window, 0.5),
                    quantile_ms(&window, 0.99),
                );
                for ((name, _), values) in watched.iter().zip(&rss) {
                    out += &format!(" {name}_rss_mb={:.1}", values[values.len() - 1]);
                }
                out += &format!(" redis_used_mb={:.1}", redis_used[redis_used.len() - 1]);
                out += &format!(" redis_keys={}", redis_keys(&mut info_connection).await);
                println!("{out}");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut latencies, duplicates, foreign, last_seen) = consumer.await.expect("consumer");
    // Sending took from `start` to the last POST, plus one period for that POST itself.
    let elapsed_sending =
        shared.last_send_us.load(Ordering::Relaxed) as f64 / 1e6 + 1.0 / args.rate;

    // Memory at the end (after the last vCon was seen).
    for (values, (_, pid)) in rss.iter_mut().zip(&watched) {
        values.push(rss_mb(pid));
    }
    redis_used.push(redis_used_mb(&mut info_connection).await);

    latencies.sort_unstable();
    let mut post = std::mem::take(&mut *shared.post_us.lock().unwrap());
    post.sort_unstable();
    let created = shared.created.load(Ordering::Relaxed);
    let missing = created.saturating_sub(latencies.len() as u64);
    let not_sent = shared
        .outcome
        .iter()
        .filter(|o| o.load(Ordering::Relaxed) == NOT_SENT)
        .count();

    let mut result = format!(
        "RESULT rate={} seconds={} achieved={:.0} created={created} post_errors={} not_sent={not_sent} \
         post_p50_ms={:.2} post_p99_ms={:.2} egressed={} missing={missing} duplicates={duplicates} \
         foreign={foreign} egress_rate={:.0} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1} max_lag_ms={:.1}",
        args.rate,
        args.seconds,
        created as f64 / elapsed_sending,
        shared.post_errors.load(Ordering::Relaxed),
        quantile_ms(&post, 0.5),
        quantile_ms(&post, 0.99),
        latencies.len(),
        latencies.len() as f64 / (last_seen - shared.start).as_secs_f64().max(1e-3),
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.9),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 1.0),
        shared.max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
    );
    // name_rss_mb=idle/first/end/max: before the load, at the first sample under load (the
    // end when there was no sample), at the end, and the largest sample.
    for ((name, _), values) in watched.iter().zip(&rss) {
        let first = values[1.min(values.len() - 1)];
        let max = values.iter().copied().fold(f64::NAN, f64::max);
        result += &format!(
            " {name}_rss_mb={:.1}/{first:.1}/{:.1}/{max:.1}",
            values[0],
            values[values.len() - 1]
        );
    }
    let first = redis_used[1.min(redis_used.len() - 1)];
    result += &format!(
        " redis_used_mb={:.1}/{first:.1}/{:.1}",
        redis_used[0],
        redis_used[redis_used.len() - 1]
    );
    result += &format!(" redis_keys={}", redis_keys(&mut info_connection).await);
    println!("{result}");
}
