//! Faults with real processes: `conserver serve` children killed with SIGKILL, stopped with
//! SIGSTOP or SIGTERM, Redis stopped under them or its answers lost on the way, webhooks and
//! storages failing and recovering, two instances sharing the lists.
//! Each test ends with every vCon accounted for — stored and on the egress list, in a DLQ, or
//! in a queue — checked per uuid in Redis and in the file storage.
//!
//! Every wait is bounded (`PATIENCE`) and prints the state of Redis and the instances' logs
//! when it runs out. Children are killed when their guard drops, so a failed test leaves none.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{self, OwnRedis};

/// The longest any one expected state may take to appear.
const PATIENCE: Duration = Duration::from_secs(60);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(25);
/// The chain, lists and storages every test uses.
const CHAIN: &str = "main";
const INGRESS: &str = "in";
const EGRESS: &str = "out";
/// `redis.heartbeat_ttl` of every instance: the shortest allowed, so recoveries are quick.
const HEARTBEAT_TTL: u64 = 5;

// ------------------------------------------------------------------------------ scene

/// What one test owns: a key prefix on a Redis, and a directory for config files, logs and
/// the file storage. Its keys are removed at the end when the Redis is the shared one.
struct Scene {
    dir: tempfile::TempDir,
    /// The Redis the test reads directly.
    redis_url: String,
    /// The address the instances are given for it (the same, or a proxy in front of it).
    served_url: String,
    prefix: String,
}

impl Scene {
    /// A scene on the shared test Redis.
    fn on_shared_redis() -> Scene {
        Scene::on(common::redis_url())
    }

    fn on(redis_url: String) -> Scene {
        Scene::behind(redis_url.clone(), redis_url)
    }

    /// A scene whose instances reach `redis_url` through `served_url`.
    fn behind(redis_url: String, served_url: String) -> Scene {
        let scene = Scene {
            dir: tempfile::tempdir().expect("a temporary directory"),
            redis_url,
            served_url,
            prefix: format!("test-{}:", uuid::Uuid::new_v4()),
        };
        scene.connection().unwrap_or_else(|e| {
            panic!(
                "Redis at {} does not answer ({e}); run the tests with scripts/test, which starts one",
                scene.redis_url
            )
        });
        std::fs::create_dir_all(scene.storage_dir()).expect("the storage directory");
        scene
    }

    /// Where the `file` storage writes (flat: `<uuid>.json`).
    fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("vcons")
    }

    /// The `storages:` entry of the file storage every chain writes.
    fn file_storage_yaml(&self) -> String {
        format!(
            "  files:\n    module: file\n    options: {{path: '{}', organize_by_date: false}}\n",
            self.storage_dir().display()
        )
    }

    /// The chain of the kill and outage tests: a `delay` link slow enough to interrupt, the
    /// file storage, the egress list.
    fn slow_chain_yaml(&self, seconds: f64) -> String {
        format!(
            "links:\n  slow:\n    module: delay\n    options: {{seconds: {seconds}}}\n\
             storages:\n{}\
             chains:\n  {CHAIN}:\n    links: [slow]\n    storages: [files]\n    \
             ingress_lists: [{INGRESS}]\n    egress_lists: [{EGRESS}]\n    workers: 4\n",
            self.file_storage_yaml()
        )
    }

    /// Write the config file of one instance: the fault-test settings around `modules`
    /// (the `links`, `storages` and `chains` sections).
    fn config_file(&self, instance_id: &str, port: u16, modules: &str) -> PathBuf {
        let text = format!(
            "redis:\n  url: '{}'\n  key_prefix: '{}'\n  instance_id: '{instance_id}'\n  \
             heartbeat_ttl: {HEARTBEAT_TTL}\n\
             api:\n  bind: 127.0.0.1:{port}\n\
             limits:\n  shutdown_grace: 5\n\
             {modules}",
            self.served_url, self.prefix
        );
        let path = self.dir.path().join(format!("{instance_id}-{port}.yml"));
        std::fs::write(&path, text).expect("the config file is written");
        path
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.redis_url.as_str())?.get_connection()
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A list, whole (Redis must answer).
    fn list(&self, name: &str) -> Vec<String> {
        self.try_list(name)
            .unwrap_or_else(|e| panic!("list {name} cannot be read: {e}"))
    }

    fn try_list(&self, name: &str) -> redis::RedisResult<Vec<String>> {
        redis::cmd("LRANGE")
            .arg(self.key(name))
            .arg(0)
            .arg(-1)
            .query(&mut self.connection()?)
    }

    /// A field of `conserver:chain_stats:main` (0 when absent; Redis must answer).
    fn chain_stat(&self, field: &str) -> u64 {
        let read = || -> redis::RedisResult<Option<u64>> {
            redis::cmd("HGET")
                .arg(self.key(&format!("conserver:chain_stats:{CHAIN}")))
                .arg(field)
                .query(&mut self.connection()?)
        };
        read()
            .unwrap_or_else(|e| panic!("chain stats cannot be read: {e}"))
            .unwrap_or(0)
    }

    /// Names (without the prefix) of the keys under the prefix that match `pattern`.
    fn keys(&self, pattern: &str) -> redis::RedisResult<Vec<String>> {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(self.key(pattern))
            .query(&mut self.connection()?)?;
        Ok(keys
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_owned())
            .collect())
    }

    /// Whether `<uuid>.json` in the file storage holds that vCon.
    fn stored(&self, uuid: &str) -> bool {
        std::fs::read_to_string(self.storage_dir().join(format!("{uuid}.json")))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .is_some_and(|vcon| vcon["uuid"] == uuid)
    }

    /// Where each of `uuids` is now.
    fn ledger(&self, uuids: &[String]) -> redis::RedisResult<Ledger> {
        let occurrences = |names: Vec<String>| -> redis::RedisResult<BTreeMap<String, usize>> {
            let mut counts = BTreeMap::new();
            for name in names {
                for item in self.try_list(&name)? {
                    *counts.entry(item).or_insert(0) += 1;
                }
            }
            Ok(counts)
        };
        let ingress = occurrences(vec![INGRESS.to_owned()])?;
        let processing = occurrences(self.keys(&format!("{{{INGRESS}}}:processing:*"))?)?;
        let egress = occurrences(vec![EGRESS.to_owned()])?;
        let dlq = occurrences(vec![format!("DLQ:{INGRESS}")])?;
        let storage_dlq = occurrences(self.keys("DLQ:storage:*")?)?;
        let pending: BTreeSet<String> = self
            .keys("conserver:egress_pending:*")?
            .into_iter()
            .map(|k| k["conserver:egress_pending:".len()..].to_owned())
            .collect();
        let count = |counts: &BTreeMap<String, usize>, uuid: &String| {
            counts.get(uuid).copied().unwrap_or(0)
        };
        Ok(uuids
            .iter()
            .map(|uuid| {
                let whereabouts = Whereabouts {
                    stored: self.stored(uuid),
                    ingress: count(&ingress, uuid),
                    processing: count(&processing, uuid),
                    egress: count(&egress, uuid),
                    dlq: count(&dlq, uuid),
                    storage_dlq: count(&storage_dlq, uuid),
                    egress_pending: pending.contains(uuid),
                };
                (uuid.clone(), whereabouts)
            })
            .collect())
    }

    /// The ledger; a test invariant once Redis is up.
    fn ledger_now(&self, uuids: &[String]) -> Ledger {
        self.ledger(uuids)
            .unwrap_or_else(|e| panic!("Redis at {} cannot be read: {e}", self.redis_url))
    }

    /// Wait until every one of `uuids` satisfies `expected`.
    fn wait_for_every(
        &self,
        uuids: &[String],
        what: &str,
        expected: impl Fn(&Whereabouts) -> bool,
        instances: &[&Instance],
    ) {
        wait_until(
            what,
            || {
                self.ledger(uuids)
                    .is_ok_and(|ledger| ledger.values().all(&expected))
            },
            || self.report(uuids, instances),
        );
    }

    /// The state of the scene, for a failure message: where the vCons are, the keys under
    /// the prefix, the end of each instance's log.
    fn report(&self, uuids: &[String], instances: &[&Instance]) -> String {
        let mut out = String::new();
        match self.ledger(uuids) {
            Ok(ledger) => out.push_str(&format!("where the vCons are:\n{}", tally(&ledger))),
            Err(e) => out.push_str(&format!("Redis cannot be read: {e}\n")),
        }
        if let Ok(keys) = self.keys("*") {
            let lists: Vec<String> = keys
                .iter()
                .filter(|k| !k.starts_with("vcon:") && !k.starts_with("{vcon:"))
                .cloned()
                .collect();
            out.push_str(&format!("keys besides the vCons: {lists:?}\n"));
        }
        for instance in instances {
            out.push_str(&instance.log_tail(40));
        }
        out
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        if self.redis_url == common::redis_url() {
            common::delete_prefix(&self.prefix);
        }
    }
}

// -------------------------------------------------------------------------- ledger

/// Where one vCon is, as Redis and the file storage show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Whereabouts {
    /// `<uuid>.json` in the file storage holds it.
    stored: bool,
    /// Occurrences in the ingress list, the processing lists, the egress list, `DLQ:in`, and
    /// the storage DLQs.
    ingress: usize,
    processing: usize,
    egress: usize,
    dlq: usize,
    storage_dlq: usize,
    /// `conserver:egress_pending:<uuid>` exists.
    egress_pending: bool,
}

impl Whereabouts {
    /// Done: stored, announced on the egress list (at least once), and nowhere else.
    fn delivered(&self) -> bool {
        self.stored
            && self.egress >= 1
            && self.ingress == 0
            && self.processing == 0
            && self.dlq == 0
            && self.storage_dlq == 0
            && !self.egress_pending
    }
}

type Ledger = BTreeMap<String, Whereabouts>;

/// The ledger grouped by state: "12 × Whereabouts { … }" per distinct state.
fn tally(ledger: &Ledger) -> String {
    let mut groups: BTreeMap<&Whereabouts, usize> = BTreeMap::new();
    for whereabouts in ledger.values() {
        *groups.entry(whereabouts).or_insert(0) += 1;
    }
    groups
        .iter()
        .map(|(state, n)| format!("  {n} × {state:?}\n"))
        .collect()
}

/// Assert that every vCon of `ledger` satisfies `expected`, showing all of them otherwise.
fn assert_every(ledger: &Ledger, what: &str, expected: impl Fn(&Whereabouts) -> bool) {
    let wrong: Vec<&String> = ledger
        .iter()
        .filter(|(_, w)| !expected(w))
        .map(|(uuid, _)| uuid)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} vCons are not {what}: {wrong:?}\n{}",
        wrong.len(),
        ledger.len(),
        tally(ledger)
    );
}

/// `redis.vcon_ttl` and `redis.dlq_ttl` (the defaults): the TTLs a finished vCon gets.
const VCON_TTL: i64 = 3600;
const DLQ_TTL: i64 = 604_800;

/// The pending count (None: no pending hash) and the TTL (`TTL`: -1 none, -2 no key) of each
/// vCon.
fn retention(scene: &Scene, uuids: &[String]) -> BTreeMap<String, (Option<i64>, i64)> {
    let mut con = scene.connection().expect("Redis answers");
    uuids
        .iter()
        .map(|uuid| {
            let count: Option<i64> = redis::cmd("HGET")
                .arg(scene.key(&format!("{{vcon:{uuid}}}:pending")))
                .arg("count")
                .query(&mut con)
                .expect("the pending hash is readable");
            let ttl: i64 = redis::cmd("TTL")
                .arg(scene.key(&format!("vcon:{uuid}")))
                .query(&mut con)
                .expect("the TTL is readable");
            (uuid.clone(), (count, ttl))
        })
        .collect()
}

/// No run holds any of `uuids` any more: the pending count is settled (its hash deleted) and
/// the vCon has the TTL its last run asked for (redis.md §4.2), give or take the test's time.
fn assert_settled(scene: &Scene, uuids: &[String], ttl: i64) {
    let wrong: BTreeMap<String, (Option<i64>, i64)> = retention(scene, uuids)
        .into_iter()
        .filter(|(_, (count, left))| count.is_some() || *left > ttl || *left < ttl - 300)
        .collect();
    assert!(
        wrong.is_empty(),
        "vCons with a pending count left or a TTL other than ~{ttl} s: {wrong:?}"
    );
}

/// Poll `done` until it holds; after `PATIENCE`, fail with `report()`.
fn wait_until(what: &str, done: impl FnMut() -> bool, report: impl Fn() -> String) {
    wait_within(PATIENCE, what, done, report);
}

/// Poll `done` until it holds; after `patience`, fail with `report()`.
fn wait_within(
    patience: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
    report: impl Fn() -> String,
) {
    let deadline = Instant::now() + patience;
    while !done() {
        if Instant::now() > deadline {
            panic!("no {what} after {patience:?}\n{}", report());
        }
        std::thread::sleep(POLL);
    }
}

// ------------------------------------------------------------------------ instance

/// A `conserver serve` child process, killed when dropped. Its output goes to a log file
/// (a pipe nobody reads could fill up and stall it).
struct Instance {
    id: String,
    port: u16,
    child: Child,
    log: PathBuf,
    http: reqwest::blocking::Client,
}

impl Instance {
    /// Start an instance with the fault-test settings around `modules`, and wait until it is
    /// ready (store reachable, every chain consuming).
    fn start(scene: &Scene, id: &str, modules: &str) -> Instance {
        let port = common::free_port();
        let config = scene.config_file(id, port, modules);
        let log = scene.dir.path().join(format!("{id}-{port}.log"));
        let output = File::create(&log).expect("the log file is created");
        let child = Command::new(env!("CARGO_BIN_EXE_conserver"))
            .args(["serve", "--config"])
            .arg(&config)
            // Nothing from the test's environment (REDIS_URL, CONSERVER_INSTANCE_ID…) may
            // override the config file.
            .env_clear()
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("the log file handle is cloned"))
            .stderr(output)
            .spawn()
            .expect("the conserver binary starts");
        // No connection is kept idle: each request has one of its own, so none outlives a
        // killed or frozen instance to be tried again.
        let http = reqwest::blocking::Client::builder()
            .pool_max_idle_per_host(0)
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        let mut instance = Instance {
            id: id.to_owned(),
            port,
            child,
            log,
            http,
        };
        instance.wait_ready();
        instance
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = self.request(Method::GET, "/ready", None) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "instance {} exited at start ({status})\n{}",
                    self.id,
                    self.log_tail(60)
                );
            }
            assert!(
                Instant::now() < deadline,
                "instance {} was not ready within 30 s\n{}",
                self.id,
                self.log_tail(60)
            );
            std::thread::sleep(POLL);
        }
    }

    /// Send a signal (`STOP`, `CONT`) to the child.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(
            status.success(),
            "kill -{name} failed for instance {}",
            self.id
        );
    }

    /// SIGKILL, and wait until the process is gone.
    fn kill_hard(&mut self) {
        self.child.kill().expect("the instance can be killed");
        self.child.wait().expect("the killed instance is reaped");
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the process to exit by itself (within `PATIENCE`); its exit status.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "instance {} did not exit within {PATIENCE:?}\n{}",
                self.id,
                self.log_tail(40)
            );
            std::thread::sleep(POLL);
        }
    }

    /// POST a fresh vCon to the ingress list; its uuid when the answer is 201.
    fn try_post_vcon(&self) -> Option<String> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let body = common::vcon_json(&uuid, "2024-05-01T12:00:00Z", json!([]));
        let path = format!("/vcon?ingress_lists={INGRESS}");
        matches!(self.request(Method::POST, &path, Some(body)), Ok((201, _))).then_some(uuid)
    }

    /// POST a fresh vCon to the ingress list; its uuid.
    fn post_vcon(&self) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let body = common::vcon_json(&uuid, "2024-05-01T12:00:00Z", json!([]));
        let path = format!("/vcon?ingress_lists={INGRESS}");
        let (status, answer) = self
            .request(Method::POST, &path, Some(body))
            .unwrap_or_else(|e| panic!("POST /vcon to instance {}: {e:?}", self.id));
        assert_eq!(status, 201, "POST /vcon answered {status}: {answer}");
        uuid
    }

    fn post_vcons(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.post_vcon()).collect()
    }

    /// POST a route without a body and expect a 200 with a bare integer.
    fn post_for_count(&self, path: &str) -> u64 {
        let (status, body) = self
            .request(Method::POST, path, None)
            .unwrap_or_else(|e| panic!("POST {path} to instance {}: {e:?}", self.id));
        assert_eq!(status, 200, "POST {path} answered {status}: {body}");
        body.trim()
            .parse()
            .unwrap_or_else(|_| panic!("POST {path} answered {body:?}, not a count"))
    }

    fn status_of(&self, path: &str) -> (u16, String) {
        self.request(Method::GET, path, None)
            .unwrap_or_else(|e| panic!("GET {path} from instance {}: {e:?}", self.id))
    }

    /// The value of a sample in `/metrics`: the line of `metric` whose labels include all of
    /// `labels` (0 when there is none, as for a counter never incremented).
    fn metric(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let (status, text) = self.status_of("/metrics");
        assert_eq!(status, 200, "/metrics answered {status}: {text}");
        let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        text.lines()
            .filter(|line| {
                line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} "))
            })
            .find(|line| wanted.iter().all(|label| line.contains(label.as_str())))
            .map(|line| {
                let value = line.rsplit(' ').next().unwrap_or_default();
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("not a sample value in {line:?}"))
            })
            .unwrap_or(0.0)
    }

    /// This instance's `processed` runs of the chain.
    fn processed_runs(&self) -> f64 {
        self.metric(
            "conserver_chain_runs_total",
            &[("chain", CHAIN), ("outcome", "processed")],
        )
    }

    /// One request to the instance (a JSON body when there is one): the status and the body.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> reqwest::Result<(u16, String)> {
        let mut request = self
            .http
            .request(method, format!("http://127.0.0.1:{}{path}", self.port));
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        Ok((status, response.text()?))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- last {lines} log lines of instance {} ---\n{tail}\n",
            self.id
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) process too; on one already reaped, both calls
        // fail harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------- flaky link

/// A TCP proxy in front of Redis that can hold back Redis' answers, then cut every
/// connection: the network failing after Redis executed a command, before its answer arrived.
struct FlakyLink {
    port: u16,
    holding: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    /// Both ends of every connection made through the link, to cut them.
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl FlakyLink {
    fn to(redis_port: u16) -> FlakyLink {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("the proxy listens");
        listener
            .set_nonblocking(true)
            .expect("the proxy's listener is non-blocking");
        let link = FlakyLink {
            port: listener.local_addr().expect("the proxy's address").port(),
            holding: Arc::default(),
            stopped: Arc::default(),
            open: Arc::default(),
        };
        let (holding, stopped, open) = (
            link.holding.clone(),
            link.stopped.clone(),
            link.open.clone(),
        );
        std::thread::spawn(move || {
            // Non-blocking accepts, so the thread ends with the test.
            while !stopped.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", redis_port)) else {
                    continue;
                };
                let ends = || -> std::io::Result<[TcpStream; 4]> {
                    client.set_nonblocking(false)?;
                    Ok([
                        client.try_clone()?,
                        client.try_clone()?,
                        upstream.try_clone()?,
                        upstream.try_clone()?,
                    ])
                };
                let Ok([client_in, client_out, upstream_in, upstream_out]) = ends() else {
                    continue;
                };
                open.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend([client, upstream]);
                std::thread::spawn(move || pump(client_in, upstream_out, None));
                let holding = holding.clone();
                std::thread::spawn(move || pump(upstream_in, client_out, Some(holding)));
            }
        });
        link
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on, Redis' answers wait in the proxy.
    fn hold_answers(&self) {
        self.holding.store(true, Ordering::SeqCst);
    }

    /// Reset every connection made so far, dropping the answers held back; new connections
    /// work normally.
    fn cut_and_restore(&self) {
        for stream in self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.holding.store(false, Ordering::SeqCst);
    }
}

impl Drop for FlakyLink {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.cut_and_restore();
    }
}

/// Copy `from` to `to` until either closes; while `holding` is set, what was read waits.
fn pump(mut from: TcpStream, mut to: TcpStream, holding: Option<Arc<AtomicBool>>) {
    let mut buffer = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer) {
        while holding.as_ref().is_some_and(|h| h.load(Ordering::SeqCst)) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

// --------------------------------------------------------------------------- tests

/// Instance `a`, killed with SIGKILL in the middle of a run of 40 vCons.
struct Interrupted {
    /// The `links`/`storages`/`chains` sections `a` ran with.
    modules: String,
    /// Every vCon posted.
    uuids: Vec<String>,
    /// The dead instance (kept for its log).
    dead: Instance,
    /// The uuids in its processing list when it died.
    in_flight: Vec<String>,
}

/// Instance `a` takes 40 vCons through a slow chain (4 workers, 0.2 s each) and is killed
/// with SIGKILL after about 10, while it has runs in flight.
fn run_a_then_kill_it(scene: &Scene) -> Interrupted {
    let modules = scene.slow_chain_yaml(0.2);
    let mut dead = Instance::start(scene, "a", &modules);
    let uuids = dead.post_vcons(40);
    wait_until(
        "10 vCons processed by instance a",
        || scene.chain_stat("processed") >= 10,
        || scene.report(&uuids, &[&dead]),
    );
    let in_flight = freeze_with_work_in_flight(scene, &dead, "a");
    dead.kill_hard();
    assert!(
        scene.chain_stat("processed") < 40,
        "the kill came too late to interrupt anything"
    );
    Interrupted {
        modules,
        uuids,
        dead,
        in_flight,
    }
}

/// Stop `instance` (SIGSTOP) at a moment when its processing list is not empty, so that the
/// kill that follows interrupts runs; the uuids it had in flight.
fn freeze_with_work_in_flight(scene: &Scene, instance: &Instance, id: &str) -> Vec<String> {
    let processing = processing_of(id);
    let mut in_flight = Vec::new();
    wait_until(
        &format!("moment with vCons in flight on instance {id}"),
        || {
            instance.signal("STOP");
            // Commands the process had already written still reach Redis: let them land.
            std::thread::sleep(Duration::from_millis(100));
            in_flight = scene.list(&processing);
            if in_flight.is_empty() {
                instance.signal("CONT");
            }
            !in_flight.is_empty()
        },
        || scene.report(&[], &[instance]),
    );
    in_flight
}

/// Wait until every vCon is stored once in the file storage and on the egress list, and
/// nowhere else. Duplicates on egress are allowed (at-least-once) and only reported.
fn assert_every_vcon_delivered(scene: &Scene, uuids: &[String], instances: &[&Instance]) {
    scene.wait_for_every(
        uuids,
        "vCon stored and on the egress list",
        Whereabouts::delivered,
        instances,
    );
    let ledger = scene.ledger_now(uuids);
    let duplicates: usize = ledger.values().map(|w| w.egress - 1).sum();
    assert_every(
        &ledger,
        &format!(
            "stored and on the egress list ({duplicates} duplicate egress entries, allowed by \
             at-least-once)"
        ),
        Whereabouts::delivered,
    );
    let files: Vec<String> = std::fs::read_dir(scene.storage_dir())
        .expect("the storage directory is readable")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json"))
        .collect();
    assert_eq!(
        files.len(),
        uuids.len(),
        "one file per vCon in the file storage, no other: {files:?}"
    );
    assert_settled(scene, uuids, VCON_TTL);
}

#[test]
fn a_killed_instance_s_vcons_are_recovered_by_another_instance() {
    let scene = Scene::on_shared_redis();
    let Interrupted {
        modules,
        uuids,
        dead,
        in_flight,
    } = run_a_then_kill_it(&scene);
    let survivor = Instance::start(&scene, "b", &modules);
    let started = Instant::now();

    // `a`'s heartbeat lasts at most heartbeat_ttl after its death, and `b` looks for dead
    // instances every heartbeat_ttl: the items come back within about twice that.
    let processing_of_a = processing_of("a");
    wait_until(
        "recovery of what instance a had in flight",
        || scene.try_list(&processing_of_a).is_ok_and(|l| l.is_empty()),
        || scene.report(&uuids, &[&dead, &survivor]),
    );
    // Twice the TTL plus as much again for a loaded machine: a reaper ignoring
    // `heartbeat_ttl` (30 s by default) would miss it.
    let recovery_bound = Duration::from_secs(4 * HEARTBEAT_TTL);
    assert!(
        started.elapsed() <= recovery_bound,
        "recovered {:?} after b started; expected within ~2 × heartbeat_ttl (bound {recovery_bound:?})",
        started.elapsed()
    );
    assert_every_vcon_delivered(&scene, &uuids, &[&dead, &survivor]);

    // Only the reaper of `b` can have handed back what `a` held, and only once.
    let recovered = survivor.metric(
        "conserver_recovered_items_total",
        &[("ingress_list", INGRESS)],
    );
    assert_eq!(
        recovered,
        in_flight.len() as f64,
        "instance b recovers exactly what a had in flight: {in_flight:?}"
    );
    let instances: BTreeSet<String> = redis::cmd("SMEMBERS")
        .arg(scene.key("conserver:instances"))
        .query(&mut scene.connection().expect("Redis answers"))
        .expect("the instances set is readable");
    assert_eq!(
        instances,
        BTreeSet::from(["b".to_owned()]),
        "the dead instance is removed from the cluster"
    );
    let leftovers: Vec<String> = [
        processing_of_a,
        "conserver:instance:a".to_owned(),
        "conserver:instance:a:lists".to_owned(),
    ]
    .into_iter()
    .filter(|key| !scene.keys(key).expect("Redis answers").is_empty())
    .collect();
    assert_eq!(
        leftovers,
        Vec::<String>::new(),
        "nothing of the dead instance remains (processing list, heartbeat, lists set)"
    );
}

#[test]
fn a_killed_instance_restarted_under_its_id_takes_back_its_own_leftovers() {
    let scene = Scene::on_shared_redis();
    let Interrupted {
        modules,
        uuids,
        dead,
        in_flight,
    } = run_a_then_kill_it(&scene);
    // With the same id no reaper ever recovers `a` (its heartbeat is alive again): only the
    // recovery at start can hand back what it had in flight, else those vCons never finish.
    let restarted = Instance::start(&scene, "a", &modules);
    assert_every_vcon_delivered(&scene, &uuids, &[&dead, &restarted]);
    assert!(!in_flight.is_empty(), "the kill interrupted runs");
}

/// The processing list of instance `id` (its name under the prefix).
fn processing_of(id: &str) -> String {
    format!("{{{INGRESS}}}:processing:{id}")
}

/// Whether instance `id` is registered: in `conserver:instances`, with its lists set.
fn registered(scene: &Scene, id: &str) -> redis::RedisResult<bool> {
    let mut con = scene.connection()?;
    let member: bool = redis::cmd("SISMEMBER")
        .arg(scene.key("conserver:instances"))
        .arg(id)
        .query(&mut con)?;
    let lists: bool = redis::cmd("EXISTS")
        .arg(scene.key(&format!("conserver:instance:{id}:lists")))
        .query(&mut con)?;
    Ok(member && lists)
}

#[test]
fn an_instance_presumed_dead_that_comes_back_is_still_recovered_when_it_dies() {
    let scene = Scene::on_shared_redis();
    let modules = scene.slow_chain_yaml(0.2);
    let mut a = Instance::start(&scene, "a", &modules);
    let mut uuids = a.post_vcons(20);
    wait_until(
        "4 vCons processed by instance a",
        || scene.chain_stat("processed") >= 4,
        || scene.report(&uuids, &[&a]),
    );
    // Frozen longer than its heartbeat lives, `a` looks dead to `b`, which takes back its items.
    let first_in_flight = freeze_with_work_in_flight(&scene, &a, "a");
    let b = Instance::start(&scene, "b", &modules);
    wait_until(
        "recovery of the frozen instance a by b",
        || {
            scene
                .try_list(&processing_of("a"))
                .is_ok_and(|l| l.is_empty())
                && registered(&scene, "a").is_ok_and(|r| !r)
        },
        || scene.report(&uuids, &[&a, &b]),
    );

    // Back to life, `a` finds its heartbeat gone and registers again (redis.md §3.4); it
    // finishes the runs it had (duplicates, allowed) and takes new work.
    a.signal("CONT");
    wait_until(
        "instance a registered again",
        || registered(&scene, "a").is_ok_and(|r| r),
        || scene.report(&uuids, &[&a, &b]),
    );
    uuids.extend(b.post_vcons(40));
    let second_in_flight = freeze_with_work_in_flight(&scene, &a, "a");
    a.kill_hard();

    // Its second death must be noticed like the first: the items it took after coming back
    // are recovered too, not stranded in its processing list.
    assert_every_vcon_delivered(&scene, &uuids, &[&a, &b]);
    let recovered = b.metric(
        "conserver_recovered_items_total",
        &[("ingress_list", INGRESS)],
    );
    assert_eq!(
        recovered,
        (first_in_flight.len() + second_in_flight.len()) as f64,
        "b recovered a twice: {first_in_flight:?}, then {second_in_flight:?}"
    );
}

#[test]
fn sigterm_hands_back_the_runs_that_outlast_the_grace_at_the_head_of_the_list() {
    let scene = Scene::on_shared_redis();
    // Runs far longer than limits.shutdown_grace (5 s).
    let mut instance = Instance::start(&scene, "a", &scene.slow_chain_yaml(60.0));
    let uuids = instance.post_vcons(6);
    wait_until(
        "4 runs in flight (workers: 4) and 2 vCons waiting",
        || scene.list(&processing_of("a")).len() == 4 && scene.list(INGRESS).len() == 2,
        || scene.report(&uuids, &[&instance]),
    );

    instance.signal("TERM");
    let status = instance.wait_exit();
    assert!(
        status.success(),
        "a clean exit on SIGTERM ({status})\n{}",
        instance.log_tail(40)
    );
    // The interrupted runs went back to the head, oldest first: the list is in posting order.
    assert_eq!(
        scene.list(INGRESS),
        uuids,
        "every vCon back in the ingress list, in the order it was posted\n{}",
        scene.report(&uuids, &[&instance])
    );
    assert_every(&scene.ledger_now(&uuids), "only queued", |w| {
        *w == Whereabouts {
            ingress: 1,
            ..Whereabouts::default()
        }
    });
    for field in ["processed", "halted", "failed"] {
        assert_eq!(scene.chain_stat(field), 0, "no run ended as {field}");
    }
    // Still queued: one pending run each, and no TTL (a queued vCon cannot expire, §3.1).
    let expected: BTreeMap<String, (Option<i64>, i64)> =
        uuids.iter().map(|u| (u.clone(), (Some(1), -1))).collect();
    assert_eq!(
        retention(&scene, &uuids),
        expected,
        "(pending count, TTL) per vCon"
    );
    let left: Vec<String> = scene.keys("conserver:instance*").expect("Redis answers");
    assert_eq!(
        left,
        Vec::<String>::new(),
        "the instance left the cluster: no heartbeat, lists set or membership"
    );
}

#[test]
fn sigterm_lets_the_runs_in_flight_finish_within_the_grace() {
    let scene = Scene::on_shared_redis();
    // Runs of 1.5 s, well within limits.shutdown_grace (5 s).
    let mut instance = Instance::start(&scene, "a", &scene.slow_chain_yaml(1.5));
    let uuids = instance.post_vcons(6);
    wait_until(
        "4 runs in flight (workers: 4)",
        || scene.list(&processing_of("a")).len() == 4,
        || scene.report(&uuids, &[&instance]),
    );
    let in_flight = scene.list(&processing_of("a"));

    instance.signal("TERM");
    let status = instance.wait_exit();
    assert!(
        status.success(),
        "a clean exit on SIGTERM ({status})\n{}",
        instance.log_tail(40)
    );
    // The runs in flight finished (stored, on egress); the ones still queued stay queued.
    let ledger = scene.ledger_now(&uuids);
    for uuid in &in_flight {
        assert!(
            ledger[uuid].delivered(),
            "{uuid} was in flight at SIGTERM and must have finished: {:?}\n{}",
            ledger[uuid],
            scene.report(&uuids, &[&instance])
        );
    }
    assert_eq!(scene.chain_stat("processed"), in_flight.len() as u64);
    assert_eq!(scene.list(INGRESS).len(), uuids.len() - in_flight.len());
}

#[test]
fn redis_stopped_and_started_mid_run_loses_nothing_and_the_server_recovers() {
    let data = tempfile::tempdir().expect("a directory for Redis' data");
    let mut redis = OwnRedis::start_persistent(data.path());
    let scene = Scene::on(redis.url());
    let mut instance = Instance::start(&scene, "a", &scene.slow_chain_yaml(0.2));
    let uuids = instance.post_vcons(40);
    wait_until(
        "10 vCons processed before the outage",
        || scene.chain_stat("processed") >= 10,
        || scene.report(&uuids, &[&instance]),
    );

    let processed_before = scene.chain_stat("processed");
    // Should Redis die after executing a claim but before its answer left, the item would
    // stay in this live instance's processing list: a_claim_whose_answer_is_lost_… shows that
    // case deterministically; here it is a rare flake.
    redis.stop();
    let outage = Instant::now();
    assert!(
        processed_before < 40,
        "the outage came too late to interrupt anything"
    );
    // Liveness does not depend on Redis; readiness does.
    assert_eq!(
        instance.status_of("/health").0,
        200,
        "alive during the outage"
    );
    assert_eq!(
        instance.status_of("/ready").0,
        503,
        "not ready during the outage"
    );
    // The outage lasts long enough for runs to end while Redis is away (each takes 0.2 s).
    std::thread::sleep(Duration::from_secs(2).saturating_sub(outage.elapsed()));
    assert!(
        instance.is_running(),
        "the server survives the outage\n{}",
        instance.log_tail(40)
    );
    redis.resume();

    assert_every_vcon_delivered(&scene, &uuids, &[&instance]);
    assert_eq!(
        instance.status_of("/health").0,
        200,
        "alive after the outage"
    );
    let last = std::cell::RefCell::new((0, String::new()));
    wait_until(
        "/ready 200 after the outage",
        || {
            *last.borrow_mut() = instance.status_of("/ready");
            last.borrow().0 == 200
        },
        || {
            format!(
                "last answer: {:?}\n{}",
                last.borrow(),
                instance.log_tail(40)
            )
        },
    );
}

/// A tokio runtime of the test's own for wiremock (the rest of the test is blocking code).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A server answering every POST to `route` with `status` (and nothing else mounted).
fn answer_with(rt: &tokio::runtime::Runtime, server: &MockServer, route: &str, status: u16) {
    rt.block_on(async {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(status))
            .mount(server)
            .await;
    });
}

/// How many requests the server received for each vCon uuid (from the posted body).
fn requests_per_uuid(rt: &tokio::runtime::Runtime, server: &MockServer) -> BTreeMap<String, usize> {
    let requests = rt
        .block_on(server.received_requests())
        .expect("wiremock records requests");
    let mut counts = BTreeMap::new();
    for request in requests {
        let body: Value = serde_json::from_slice(&request.body).expect("a vCon was posted");
        let uuid = body["uuid"]
            .as_str()
            .expect("the posted vCon has a uuid")
            .to_owned();
        *counts.entry(uuid).or_insert(0) += 1;
    }
    counts
}

/// `n` times each of `uuids`.
fn each_times(uuids: &[String], n: usize) -> BTreeMap<String, usize> {
    uuids.iter().map(|u| (u.clone(), n)).collect()
}

const RETRY_TWICE: &str = "retry: {attempts: 2, initial_backoff: 0.05, max_backoff: 0.1}";

#[test]
fn a_failing_webhook_link_dead_letters_then_reprocessing_finishes_the_vcons() {
    let rt = runtime();
    let hook = rt.block_on(MockServer::start());
    answer_with(&rt, &hook, "/hook", 500);
    let scene = Scene::on_shared_redis();
    let modules = format!(
        "links:\n  hook:\n    module: webhook\n    options: {{webhook-urls: ['{}/hook'], timeout: 5}}\n    \
         {RETRY_TWICE}\n\
         storages:\n{}\
         chains:\n  {CHAIN}:\n    links: [hook]\n    storages: [files]\n    \
         ingress_lists: [{INGRESS}]\n    egress_lists: [{EGRESS}]\n    workers: 4\n",
        hook.uri(),
        scene.file_storage_yaml()
    );
    let instance = Instance::start(&scene, "a", &modules);
    let uuids = instance.post_vcons(5);

    scene.wait_for_every(
        &uuids,
        "vCon in DLQ:in after the webhook failed",
        |w| w.dlq == 1 && w.processing == 0,
        &[&instance],
    );
    assert_every(&scene.ledger_now(&uuids), "in DLQ:in only", |w| {
        *w == Whereabouts {
            dlq: 1,
            ..Whereabouts::default()
        }
    });
    assert_eq!(scene.chain_stat("failed"), 5);
    // A failed run keeps the vCon for the DLQ's retention (redis.md §4.2).
    assert_settled(&scene, &uuids, DLQ_TTL);
    assert_eq!(
        requests_per_uuid(&rt, &hook),
        each_times(&uuids, 2),
        "two tries per vCon (retry attempts: 2)"
    );

    answer_with(&rt, &hook, "/hook", 200);
    let moved = instance.post_for_count(&format!("/dlq/reprocess?ingress_list={INGRESS}"));
    assert_eq!(moved, 5, "every dead-lettered vCon is moved back");
    scene.wait_for_every(
        &uuids,
        "vCon stored and on the egress list after reprocessing",
        Whereabouts::delivered,
        &[&instance],
    );
    assert_every(&scene.ledger_now(&uuids), "delivered exactly once", |w| {
        *w == Whereabouts {
            stored: true,
            egress: 1,
            ..Whereabouts::default()
        }
    });
    assert_eq!(
        requests_per_uuid(&rt, &hook),
        each_times(&uuids, 1),
        "one successful delivery per vCon after the webhook recovered"
    );
    assert_settled(&scene, &uuids, VCON_TTL);
    assert_eq!(scene.chain_stat("processed"), 5);
}

#[test]
fn a_storage_down_holds_back_egress_until_its_dlq_is_reprocessed() {
    let rt = runtime();
    let archive = rt.block_on(MockServer::start());
    answer_with(&rt, &archive, "/archive", 503);
    let scene = Scene::on_shared_redis();
    let modules = format!(
        "storages:\n{}  archive:\n    module: webhook\n    \
         options: {{webhook-urls: ['{}/archive'], timeout: 5}}\n    {RETRY_TWICE}\n\
         chains:\n  {CHAIN}:\n    links: []\n    storages: [files, archive]\n    \
         ingress_lists: [{INGRESS}]\n    egress_lists: [{EGRESS}]\n    workers: 4\n",
        scene.file_storage_yaml(),
        archive.uri()
    );
    let instance = Instance::start(&scene, "a", &modules);
    let uuids = instance.post_vcons(5);

    scene.wait_for_every(
        &uuids,
        "vCon in DLQ:storage:archive",
        |w| w.storage_dlq == 1 && w.processing == 0,
        &[&instance],
    );
    // The file storage took its write; egress waits for the archive (redis.md §4.3).
    assert_every(
        &scene.ledger_now(&uuids),
        "stored in files, dead-lettered for archive, egress held back",
        |w| {
            *w == Whereabouts {
                stored: true,
                storage_dlq: 1,
                egress_pending: true,
                ..Whereabouts::default()
            }
        },
    );
    assert_eq!(
        scene.list(EGRESS),
        Vec::<String>::new(),
        "nothing announced yet"
    );
    // A dead-lettered storage write keeps the vCon for the DLQ's retention (redis.md §4.2).
    assert_settled(&scene, &uuids, DLQ_TTL);
    assert_eq!(
        scene.chain_stat("processed"),
        5,
        "the runs still count as processed"
    );
    assert_eq!(
        requests_per_uuid(&rt, &archive),
        each_times(&uuids, 2),
        "two tries per vCon (retry attempts: 2)"
    );
    let record: Value = serde_json::from_str(
        &redis::cmd("GET")
            .arg(scene.key(&format!("conserver:egress_pending:{}", uuids[0])))
            .query::<String>(&mut scene.connection().expect("Redis answers"))
            .expect("the egress-pending record is readable"),
    )
    .expect("the egress-pending record is JSON");
    assert_eq!(
        record,
        json!({"chain": CHAIN, "egress_lists": [EGRESS], "storages": ["archive"]})
    );

    // Reprocessing while the storage is still down stops at the first failure and changes
    // nothing (api.md §5.21).
    let dead_lettered = scene.list("DLQ:storage:archive");
    answer_with(&rt, &archive, "/archive", 503);
    let written = instance.post_for_count("/dlq/storage/reprocess?storage_name=archive");
    assert_eq!(written, 0, "nothing can be written yet");
    assert_eq!(
        scene.list("DLQ:storage:archive"),
        dead_lettered,
        "the failed entry stays at the head, the others untouched"
    );
    assert_eq!(
        scene.list(EGRESS),
        Vec::<String>::new(),
        "still nothing announced"
    );
    assert_eq!(
        requests_per_uuid(&rt, &archive),
        each_times(&dead_lettered[..1], 2),
        "only the head was tried, with the storage's retries"
    );

    answer_with(&rt, &archive, "/archive", 200);
    let written = instance.post_for_count("/dlq/storage/reprocess?storage_name=archive");
    assert_eq!(written, 5, "every dead-lettered write succeeds now");
    // The reprocessing is done when the route answers: no wait.
    assert_every(&scene.ledger_now(&uuids), "delivered exactly once", |w| {
        *w == Whereabouts {
            stored: true,
            egress: 1,
            ..Whereabouts::default()
        }
    });
    assert_eq!(
        requests_per_uuid(&rt, &archive),
        each_times(&uuids, 1),
        "one successful write per vCon after the storage recovered"
    );
}

#[test]
fn two_instances_share_the_lists_and_process_each_vcon_once() {
    let scene = Scene::on_shared_redis();
    let modules = scene.slow_chain_yaml(0.01);
    let a = Instance::start(&scene, "a", &modules);
    let b = Instance::start(&scene, "b", &modules);
    // Both are consuming before the first vCon arrives. All are posted through `a`: what
    // `b` processes it can only have taken from the shared list.
    let uuids = a.post_vcons(200);

    scene.wait_for_every(
        &uuids,
        "vCon stored and on the egress list",
        Whereabouts::delivered,
        &[&a, &b],
    );
    assert_every(&scene.ledger_now(&uuids), "delivered exactly once", |w| {
        *w == Whereabouts {
            stored: true,
            egress: 1,
            ..Whereabouts::default()
        }
    });
    let egress = scene.list(EGRESS);
    assert_eq!(egress.len(), 200, "200 egress entries");
    assert_eq!(
        egress.iter().collect::<BTreeSet<_>>().len(),
        200,
        "200 different uuids on egress"
    );
    assert_settled(&scene, &uuids, VCON_TTL);
    assert_eq!(
        scene.chain_stat("processed"),
        200,
        "each vCon processed once"
    );
    let (by_a, by_b) = (a.processed_runs(), b.processed_runs());
    assert_eq!(by_a + by_b, 200.0, "a processed {by_a}, b processed {by_b}");
    assert!(
        by_a > 0.0 && by_b > 0.0,
        "both instances take work: a processed {by_a}, b processed {by_b}"
    );
}

#[test]
fn a_claim_whose_answer_is_lost_is_still_processed() {
    let redis = OwnRedis::start();
    let link = FlakyLink::to(redis.port);
    let scene = Scene::behind(redis.url(), link.url());
    let instance = Instance::start(&scene, "a", &scene.slow_chain_yaml(0.01));
    let first = vec![instance.post_vcon()];
    scene.wait_for_every(
        &first,
        "first vCon delivered",
        Whereabouts::delivered,
        &[&instance],
    );

    // The instance waits in BLMOVE. A vCon arrives; Redis moves it to the processing list,
    // but the answer never reaches the instance: the network fails first.
    link.hold_answers();
    let lost = vec![uuid::Uuid::new_v4().to_string()];
    enqueue_directly(&scene, &lost[0]);
    wait_until(
        "claim of the vCon executed by Redis",
        || scene.list(&processing_of("a")) == lost,
        || scene.report(&lost, &[&instance]),
    );
    link.cut_and_restore();

    // The instance works again...
    let mut after = Vec::new();
    wait_until(
        "vCon accepted after the network came back",
        || match instance.try_post_vcon() {
            Some(uuid) => {
                after.push(uuid);
                true
            }
            None => false,
        },
        || instance.log_tail(40),
    );
    scene.wait_for_every(
        &after,
        "vCon delivered after the network came back",
        Whereabouts::delivered,
        &[&instance],
    );
    // ...and the vCon it never heard of must not stay in its processing list for as long as
    // it lives: nothing else would ever take it (the instance is alive, so no reaper does).
    wait_within(
        Duration::from_secs(6 * HEARTBEAT_TTL),
        "processing of the vCon whose claim answer was lost",
        || {
            scene
                .ledger(&lost)
                .is_ok_and(|l| l.values().all(Whereabouts::delivered))
        },
        || scene.report(&lost, &[&instance]),
    );
}

/// Queue `uuid` as the API would (redis.md §3.1), writing to Redis directly: the vCon, its
/// pending count, the ingress list.
fn enqueue_directly(scene: &Scene, uuid: &str) {
    let text = common::vcon_json(uuid, "2024-05-01T12:00:00Z", json!([]));
    let mut con = scene.connection().expect("Redis answers");
    redis::pipe()
        .cmd("SET")
        .arg(scene.key(&format!("vcon:{uuid}")))
        .arg(text)
        .ignore()
        .cmd("HINCRBY")
        .arg(scene.key(&format!("{{vcon:{uuid}}}:pending")))
        .arg("count")
        .arg(1)
        .ignore()
        .cmd("RPUSH")
        .arg(scene.key(INGRESS))
        .arg(uuid)
        .ignore()
        .query::<()>(&mut con)
        .expect("the vCon is queued");
}
