//! Helpers shared by the integration tests: an app in process on a real Redis (each test with
//! its own key prefix, removed at the end) or on the memory store, and request shortcuts.

use std::collections::HashMap;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use conserver::api::{self, AppState, Role};
use conserver::config::{Config, Env};
use conserver::server::store_settings;
use conserver::store;
use serde_json::Value;

/// The Redis the tests use: `CONSERVER_TEST_REDIS_URL`, else the local default.
pub fn redis_url() -> String {
    std::env::var("CONSERVER_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// Which store a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redis,
    Memory,
}

/// A test's app state plus the key prefix it owns; its Redis keys are removed when dropped.
pub struct TestState {
    pub state: web::Data<AppState>,
    pub prefix: String,
    backend: Backend,
}

impl Drop for TestState {
    fn drop(&mut self) {
        if self.backend == Backend::Redis {
            delete_prefix(&self.prefix);
        }
    }
}

/// Remove every key under `prefix` (best effort: a failed clean-up must not fail a test).
pub fn delete_prefix(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut con) = client.get_connection() else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut con);
    }
}

/// Compile `yaml` for a test on `backend`: the redis section gets the test Redis and a fresh
/// key prefix. `env` supplies `${VAR}` values.
pub fn config_for(yaml: &str, backend: Backend, env: &[(&str, &str)]) -> (Config, String, Env) {
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let env = Env(env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<HashMap<_, _>>());
    let mut doc: Value = serde_norway::from_str(if yaml.trim().is_empty() { "{}" } else { yaml })
        .expect("test config is YAML");
    let redis = doc
        .as_object_mut()
        .expect("test config is a mapping")
        .entry("redis")
        .or_insert_with(|| serde_json::json!({}));
    if redis.is_null() {
        *redis = serde_json::json!({});
    }
    if backend == Backend::Redis {
        redis["url"] = Value::String(redis_url());
        redis["key_prefix"] = Value::String(prefix.clone());
    }
    // JSON is YAML, and serde_json writes its numbers as they were read.
    let text = serde_json::to_string_pretty(&doc).expect("serialisable");
    let config = Config::from_yaml(&text, None, &env)
        .unwrap_or_else(|e| panic!("test config is valid: {e}"));
    (config, prefix, env)
}

/// The state of an app on `backend` with config `yaml`.
pub async fn state(yaml: &str, backend: Backend) -> TestState {
    state_with_env(yaml, backend, &[]).await
}

pub async fn state_with_env(yaml: &str, backend: Backend, env: &[(&str, &str)]) -> TestState {
    state_for_role(yaml, backend, env, Role::Api).await
}

/// The state of an instance with `role` (`All` to run the engine too).
pub async fn state_for_role(
    yaml: &str,
    backend: Backend,
    env: &[(&str, &str)],
    role: Role,
) -> TestState {
    let (config, prefix, env) = config_for(yaml, backend, env);
    let store = store::open(config.redis.url.as_deref(), store_settings(&config))
        .await
        .expect("the test store opens (is Redis running? scripts/test starts it)");
    TestState {
        state: web::Data::new(
            AppState::new(store, config, env, role).expect("the test config's modules build"),
        ),
        prefix,
        backend,
    }
}

/// An app over a test state.
pub async fn service(
    state: &TestState,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(api::app(state.state.clone())).await
}

/// A response read in full.
pub struct Reply {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    /// The body as JSON (panics with the body text when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send a request and read the whole response.
pub async fn send<S, B>(app: &S, req: TestRequest) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, req.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await;
    Reply {
        status,
        headers,
        body,
    }
}

/// A small valid vCon with a fresh uuid and the given parties.
pub fn vcon_json(uuid: &str, created_at: &str, parties: Value) -> String {
    serde_json::json!({
        "uuid": uuid,
        "vcon": "0.4.0",
        "created_at": created_at,
        "parties": parties,
        "dialog": [],
    })
    .to_string()
}

/// The directory of the conformance corpus (tests/corpus: the sample vCons, EXPECTED.json
/// and SOURCES.md).
pub fn corpus_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    assert!(
        dir.join("EXPECTED.json").exists(),
        "the sample vCons are expected at {} with EXPECTED.json",
        dir.display()
    );
    dir
}

/// A redis-server of the test's own, on a free port, that the test can stop and start again.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
    /// Where an append-only file keeps the data across `stop`/`resume` (None: nothing kept).
    persistence: Option<std::path::PathBuf>,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let port = free_port();
        let mut redis = OwnRedis {
            port,
            child: None,
            persistence: None,
        };
        redis.resume();
        redis
    }

    /// A server that keeps its data in `dir` across `stop` and `resume`: every write is
    /// fsynced before Redis answers it, so an outage loses nothing that was acknowledged.
    pub fn start_persistent(dir: &std::path::Path) -> OwnRedis {
        let port = free_port();
        let mut redis = OwnRedis {
            port,
            child: None,
            persistence: Some(dir.to_owned()),
        };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the server (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port and wait until it answers.
    pub fn resume(&mut self) {
        let persistence: Vec<std::ffi::OsString> = match &self.persistence {
            Some(dir) => vec![
                "--appendonly".into(),
                "yes".into(),
                "--appendfsync".into(),
                "always".into(),
                "--dir".into(),
                dir.into(),
            ],
            None => vec!["--appendonly".into(), "no".into()],
        };
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(persistence)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The state of an app on the memory store, loaded from a config file at `path` (so that
/// `POST /config` writes there).
pub async fn file_state(path: &std::path::Path, env: &[(&str, &str)]) -> TestState {
    let env = Env(env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<HashMap<_, _>>());
    let config =
        Config::load(Some(path), &env).unwrap_or_else(|e| panic!("test config is valid: {e}"));
    let store = store::open(None, store_settings(&config))
        .await
        .expect("the memory store opens");
    TestState {
        state: web::Data::new(
            AppState::new(store, config, env, Role::Api).expect("the test config's modules build"),
        ),
        prefix: String::new(),
        backend: Backend::Memory,
    }
}

/// The state of an app on `backend`, loaded from a config file at `path` that already names
/// the test Redis and `prefix` (so that `POST /config` writes there); keys removed at the end.
pub async fn file_state_on(path: &std::path::Path, backend: Backend, prefix: &str) -> TestState {
    let env = Env::default();
    let config =
        Config::load(Some(path), &env).unwrap_or_else(|e| panic!("test config is valid: {e}"));
    let store = store::open(config.redis.url.as_deref(), store_settings(&config))
        .await
        .expect("the test store opens");
    let state =
        AppState::new(store, config, env, Role::All).expect("the test config's modules build");
    TestState {
        state: web::Data::new(state),
        prefix: prefix.to_owned(),
        backend,
    }
}

/// The link `name` of the configuration `yaml`, built as the engine builds it, with the
/// context it was built with and the configuration's warnings.
pub fn link_from_yaml(
    yaml: &str,
    name: &str,
) -> (
    std::sync::Arc<dyn conserver::links::Link>,
    conserver::modules::ModuleContext,
    Vec<String>,
) {
    let config = Config::from_yaml(yaml, None, &Env::default())
        .unwrap_or_else(|e| panic!("test config is valid: {e}"));
    let store = std::sync::Arc::new(store::memory::MemoryStore::new(store_settings(&config)));
    let ctx = conserver::modules::ModuleContext::new(
        config.limits.clone(),
        std::sync::Arc::new(conserver::metrics::Metrics::new()),
        store,
    );
    let module = config
        .links
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no link {name} in the test config"));
    let link = module
        .kind
        .build(module, &ctx)
        .unwrap_or_else(|e| panic!("the link builds: {e}"));
    (link, ctx, config.warnings.clone())
}

/// The problems of building the link `name` of `yaml` (compile and build), as text.
pub fn link_problems(yaml: &str, name: &str) -> Vec<String> {
    let config = match Config::from_yaml(yaml, None, &Env::default()) {
        Ok(config) => config,
        Err(conserver::config::ConfigError::Invalid(problems)) => {
            return problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => return vec![other.to_string()],
    };
    let store = std::sync::Arc::new(store::memory::MemoryStore::new(store_settings(&config)));
    let ctx = conserver::modules::ModuleContext::new(
        config.limits.clone(),
        std::sync::Arc::new(conserver::metrics::Metrics::new()),
        store,
    );
    let module = config
        .links
        .iter()
        .find(|m| m.name == name)
        .expect("the link");
    match module.kind.build(module, &ctx) {
        Ok(_) => Vec::new(),
        Err(e) => e.into_problems().iter().map(ToString::to_string).collect(),
    }
}

/// Run `link` once on `vcon` (chain `main`).
pub async fn run_link(
    link: &std::sync::Arc<dyn conserver::links::Link>,
    vcon: &mut conserver::vcon::Document,
) -> Result<conserver::links::LinkOutcome, conserver::links::LinkError> {
    let mut effects = conserver::links::RunEffects::default();
    let mut ctx = conserver::links::LinkContext {
        chain: "main",
        link: "under_test",
        ingress_list: "default",
        effects: &mut effects,
    };
    link.run(vcon, &mut ctx).await
}

/// A document of `value` under its `uuid`.
pub fn document(value: Value) -> conserver::vcon::Document {
    let uuid = value["uuid"]
        .as_str()
        .expect("a uuid")
        .parse()
        .expect("a uuid");
    conserver::vcon::Document::from_stored(uuid, value.to_string()).expect("an object")
}

/// The `conserver_retries_total` count of `component` for `reason`.
pub fn retries(ctx: &conserver::modules::ModuleContext, component: &str, reason: &str) -> u64 {
    ctx.metrics
        .retries
        .with_label_values(&[component, reason])
        .get()
}

/// The recording of the end-to-end tests (a copy of the shared corpus' `ab_call.wav`).
pub fn ab_call_wav() -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/ab_call.wav"))
        .expect("tests/media/ab_call.wav")
}

/// Start the engine of a test state (what `serve` does for the roles `all` and `worker`).
pub async fn start_engine(state: &TestState) -> std::sync::Arc<conserver::engine::Engine> {
    let live = state.state.config();
    let engine = conserver::engine::Engine::start(
        &live.config,
        &live.pipelines,
        state.state.store.clone(),
        state.state.metrics.clone(),
    )
    .await
    .expect("the engine starts");
    let engine = std::sync::Arc::new(engine);
    state.state.set_engine(engine.clone());
    engine
}

/// Wait until `check` holds (the engine works in the background), at most 30 s.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A list of the test Redis, whole.
pub fn redis_list(key: &str) -> Vec<String> {
    let mut con = redis::Client::open(redis_url())
        .and_then(|c| c.get_connection())
        .expect("the test Redis answers");
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .expect("LRANGE")
}

/// Delete keys of the test Redis.
pub fn redis_del(key: &str) {
    let mut con = redis::Client::open(redis_url())
        .and_then(|c| c.get_connection())
        .expect("the test Redis answers");
    let _: i64 = redis::cmd("DEL").arg(key).query(&mut con).expect("DEL");
}

/// A test tool installed by `scripts/test` (`CONSERVER_TEST_<VAR>`), else the one of its
/// virtualenv in `~/.cache/conserver-test`, else the name on the PATH.
pub fn test_tool(variable: &str, name: &str) -> std::path::PathBuf {
    if let Some(path) = std::env::var_os(variable).filter(|v| !v.is_empty()) {
        return path.into();
    }
    let cached = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .map(|home| home.join(".cache/conserver-test/venv/bin").join(name));
    match cached {
        Some(path) if path.exists() => path,
        _ => name.into(),
    }
}

/// The MongoDB-protocol server the tests use: `CONSERVER_TEST_MONGO_URL` (scripts/test starts
/// one), else the local default.
pub fn mongo_url() -> String {
    std::env::var("CONSERVER_TEST_MONGO_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "mongodb://127.0.0.1:27017/".to_owned())
}

/// The credentials every test S3 store accepts (and the only ones).
pub const S3_ACCESS_KEY: &str = "conserver-test-key";
pub const S3_SECRET_KEY: &str = "conserver-test-secret";
/// The bucket of the test S3 store (scripts/test creates it).
pub const S3_BUCKET: &str = "conserver-test";

/// The S3 store the tests use: `CONSERVER_TEST_S3_URL` (scripts/test starts a SeaweedFS), else
/// the local default.
pub fn s3_endpoint() -> String {
    std::env::var("CONSERVER_TEST_S3_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:8333".to_owned())
}

/// A server process of the test's own, on ports of its own, that the test can stop (as an
/// outage would) and start again with the same data.
pub struct OwnServer {
    program: std::path::PathBuf,
    args: Vec<String>,
    /// The port that answers once the server is up.
    pub port: u16,
    /// Whether that port speaks HTTP.
    http: bool,
    log: std::path::PathBuf,
    child: Option<std::process::Child>,
    /// Where its data lives: kept while the server lives, removed when it is dropped.
    _dir: tempfile::TempDir,
}

impl OwnServer {
    /// An nx-27017 MongoDB-protocol server keeping its data in a file of its own directory.
    pub fn mongo() -> OwnServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let args = vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--db".into(),
            path("data.db"),
            "--log-file".into(),
            path("nx.log"),
            "--pid-file".into(),
            path("nx.pid"),
        ];
        OwnServer::start(
            test_tool("CONSERVER_TEST_NX27017", "nx-27017"),
            args,
            port,
            false,
            dir,
        )
    }

    /// A SeaweedFS (master, volume, filer and S3 gateway in one process) on loopback ports of
    /// its own, accepting only the test credentials, with the test bucket created on the first
    /// write.
    pub fn s3() -> OwnServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let identities = serde_json::json!({"identities": [{
            "name": "conserver-test",
            "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]});
        let config = dir.path().join("s3.json");
        std::fs::write(&config, identities.to_string()).expect("the S3 identities file");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("the data directory");
        let s3_port = free_port();
        let mut args = vec![
            "server".to_owned(),
            "-ip=127.0.0.1".to_owned(),
            "-ip.bind=127.0.0.1".to_owned(),
            format!("-dir={}", data.display()),
            "-filer".to_owned(),
            "-s3".to_owned(),
            format!("-s3.port={s3_port}"),
            format!("-s3.config={}", config.display()),
            "-s3.port.iceberg=0".to_owned(),
            "-s3.port.lance=0".to_owned(),
            "-volume.max=100".to_owned(),
            "-master.volumeSizeLimitMB=64".to_owned(),
        ];
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
        ] {
            args.push(format!("-{flag}={}", free_port()));
        }
        OwnServer::start(
            test_tool("CONSERVER_TEST_WEED", "weed"),
            args,
            s3_port,
            true,
            dir,
        )
    }

    fn start(
        program: std::path::PathBuf,
        args: Vec<String>,
        port: u16,
        http: bool,
        dir: tempfile::TempDir,
    ) -> OwnServer {
        let log = dir.path().join("server.log");
        let mut server = OwnServer {
            program,
            args,
            port,
            http,
            log,
            child: None,
            _dir: dir,
        };
        server.resume();
        server
    }

    /// `mongodb://127.0.0.1:<port>/` with a short server selection timeout, so that an outage
    /// shows within a second.
    pub fn mongo_url(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000",
            self.port
        )
    }

    /// `http://127.0.0.1:<port>`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kill the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again (same ports, same data) and wait until its port is up, at most
    /// 60 s.
    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the server log");
        let child = std::process::Command::new(&self.program)
            .args(&self.args)
            .stdout(log.try_clone().expect("the server log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} could not start ({e}); scripts/test installs it",
                    self.program.display()
                )
            });
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !answers(self.port, self.http) {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && std::time::Instant::now() < deadline,
                "{} did not start on port {} ({exited:?}): {}",
                self.program.display(),
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Whether the server's port is up: accepting connections, and for an HTTP server, answering.
fn answers(port: u16, http: bool) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if !http {
        return true;
    }
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let mut first = [0u8; 1];
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .and_then(|()| stream.read(&mut first))
        .is_ok_and(|n| n > 0)
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ------------------------------------------------------------------------------ PostgreSQL

/// The PostgreSQL the tests use: `CONSERVER_TEST_POSTGRES_URL` (scripts/test starts one), else
/// the local default. Its user must be allowed to create databases.
pub fn postgres_url() -> String {
    std::env::var("CONSERVER_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgresql://postgres@127.0.0.1:5432/test".to_owned())
}

/// Where a PostgreSQL server listens, and who logs in.
#[derive(Debug, Clone)]
pub struct PgServer {
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl PgServer {
    /// The server of [`postgres_url`].
    pub fn shared() -> PgServer {
        let config: tokio_postgres::Config = postgres_url()
            .parse()
            .expect("CONSERVER_TEST_POSTGRES_URL is a PostgreSQL URL");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("the test PostgreSQL is reached over TCP, not {other:?}"),
        };
        PgServer {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            user: config.get_user().unwrap_or("postgres").to_owned(),
        }
    }

    /// A plain connection to `database`, driven on the current runtime.
    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) = self
            .config(database)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {}:{} does not answer ({e}); run the tests with scripts/test, which starts one",
                    self.host, self.port
                )
            });
        tokio::spawn(connection);
        client
    }

    fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(database);
        config
    }
}

/// A database of the test's own, dropped when the value is.
pub struct PgDatabase {
    pub server: PgServer,
    pub name: String,
}

impl PgDatabase {
    /// A fresh database on the shared test server.
    pub async fn create() -> PgDatabase {
        PgDatabase::create_on(PgServer::shared()).await
    }

    pub async fn create_on(server: PgServer) -> PgDatabase {
        let name = format!("conserver_test_{}", uuid::Uuid::new_v4().simple());
        server
            .connect("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        PgDatabase { server, name }
    }

    /// A plain connection to the database (what the test reads back with).
    pub async fn client(&self) -> tokio_postgres::Client {
        self.server.connect(&self.name).await
    }

    /// The options of a `postgres` storage writing `table` into this database, as a YAML flow
    /// mapping, with `extra` entries (`sslmode: require`) appended.
    pub fn storage_options(&self, table: &str, extra: &str) -> String {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        format!(
            "{{host: '{}', port: {}, user: '{}', database: '{}', table_name: '{table}'{extra}}}",
            self.server.host, self.server.port, self.server.user, self.name
        )
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Best effort, on a runtime of its own: the test's may be gone or single-threaded.
        let server = self.server.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok((client, connection)) = server
                    .config("postgres")
                    .connect(tokio_postgres::NoTls)
                    .await
                else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// A PostgreSQL cluster of the test's own (initdb in a temporary directory), on a free port,
/// that the test can stop and start again; with a self-signed TLS certificate when asked.
/// Uses the binaries and OS user of scripts/test (`CONSERVER_TEST_POSTGRES_BIN`,
/// `CONSERVER_TEST_POSTGRES_OS_USER`), else Debian's newest and, as root, `postgres`.
pub struct OwnPostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    os_user: Option<String>,
    tls: bool,
    running: bool,
}

impl OwnPostgres {
    pub fn start(tls: bool) -> OwnPostgres {
        let bin = std::env::var_os("CONSERVER_TEST_POSTGRES_BIN")
            .map(std::path::PathBuf::from)
            .or_else(newest_postgres_bin)
            .expect("PostgreSQL's server binaries (scripts/test installs the postgresql package)");
        let os_user = std::env::var("CONSERVER_TEST_POSTGRES_OS_USER")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| is_root().then(|| "postgres".to_owned()));
        let dir = tempfile::tempdir().expect("a temporary directory");
        if let Some(user) = &os_user {
            let id = |flag: &str| -> u32 {
                let out = std::process::Command::new("id")
                    .args([flag, user])
                    .output()
                    .expect("id(1) runs");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("the OS user {user} exists"))
            };
            std::os::unix::fs::chown(dir.path(), Some(id("-u")), Some(id("-g")))
                .expect("the cluster directory is given to its OS user");
        }
        let mut server = OwnPostgres {
            port: free_port(),
            dir,
            bin,
            os_user,
            tls,
            running: false,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        if tls {
            let key = format!("{data}/server.key");
            let cert = format!("{data}/server.crt");
            server.run_program(
                std::path::Path::new("openssl"),
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    &key,
                    "-out",
                    &cert,
                ],
            );
        }
        server.resume();
        server
    }

    pub fn server(&self) -> PgServer {
        PgServer {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            user: "postgres".to_owned(),
        }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Stop the server (fast shutdown: sessions are ended, as when a server is restarted).
    pub fn stop(&mut self) {
        if self.running {
            let data = self.data();
            self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
            self.running = false;
        }
    }

    /// Start the server again on the same port and wait until it accepts connections.
    pub fn resume(&mut self) {
        let data = self.data();
        let log = format!("{}/server.log", self.dir.path().display());
        let mut settings = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            settings.push_str(" -c ssl=on");
        }
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-o", &settings, "start"],
        );
        self.running = true;
    }

    fn run(&self, program: &str, args: &[&str]) {
        self.run_program(&self.bin.join(program), args);
    }

    fn run_program(&self, program: &std::path::Path, args: &[&str]) {
        let mut command = match &self.os_user {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => std::process::Command::new(program),
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            }));
        }
    }
}

fn newest_postgres_bin() -> Option<std::path::PathBuf> {
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Wait until `check` holds (the engine works in the background), at most 60 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
