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
    let out = conserver()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
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
    let out = conserver()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
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
