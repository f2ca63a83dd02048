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

/// The directory of the shared sample vCons.
pub fn corpus_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        dir.join("EXPECTED.json").exists(),
        "the sample vCons are expected at {} (the shared/ folder beside the repository)",
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
