//! Secrets never leave the server: a whole chain with every kind of secret configured — a
//! Redis password, API tokens, an external-ingress key, URL userinfo, secret query parameters,
//! webhook headers — runs (with failures, so errors are logged), and neither the log (at
//! debug level) nor any answer of the API nor `check-config` shows one of them.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common;

const REDIS_PASSWORD: &str = "redis-pw-5f1e";
const API_TOKEN: &str = "api-token-9a3c";
const INGRESS_KEY: &str = "ingress-key-77d0";
const USERINFO_PASSWORD: &str = "userinfo-pw-c41b";
const QUERY_TOKEN: &str = "query-token-e2aa";
const BEARER: &str = "bearer-0b6d";
const CUSTOM_HEADER: &str = "custom-header-8f12";
const STORAGE_KEY: &str = "storage-key-31c9";

const SECRETS: &[&str] = &[
    REDIS_PASSWORD,
    API_TOKEN,
    INGRESS_KEY,
    USERINFO_PASSWORD,
    QUERY_TOKEN,
    BEARER,
    CUSTOM_HEADER,
    STORAGE_KEY,
];

struct Redis(std::process::Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_a_log_line_or_an_answer() {
    let redis_port = common::free_port();
    let _redis = Redis(
        Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--requirepass", REDIS_PASSWORD])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed"),
    );
    let hook = MockServer::start().await;
    // The link's target fails once (a retry is logged), the storage's refuses (dead-lettered).
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/hook"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .up_to_n_times(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/store"))
        .respond_with(ResponseTemplate::new(403).set_body_string("forbidden"))
        .mount(&hook)
        .await;
    let target = |path: &str| {
        let base = hook
            .uri()
            .replacen("http://", &format!("http://hooks:{USERINFO_PASSWORD}@"), 1);
        format!("{base}{path}?token={QUERY_TOKEN}&x=1")
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            r#"
redis: {{url: 'redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0', key_prefix: 'secrets-{prefix}:'}}
api: {{tokens: ['{API_TOKEN}']}}
ingress_auth: {{calls: '{INGRESS_KEY}'}}
links:
  hook:
    module: webhook
    options:
      webhook-urls: ['{link_url}']
      headers: {{Authorization: 'Bearer {BEARER}', X-Custom: '{CUSTOM_HEADER}'}}
    retry: {{attempts: 3, initial_backoff: 0.01, max_backoff: 0.01}}
storages:
  copy:
    module: webhook
    options:
      webhook-urls: ['{storage_url}&api_key={STORAGE_KEY}']
    retry: {{attempts: 2, initial_backoff: 0.01, max_backoff: 0.01}}
chains:
  main: {{links: [hook], storages: [copy], ingress_lists: [calls], egress_lists: [done]}}
"#,
            prefix = uuid::Uuid::new_v4(),
            link_url = target("/hook"),
            storage_url = target("/store"),
        ),
    )
    .unwrap();

    let checked = Command::new(env!("CARGO_BIN_EXE_conserver"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let mut shown = String::from_utf8_lossy(&checked.stdout).into_owned();
    shown.push_str(&String::from_utf8_lossy(&checked.stderr));

    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_conserver"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        .env_remove("REDIS_URL")
        .env_remove("CONSERVER_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
    }
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{base}/ready"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            Instant::now() < deadline,
            "not ready:\n{}",
            logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = "0194a3f4-5b6c-7d8e-9f00-00000000feed";
    let posted = http
        .post(format!("{base}/vcon/external-ingress?ingress_list=calls"))
        .header("x-conserver-api-token", INGRESS_KEY)
        .header("content-type", "application/json")
        .body(common::vcon_json(
            id,
            "2026-11-28T10:00:00Z",
            serde_json::json!([]),
        ))
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "{:?}", posted.text().await);
    // The run ends with the storage write dead-lettered.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dlq = http
            .get(format!("{base}/dlq/storage?storage_name=copy"))
            .header("x-conserver-api-token", API_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if dlq.contains(id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not dead-lettered:\n{}",
            logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in [
        "/config",
        "/chains",
        "/metrics",
        "/ready",
        "/health",
        "/openapi.json",
        "/version",
        "/dlq?ingress_list=calls",
        "/dlq/storage?storage_name=copy",
        "/stats/queue?list_name=calls",
    ] {
        let answer = http
            .get(format!("{base}{path}"))
            .header("x-conserver-api-token", API_TOKEN)
            .send()
            .await
            .unwrap();
        shown.push_str(&format!("\n--- {path}: {}\n", answer.status()));
        shown.push_str(&answer.text().await.unwrap());
    }
    // A refused POST /config names the rule, not the values.
    let refused = http
        .post(format!("{base}/config"))
        .header("x-conserver-api-token", API_TOKEN)
        .json(&serde_json::json!({"api": {"tokens": ["other"]}}))
        .send()
        .await
        .unwrap();
    shown.push_str(&refused.text().await.unwrap());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = logs.lock().unwrap().clone();
    assert!(
        logs.contains("transient failure; retrying"),
        "the retry is logged:\n{logs}"
    );
    assert!(
        logs.contains("dead-lettered"),
        "the storage failure is logged:\n{logs}"
    );
    for secret in SECRETS {
        for (what, text) in [("the log", &logs), ("an answer", &shown)] {
            let found: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
            assert!(
                found.is_empty(),
                "{secret} in {what}:\n{}",
                found.join("\n")
            );
        }
    }
}
