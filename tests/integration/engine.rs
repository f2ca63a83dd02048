//! The processing engine in process, on Redis (a key prefix per test): chains run their
//! links on the posted vCons, write their storages, announce them on egress, dead-letter
//! failures and panics, apply a new configuration live, and read missing vCons back from a
//! storage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use async_trait::async_trait;
use conserver::engine::pipelines::ChainLink;
use conserver::engine::runner::{ChainRunner, RunSettings};
use conserver::links::{Link, LinkContext, LinkError, LinkOutcome};
use conserver::vcon::Document;
use conserver_actors::{ChainSpec, Runtime};
use serde_json::{json, Value};

use crate::common::{self, eventually, send, start_engine, vcon_json, Backend};
use conserver::api::Role;

fn redis() -> redis::Connection {
    redis::Client::open(common::redis_url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn llen(key: &str) -> u64 {
    redis::cmd("LLEN").arg(key).query(&mut redis()).unwrap()
}

fn lrange(key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut redis())
        .unwrap()
}

fn ttl(key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(&mut redis()).unwrap()
}

fn uuid(n: usize) -> String {
    format!("0194a3f4-5b6c-7d8e-9f00-{n:012}")
}

#[actix_web::test]
async fn posted_vcons_run_their_chain_to_storage_and_egress() {
    let files = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
links:
  tag: {{module: links.tag, options: {{tags: [seen]}}}}
  only_with_parties: {{module: jq_link, options: {{filter: '.parties | length > 0'}}}}
  keep_an_hour: {{module: expire_vcon, options: {{seconds: 7200}}}}
storages:
  files: {{module: file, options: {{path: '{}'}}}}
  copy: {{module: redis_storage, options: {{prefix: copies, expires: 600}}}}
chains:
  main:
    links: [tag, only_with_parties, keep_an_hour]
    storages: [files, copy]
    ingress_lists: [calls]
    egress_lists: [done]
    workers: 4
"#,
        files.path().display()
    );
    let state = common::state_for_role(&yaml, Backend::Redis, &[], Role::All).await;
    let app = common::service(&state).await;
    let _engine = start_engine(&state).await;
    let p = state.prefix.clone();
    let kept: Vec<String> = (0..20).map(uuid).collect();
    for id in &kept {
        let body = vcon_json(
            id,
            "2026-11-28T10:00:00+02:00",
            json!([{"name": "Ann", "tel": "+15550100"}]),
        );
        let reply = send(
            &app,
            TestRequest::post()
                .uri("/vcon?ingress_lists=calls")
                .set_payload(body),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let halted = uuid(99);
    send(
        &app,
        TestRequest::post()
            .uri("/vcon?ingress_lists=calls")
            .set_payload(vcon_json(&halted, "2026-11-28T10:00:00Z", json!([]))),
    )
    .await;
    eventually("every kept vCon is on the egress list", || {
        llen(&format!("{p}done")) == 20
    })
    .await;
    eventually("the halted vCon is counted", || {
        let stats: Vec<String> = redis::cmd("HMGET")
            .arg(format!("{p}conserver:chain_stats:main"))
            .arg(&["processed", "halted"])
            .query(&mut redis())
            .unwrap_or_default();
        stats == ["20", "1"]
    })
    .await;
    let mut egress = lrange(&format!("{p}done"));
    egress.sort();
    assert_eq!(egress, kept, "egress in any order, each once");
    for id in &kept {
        let stored = send(&app, TestRequest::get().uri(&format!("/vcon/{id}")))
            .await
            .json();
        assert_eq!(
            stored["attachments"],
            json!([{"purpose": "tags", "body": "[\"seen:seen\"]", "encoding": "json"}])
        );
        // The date path is the date of created_at as written (its own offset).
        let file = files.path().join(format!("2026/11/28/{id}.json"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), stored);
        let copy: Option<String> = redis::cmd("GET")
            .arg(format!("{p}copies:{id}"))
            .query(&mut redis())
            .unwrap();
        assert_eq!(copy.as_deref(), Some(text.as_str()));
        // expire_vcon's TTL, applied when the run ended; nothing pending any more.
        let t = ttl(&format!("{p}vcon:{id}"));
        assert!((7000..=7200).contains(&t), "ttl {t}");
        assert_eq!(ttl(&format!("{p}{{vcon:{id}}}:pending")), -2);
    }
    // The halted vCon: no storage, no egress, the default TTL.
    assert!(!files
        .path()
        .join(format!("2026/11/28/{halted}.json"))
        .exists());
    assert!((3500..=3600).contains(&ttl(&format!("{p}vcon:{halted}"))));
    assert_eq!(llen(&format!("{p}DLQ:calls")), 0);
    // Nothing left in flight: the processing list is gone.
    let chains = send(&app, TestRequest::get().uri("/chains")).await.json();
    assert_eq!(chains[0]["in_flight"], 0);
    assert_eq!(chains[0]["processed"], 20);
    let ready = send(&app, TestRequest::get().uri("/ready")).await.json();
    assert_eq!(ready["chains"], json!({"main": {"ok": true, "workers": 4}}));
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert!(
        metrics.contains(r#"conserver_chain_runs_total{chain="main",outcome="processed"} 20"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"conserver_link_runs_total{chain="main",link="only_with_parties",outcome="halt"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"conserver_storage_writes_total{outcome="ok",storage="files"} 20"#),
        "{metrics}"
    );
}

/// A link that panics on every vCon.
struct Panics;

#[async_trait]
impl Link for Panics {
    async fn run(
        &self,
        _: &mut Document,
        _: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        panic!("this link always panics");
    }
}

#[actix_web::test]
async fn a_panicking_link_dead_letters_its_vcon_and_the_chain_goes_on() {
    let yaml = "chains:\n  main: {links: [], ingress_lists: [calls]}\n";
    let state = common::state(yaml, Backend::Redis).await;
    let app = common::service(&state).await;
    let p = state.prefix.clone();
    let live = state.state.config();
    let chain = live.chains[0].clone();
    state
        .state
        .store
        .note_consumed_list("panic-test", "calls")
        .await
        .unwrap();
    let runner = ChainRunner {
        chain,
        links: vec![ChainLink {
            name: "boom".into(),
            link: Arc::new(Panics),
            calls_network: false,
        }],
        sinks: Vec::new(),
        storages: live.pipelines.storages.clone(),
        store: state.state.store.clone(),
        instance_id: "panic-test".into(),
        settings: RunSettings {
            vcon_ttl: 3600,
            dlq_ttl: 604800,
            storage_fallback: true,
            parallel_storage: true,
            enqueue_lists: Arc::new(["calls".to_owned()].into_iter().collect()),
        },
        metrics: state.state.metrics.clone(),
        held: Default::default(),
    };
    let runtime = Runtime::start(Arc::new(conserver::engine::observer::MetricsObserver(
        state.state.metrics.clone(),
    )));
    runtime
        .start_chain(
            ChainSpec {
                name: "main".into(),
                sources: 1,
                workers: 2,
            },
            Arc::new(runner),
        )
        .await;
    for n in 0..3 {
        send(
            &app,
            TestRequest::post()
                .uri("/vcon?ingress_lists=calls")
                .set_payload(vcon_json(&uuid(n), "2026-01-01T00:00:00Z", json!([]))),
        )
        .await;
    }
    eventually("every vCon is in the DLQ", || {
        llen(&format!("{p}DLQ:calls")) == 3
    })
    .await;
    let mut dead = lrange(&format!("{p}DLQ:calls"));
    dead.sort();
    assert_eq!(dead, (0..3).map(uuid).collect::<Vec<_>>());
    // Dead-lettered vCons keep dlq_ttl; the processing list is empty; the runtime still runs.
    assert!(ttl(&format!("{p}vcon:{}", uuid(0))) > 600_000);
    assert_eq!(llen(&format!("{p}{{calls}}:processing:panic-test")), 0);
    let chains = runtime.chains().await;
    assert!(chains[0].running, "{chains:?}");
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[actix_web::test]
async fn a_new_configuration_starts_and_stops_chains_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let first = format!("redis: {{url: '{}', key_prefix: '{prefix}'}}\nchains:\n  old: {{links: [], ingress_lists: [old_in], egress_lists: [old_out]}}\n", common::redis_url());
    std::fs::write(&path, &first).unwrap();
    let state = common::file_state_on(&path, Backend::Redis, &prefix).await;
    let app = common::service(&state).await;
    let engine = start_engine(&state).await;
    send(
        &app,
        TestRequest::post()
            .uri("/vcon?ingress_lists=old_in")
            .set_payload(vcon_json(&uuid(1), "2026-01-01T00:00:00Z", json!([]))),
    )
    .await;
    eventually("the old chain ran", || {
        llen(&format!("{prefix}old_out")) == 1
    })
    .await;

    let next = json!({
        "redis": {"url": common::redis_url(), "key_prefix": prefix},
        "chains": {"new": {"links": [], "ingress_lists": ["new_in"], "egress_lists": ["new_out"]}}
    });
    let reply = send(&app, TestRequest::post().uri("/config").set_json(&next)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    send(
        &app,
        TestRequest::post()
            .uri("/vcon?ingress_lists=new_in")
            .set_payload(vcon_json(&uuid(2), "2026-01-01T00:00:00Z", json!([]))),
    )
    .await;
    eventually("the new chain ran", || {
        llen(&format!("{prefix}new_out")) == 1
    })
    .await;
    // The old chain no longer consumes: once its last take has ended (a take in progress at
    // the change completes, within the 5 s BLMOVE wait), an item pushed to its list stays there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.chains().await.iter().any(|c| c.name == "old") {
        assert!(Instant::now() < deadline, "the old chain did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{prefix}old_in"))
        .arg(uuid(1))
        .query(&mut redis())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(llen(&format!("{prefix}old_in")), 1);
    let ready = send(&app, TestRequest::get().uri("/ready")).await.json();
    assert_eq!(ready["chains"], json!({"new": {"ok": true, "workers": 4}}));
    common::delete_prefix(&prefix);
}

#[actix_web::test]
async fn a_worker_reads_a_vcon_missing_from_redis_back_from_a_storage() {
    let files = tempfile::tempdir().unwrap();
    let yaml = format!(
        "storages:\n  files: {{module: file, options: {{path: '{}', organize_by_date: false}}}}\nchains:\n  main: {{links: [], storages: [files], ingress_lists: [calls], egress_lists: [done]}}\n",
        files.path().display()
    );
    let state = common::state(&yaml, Backend::Redis).await;
    let p = state.prefix.clone();
    let id = uuid(7);
    let text = vcon_json(&id, "2026-01-01T00:00:00Z", json!([{"name": "Zoe"}]));
    std::fs::write(files.path().join(format!("{id}.json")), &text).unwrap();
    // Queued, but its cache entry is gone (expired, flushed, or posted elsewhere).
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{p}calls"))
        .arg(&id)
        .query(&mut redis())
        .unwrap();
    let _engine = start_engine(&state).await;
    eventually("the vCon went through", || llen(&format!("{p}done")) == 1).await;
    let cached: Option<String> = redis::cmd("GET")
        .arg(format!("{p}vcon:{id}"))
        .query(&mut redis())
        .unwrap();
    assert_eq!(
        cached.as_deref(),
        Some(text.as_str()),
        "re-cached from the storage"
    );
    let app = common::service(&state).await;
    assert_eq!(
        send(&app, TestRequest::get().uri("/vcons/search?name=Zoe"))
            .await
            .json(),
        json!([id]),
        "and indexed"
    );
    // A uuid found nowhere ends as missing: counted as halted, not dead-lettered.
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{p}calls"))
        .arg(uuid(8))
        .query(&mut redis())
        .unwrap();
    eventually("the missing vCon is counted", || {
        let halted: Option<String> = redis::cmd("HGET")
            .arg(format!("{p}conserver:chain_stats:main"))
            .arg("halted")
            .query(&mut redis())
            .unwrap();
        halted.as_deref() == Some("1")
    })
    .await;
    assert_eq!(llen(&format!("{p}DLQ:calls")), 0);
}

#[actix_web::test]
async fn a_link_that_gives_the_vcon_another_uuid_settles_the_original_too() {
    let new_id = uuid(501);
    let yaml = format!(
        r#"
redis: {{vcon_ttl: 900}}
links:
  renumber: {{module: jq_link, options: {{transform: '.uuid = "{new_id}"'}}}}
chains:
  main: {{links: [renumber], ingress_lists: [calls], egress_lists: [done]}}
"#
    );
    let state = common::state_for_role(&yaml, Backend::Redis, &[], Role::All).await;
    let app = common::service(&state).await;
    let _engine = start_engine(&state).await;
    let p = state.prefix.clone();
    let original = uuid(500);
    let reply = send(
        &app,
        TestRequest::post()
            .uri("/vcon?ingress_lists=calls")
            .set_payload(vcon_json(
                &original,
                "2026-11-28T10:00:00Z",
                json!([{"tel": "+15550199"}]),
            )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    eventually("the new vCon is on the egress list", || {
        lrange(&format!("{p}done")) == [new_id.clone()]
    })
    .await;
    // The run's pending count was the original's: its TTL step ran, so it is not pending any
    // more and got the TTL of the run, like the new vCon.
    assert_eq!(ttl(&format!("{p}{{vcon:{original}}}:pending")), -2);
    for id in [&original, &new_id] {
        let left = ttl(&format!("{p}vcon:{id}"));
        assert!((1..=900).contains(&left), "vcon:{id} TTL {left}");
    }
    // The new vCon is stored and indexed like a posted one.
    let found = send(
        &app,
        TestRequest::get().uri("/vcons/search?tel=%2B15550199"),
    )
    .await
    .json();
    let mut found: Vec<String> = serde_json::from_value(found).unwrap();
    found.sort();
    assert_eq!(found, [original.clone(), new_id.clone()]);
    let stored = send(&app, TestRequest::get().uri(&format!("/vcon/{new_id}")))
        .await
        .json();
    assert_eq!(stored["uuid"], new_id);
}

/// The value of one series in a `/metrics` text, `None` when the series is absent.
fn series(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[actix_web::test]
async fn every_configured_chain_link_and_storage_has_its_series_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let file = |chain: &str| {
        format!(
            "redis: {{url: '{}', key_prefix: '{prefix}'}}\nlinks:\n  tag: {{module: tag}}\nstorages:\n  files: {{module: file, options: {{path: '{}'}}}}\nchains:\n  {chain}: {{links: [tag], storages: [files], ingress_lists: [in]}}\n",
            common::redis_url(),
            files.path().display()
        )
    };
    std::fs::write(&path, file("main")).unwrap();
    let state = common::file_state_on(&path, Backend::Redis, &prefix).await;
    let app = common::service(&state).await;
    let _engine = start_engine(&state).await;
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    for name_and_labels in [
        r#"conserver_chain_runs_total{chain="main",outcome="processed"}"#,
        r#"conserver_chain_runs_total{chain="main",outcome="failed"}"#,
        r#"conserver_vcons_received_total{chain="main",ingress_list="in"}"#,
        r#"conserver_vcons_in_flight{chain="main"}"#,
        r#"conserver_link_runs_total{chain="main",link="tag",outcome="continue"}"#,
        r#"conserver_link_runs_total{chain="main",link="tag",outcome="error"}"#,
        r#"conserver_storage_writes_total{outcome="ok",storage="files"}"#,
        r#"conserver_storage_writes_total{outcome="dead_lettered",storage="files"}"#,
        r#"conserver_chain_duration_seconds_count{chain="main"}"#,
    ] {
        assert_eq!(
            series(&metrics, name_and_labels),
            Some(0.0),
            "{name_and_labels} in\n{metrics}"
        );
    }

    // A configuration without chain `main` removes its series; the new chain's are there.
    std::fs::write(&path, file("other")).unwrap();
    conserver::server::reload(&state.state, "test").await;
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert_eq!(
        series(
            &metrics,
            r#"conserver_chain_runs_total{chain="main",outcome="processed"}"#
        ),
        None,
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            r#"conserver_link_runs_total{chain="main",link="tag",outcome="continue"}"#
        ),
        None
    );
    assert_eq!(
        series(
            &metrics,
            r#"conserver_chain_runs_total{chain="other",outcome="processed"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        series(
            &metrics,
            r#"conserver_storage_writes_total{outcome="ok",storage="files"}"#
        ),
        Some(0.0),
        "the storage is still configured"
    );
    common::delete_prefix(&prefix);
}

#[actix_web::test]
async fn a_reload_restarts_only_the_chains_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let file = |tags: &str| {
        format!(
            "redis: {{url: '{}', key_prefix: '{prefix}'}}\nlinks:\n  tag: {{module: tag, options: {{tags: [{tags}]}}}}\n  later: {{module: expire_vcon}}\nchains:\n  tagged: {{links: [tag], ingress_lists: [a], egress_lists: [a_out]}}\n  other: {{links: [later], ingress_lists: [b], egress_lists: [b_out]}}\n",
            common::redis_url()
        )
    };
    std::fs::write(&path, file("x")).unwrap();
    let state = common::file_state_on(&path, Backend::Redis, &prefix).await;
    let app = common::service(&state).await;
    let _engine = start_engine(&state).await;
    let starts = |metrics: &str, chain: &str| {
        series(
            metrics,
            &format!(r#"conserver_chain_starts_total{{chain="{chain}"}}"#),
        )
    };
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert_eq!(
        (starts(&metrics, "tagged"), starts(&metrics, "other")),
        (Some(1.0), Some(1.0))
    );

    // The same file again (a SIGHUP, or the server's own write of POST /config): nothing
    // is applied, nothing restarts.
    conserver::server::reload(&state.state, "test").await;
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert_eq!(
        (starts(&metrics, "tagged"), starts(&metrics, "other")),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(
        series(
            &metrics,
            r#"conserver_config_reloads_total{outcome="applied"}"#
        ),
        None,
        "{metrics}"
    );

    // One link changed: its chain restarts, the other keeps running.
    std::fs::write(&path, file("y")).unwrap();
    conserver::server::reload(&state.state, "test").await;
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert_eq!(
        (starts(&metrics, "tagged"), starts(&metrics, "other")),
        (Some(2.0), Some(1.0))
    );
    // Both still work, the changed one with its new definition (a take the old generation
    // had in progress at the change may still give it one item: it runs as it started).
    send(
        &app,
        TestRequest::post()
            .uri("/vcon?ingress_lists=b")
            .set_payload(vcon_json(&uuid(600), "2026-01-01T00:00:00Z", json!([]))),
    )
    .await;
    let mut tags = Vec::new();
    for n in 0..3 {
        let id = uuid(601 + n);
        send(
            &app,
            TestRequest::post()
                .uri("/vcon?ingress_lists=a")
                .set_payload(vcon_json(&id, "2026-01-01T00:00:00Z", json!([]))),
        )
        .await;
        eventually("the tagged chain ran", || {
            llen(&format!("{prefix}a_out")) == n as u64 + 1
        })
        .await;
        let tagged = send(&app, TestRequest::get().uri(&format!("/vcon/{id}")))
            .await
            .json();
        tags.push(tagged["attachments"][0]["body"].clone());
        if tags.last() == Some(&json!("[\"y:y\"]")) {
            break;
        }
    }
    assert!(
        tags.len() <= 2,
        "the new definition is in force at once: {tags:?}"
    );
    eventually("the other chain ran", || {
        llen(&format!("{prefix}b_out")) == 1
    })
    .await;
    common::delete_prefix(&prefix);
}

#[actix_web::test]
async fn a_stored_value_that_is_no_vcon_is_read_back_from_a_storage() {
    let files = tempfile::tempdir().unwrap();
    let yaml = format!(
        "storages:\n  files: {{module: file, options: {{path: '{}', organize_by_date: false}}}}\nchains:\n  main: {{links: [], storages: [files], ingress_lists: [calls], egress_lists: [done]}}\n",
        files.path().display()
    );
    let state = common::state(&yaml, Backend::Redis).await;
    let p = state.prefix.clone();
    let id = uuid(701);
    let text = vcon_json(&id, "2026-01-01T00:00:00Z", json!([]));
    std::fs::write(files.path().join(format!("{id}.json")), &text).unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{p}vcon:{id}"))
        .arg("garbage left by another tool")
        .query(&mut redis())
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{p}calls"))
        .arg(&id)
        .query(&mut redis())
        .unwrap();
    let _engine = start_engine(&state).await;
    eventually("the vCon went through", || llen(&format!("{p}done")) == 1).await;
    let cached: Option<String> = redis::cmd("GET")
        .arg(format!("{p}vcon:{id}"))
        .query(&mut redis())
        .unwrap();
    assert_eq!(
        cached.as_deref(),
        Some(text.as_str()),
        "replaced by the storage's copy"
    );
    assert_eq!(llen(&format!("{p}DLQ:calls")), 0);
}
