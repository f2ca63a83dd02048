//! The binary itself: `check-config`, and `serve` starting, answering and stopping on SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::common;

fn conserver() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conserver"));
    for var in [
        "REDIS_URL",
        "CONSERVER_API_TOKEN",
        "CONSERVER_CONFIG_FILE",
        "CONSERVER_BIND",
        "API_ROOT_PATH",
        "CONSERVER_ROLE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `conserver check-config --config <path>`, which must exit 1: what it printed on stderr.
fn check_config_refuses(path: &std::path::Path) -> String {
    let out = conserver()
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn check_config_summarises_a_valid_file() {
    let repo_config = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
    let out = conserver()
        .args(["check-config", repo_config])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("main"), "{stdout}");
}

#[test]
fn check_config_prints_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "chains:\n  main:\n    links: [nope]\n    ingress_lists: [in]\nlinks:\n  x:\n    module: links.custom_link_module\nstorage: {}\n",
    )
    .unwrap();
    let stderr = check_config_refuses(&path);
    for needle in [
        "chains.main.links[0]",
        "links.x.module",
        "custom_link_module",
        "storage",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
    }
}

#[test]
fn check_config_applies_the_rule_of_serve_on_a_public_bind_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.yml");
    std::fs::write(&path, "api:\n  bind: 0.0.0.0:8000\n").unwrap();
    let stderr = check_config_refuses(&path);
    assert!(
        stderr.contains(
            "api.tokens: no API token is configured and the server listens on 0.0.0.0:8000"
        ),
        "{stderr}"
    );
    // The worker role serves no token route: the same file is fine for it.
    let out = conserver()
        .args(["check-config", "--role", "worker", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    let port = common::free_port();
    let mut child = conserver()
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"),
            "--bind",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/health");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let answer = http.get(&url).send().and_then(|response| {
            let status = response.status();
            response.text().map(|body| (status, body))
        });
        if let Ok(answer) = answer {
            break answer;
        }
        assert!(Instant::now() < deadline, "the server did not answer");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status == StatusCode::OK && body.contains("\"healthy\""),
        "{status}: {body}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(logs.contains("embedded in-memory store"), "{logs}");
    assert!(
        logs.contains(&format!("serving on http://127.0.0.1:{port}")),
        "{logs}"
    );
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let out = conserver()
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"),
            "--bind",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "api.tokens: no API token is configured and the server listens on 0.0.0.0:0, which is not a loopback address"
        ),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_references_and_module_options_together_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "\
chains:
  main:
    links: [tag, hook, nope]
    ingress_lists: [in]
links:
  tag:
    module: tag
    options:
      weird.key: 1
  hook:
    module: webhook
    options:
      webhook-urls: [not-a-url]
redis:
  cluster: true
followers:
  upstream: {url: 'http://up', egress_list: out, follower_ingress_list: in}
",
    )
    .unwrap();
    let stderr = check_config_refuses(&path);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "5 problem(s) in the configuration:",
            "  chains.main.links[2] (line 3): no link named \"nope\" is defined under links",
            "  links.tag.options[\"weird.key\"] (line 9): unknown key \"weird.key\"; valid keys: tags",
            "  links.hook.options.webhook-urls[0] (line 13): 'not-a-url' has no scheme; write http://… or https://…",
            "  redis.cluster (line 15): Redis Cluster is not available in this build yet: point redis.url at one Redis server",
            "  followers.upstream (line 17): followers are not available in this build yet: nothing would pull from this follower's server",
        ],
        "{stderr}"
    );
}

/// The log lines a child process writes (to its standard output), collected as they come.
fn collect_logs(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::BufRead;
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stdout.take().unwrap();
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let mut logs = sink.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    logs
}

#[tokio::test]
async fn a_warning_inside_a_link_names_its_chain_and_vcon() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "links:\n  hook:\n    module: webhook\n    options: {{webhook-urls: ['{}/hook']}}\n    retry: {{attempts: 3, initial_backoff: 0.01, max_backoff: 0.01}}\nchains:\n  calls_chain: {{links: [hook], ingress_lists: [calls], egress_lists: [done]}}\n",
            hook.uri()
        ),
    )
    .unwrap();
    let port = common::free_port();
    let mut child = conserver()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let logs = collect_logs(&mut child);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let id = "0194a3f4-5b6c-7d8e-9f00-00000000c0de";
    let body = common::vcon_json(id, "2026-11-28T10:00:00Z", serde_json::json!([]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let posted = client
            .post(format!("{base}/vcon?ingress_lists=calls"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if posted.is_ok_and(|r| r.status().as_u16() == 201) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not take the vCon"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let found = logs
            .lock()
            .unwrap()
            .lines()
            .find(|l| l.contains("transient failure; retrying"))
            .map(str::to_owned);
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no retry logged:\n{}",
            logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    for field in [
        "chain=calls_chain",
        "ingress_list=calls",
        &format!("vcon_id={id}"),
        "component=\"hook\"",
    ] {
        assert!(line.contains(field), "{field} missing from: {line}");
    }
}

#[test]
fn serve_waits_for_a_redis_that_is_not_up_yet() {
    let mut redis = common::OwnRedis::start();
    redis.stop();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "redis: {{url: '{}', key_prefix: 'wait-{}:', connect_timeout: 60}}\nchains:\n  main: {{links: [], ingress_lists: [in]}}\n",
            redis.url(),
            uuid::Uuid::new_v4()
        ),
    )
    .unwrap();
    let port = common::free_port();
    let mut child = conserver()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let logs = collect_logs(&mut child);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let get = |path: &str| {
        http.get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .ok()
            .map(|r| (r.status(), r.text().unwrap_or_default()))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Some(answer) = get("/health") {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "/health did not answer while Redis was awaited"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health.0, StatusCode::OK, "{}", health.1);
    let ready = get("/api/ready").unwrap();
    assert_eq!(ready.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready
            .1
            .contains(&format!("waiting for Redis at 127.0.0.1:{}", redis.port)),
        "{}",
        ready.1
    );
    assert_eq!(get("/vcon").unwrap().0, StatusCode::SERVICE_UNAVAILABLE);

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get("/ready").map(|r| r.0) != Some(StatusCode::OK) {
        assert!(
            Instant::now() < deadline,
            "not ready once Redis answered:\n{}",
            logs.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get("/vcon").unwrap().0, StatusCode::OK);
    let _ = child.kill();
    let _ = child.wait();
    let logs = logs.lock().unwrap().clone();
    let waiting: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("is not reachable yet"))
        .collect();
    assert!(!waiting.is_empty(), "{logs}");
    for line in waiting {
        assert!(
            line.contains(&format!("127.0.0.1:{}", redis.port)),
            "{line}"
        );
    }
}

#[test]
fn serve_gives_up_on_redis_after_its_connect_timeout_with_one_line() {
    let mut redis = common::OwnRedis::start();
    redis.stop();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!("redis: {{url: '{}', connect_timeout: 1}}\n", redis.url()),
    )
    .unwrap();
    let out = conserver()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--bind")
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "conserver: Redis at 127.0.0.1:{} could not be reached within 1 s (redis.connect_timeout): ",
            redis.port
        )),
        "{stderr}"
    );
}
