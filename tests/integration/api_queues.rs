//! The queue, DLQ, chain-status and index routes on Redis (a key prefix per test).

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::api_basics::{get, post, CONFIG};
use crate::common::{self, send, vcon_json, Backend};

const U1: &str = "0192a3f4-5b6c-7d8e-9f00-000000000001";
const U2: &str = "0192a3f4-5b6c-7d8e-9f00-000000000002";
const U3: &str = "0192a3f4-5b6c-7d8e-9f00-000000000003";

fn redis() -> redis::Connection {
    redis::Client::open(common::redis_url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn rpush(key: &str, items: &[&str]) {
    let _: () = redis::cmd("RPUSH")
        .arg(key)
        .arg(items)
        .query(&mut redis())
        .unwrap();
}

fn lrange(key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut redis())
        .unwrap()
}

#[actix_web::test]
async fn egress_pops_oldest_first_and_counts() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    rpush(&format!("{}processed", state.prefix), &[U1, U2, U3]);
    assert_eq!(
        send(&app, get("/vcon/count?egress_list=processed"))
            .await
            .json(),
        json!(3)
    );
    assert_eq!(
        send(&app, get("/vcon/egress?egress_list=processed"))
            .await
            .json(),
        json!([U1])
    );
    assert_eq!(
        send(&app, get("/vcon/egress?egress_list=processed&limit=0"))
            .await
            .json(),
        json!([])
    );
    assert_eq!(
        send(&app, get("/vcon/egress?egress_list=processed&limit=5"))
            .await
            .json(),
        json!([U2, U3])
    );
    assert_eq!(
        send(&app, get("/vcon/egress?egress_list=processed&limit=5"))
            .await
            .json(),
        json!([])
    );
    assert_eq!(
        send(&app, get("/vcon/count?egress_list=processed"))
            .await
            .json(),
        json!(0)
    );
    let reply = send(&app, get("/vcon/egress?limit=-1")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [
                {"type": "missing", "loc": ["query", "egress_list"], "path": "egress_list", "msg": "query parameter 'egress_list' is required"},
                {"type": "greater_than_equal", "loc": ["query", "limit"], "path": "limit", "msg": "limit must be an integer >= 0", "input": "-1"},
            ]})
        )
    );
    let reply = send(&app, get("/vcon/count")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = send(&app, TestRequest::get().uri("/stats/queue")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "missing", "loc": ["query", "list_name"], "path": "list_name", "msg": "query parameter 'list_name' is required"}]})
        )
    );
}

#[actix_web::test]
async fn reingress_queues_stored_vcons_and_skips_unknown_ones() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    for uuid in [U1, U2] {
        send(
            &app,
            post("/vcon").set_payload(vcon_json(uuid, "2024-01-01T00:00:00Z", json!([]))),
        )
        .await;
    }
    let ingress = |body: &str| {
        post("/api/vcon/ingress?ingress_list=default_ingress").set_payload(body.to_owned())
    };
    let reply = send(
        &app,
        ingress(&format!(r#"["{U2}", "{U3}", "{}"]"#, U1.to_uppercase())),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body.len()),
        (StatusCode::NO_CONTENT, 0)
    );
    assert_eq!(
        lrange(&format!("{}default_ingress", state.prefix)),
        vec![U2, U1]
    );
    // Queued vCons lose their TTL and count as pending.
    assert_eq!(
        crate::api_vcon::redis_ttl(&format!("{}vcon:{U1}", state.prefix)),
        -1
    );
    assert_eq!(
        send(&app, ingress("[]")).await.status,
        StatusCode::NO_CONTENT
    );
    let reply = send(&app, ingress(r#"{"uuids": []}"#)).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "list_type", "loc": ["body"], "path": "$", "msg": "the body must be a JSON array of vCon uuids"}]})
        )
    );
    let reply = send(&app, ingress(&format!(r#"["{U1}", 7, "nope"]"#))).await;
    assert_eq!(
        reply.json(),
        json!({"detail": [
            {"type": "uuid_parsing", "loc": ["body", 1], "path": "$[1]", "msg": "each element must be a vCon uuid string", "input": 7},
            {"type": "uuid_parsing", "loc": ["body", 2], "path": "$[2]", "msg": "each element must be a vCon uuid string", "input": "nope"},
        ]})
    );
    let reply = send(&app, ingress("[1,")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "Malformed JSON at line 1, column 3: EOF while parsing a value"})
        )
    );
    let reply = send(
        &app,
        post("/vcon/ingress?ingress_list=paused_list").set_payload(format!(r#"["{U1}"]"#)),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "No chain reads ingress list 'paused_list'"})
        )
    );
}

#[actix_web::test]
async fn dlq_lists_and_reprocesses_in_batches() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    let p = &state.prefix;
    rpush(&format!("{p}DLQ:default_ingress"), &[U1, U2, U3]);
    assert_eq!(
        send(&app, get("/dlq?ingress_list=default_ingress"))
            .await
            .json(),
        json!([U1, U2, U3])
    );
    assert_eq!(
        send(&app, get("/dlq?ingress_list=other")).await.json(),
        json!([])
    );
    let reprocess = |q: &str| post(&format!("/dlq/reprocess?{q}"));
    assert_eq!(
        send(&app, reprocess("ingress_list=default_ingress&count=2"))
            .await
            .json(),
        json!(2)
    );
    assert_eq!(lrange(&format!("{p}default_ingress")), vec![U1, U2]);
    assert_eq!(
        send(&app, reprocess("ingress_list=default_ingress"))
            .await
            .json(),
        json!(1)
    );
    assert_eq!(
        send(&app, reprocess("ingress_list=default_ingress"))
            .await
            .json(),
        json!(0)
    );
    assert_eq!(lrange(&format!("{p}default_ingress")), vec![U1, U2, U3]);
    let pending: Option<String> = redis::cmd("HGET")
        .arg(format!("{p}{{vcon:{U3}}}:pending"))
        .arg("count")
        .query(&mut redis())
        .unwrap();
    assert_eq!(pending.as_deref(), Some("1"));
    let reply = send(&app, reprocess("ingress_list=default_ingress&count=0")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "greater_than_equal", "loc": ["query", "count"], "path": "count", "msg": "count must be an integer >= 1", "input": "0"}]})
        )
    );
    let reply = send(&app, reprocess("ingress_list=default_ingress&count=100001")).await;
    assert_eq!(reply.json()["detail"][0]["type"], "less_than_equal");
    let reply = send(&app, reprocess("ingress_list=nobody")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "No chain reads ingress list 'nobody'"})
        )
    );
}

#[actix_web::test]
async fn storage_dlq_lists_any_name_and_reprocess_needs_a_configured_storage() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    rpush(&format!("{}DLQ:storage:removed", state.prefix), &[U1]);
    assert_eq!(
        send(&app, get("/dlq/storage?storage_name=removed"))
            .await
            .json(),
        json!([U1])
    );
    assert_eq!(
        send(&app, get("/dlq/storage?storage_name=files"))
            .await
            .json(),
        json!([])
    );
    let reply = send(&app, post("/dlq/storage/reprocess?storage_name=removed")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Unknown storage backend: removed"})
        )
    );
    assert_eq!(
        send(&app, post("/dlq/storage/reprocess?storage_name=files"))
            .await
            .json(),
        json!(0)
    );
    let reply = send(
        &app,
        post("/dlq/storage/reprocess?storage_name=files&count=abc"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[actix_web::test]
async fn chains_show_depths_and_counters_in_config_order() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    let p = &state.prefix;
    rpush(&format!("{p}default_ingress"), &[U1, U2]);
    rpush(&format!("{p}DLQ:default_ingress"), &[U3]);
    rpush(&format!("{p}processed"), &[U3]);
    rpush(&format!("{p}DLQ:storage:files"), &[U1, U2]);
    let _: () = redis::cmd("HSET")
        .arg(format!("{p}conserver:chain_stats:main"))
        .arg(&["processed", "7", "halted", "2", "failed", "1"])
        .query(&mut redis())
        .unwrap();
    // A live instance holding one uuid of the chain's list.
    let _: () = redis::cmd("SADD")
        .arg(format!("{p}conserver:instances"))
        .arg("i1")
        .query(&mut redis())
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{p}conserver:instance:i1"))
        .arg("{}")
        .arg("EX")
        .arg(30)
        .query(&mut redis())
        .unwrap();
    rpush(&format!("{p}{{default_ingress}}:processing:i1"), &[U3]);
    let reply = send(&app, get("/chains")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::OK,
            json!([
                {
                    "name": "main", "enabled": true, "workers": 2, "links": [], "storages": ["files"],
                    "ingress_lists": [{"name": "default_ingress", "depth": 2, "dlq_depth": 1}],
                    "egress_lists": [{"name": "processed", "depth": 1}],
                    "in_flight": 1, "processed": 7, "halted": 2, "failed": 1,
                    "storage_dlq": [{"storage": "files", "depth": 2}]
                },
                {
                    "name": "paused", "enabled": false, "workers": 4, "links": [], "storages": [],
                    "ingress_lists": [{"name": "paused_list", "depth": 0, "dlq_depth": 0}],
                    "egress_lists": [],
                    "in_flight": 0, "processed": 0, "halted": 0, "failed": 0,
                    "storage_dlq": []
                }
            ])
        )
    );
}

#[actix_web::test]
async fn index_vcons_rebuilds_the_indexes_from_the_keys() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    let p = &state.prefix;
    for (uuid, name) in [(U1, "Ann"), (U2, "Ben")] {
        send(
            &app,
            post("/vcon").set_payload(vcon_json(
                uuid,
                "2024-01-01T00:00:00Z",
                json!([{"name": name}]),
            )),
        )
        .await;
    }
    let _: () = redis::cmd("SET")
        .arg(format!("{p}vcon:{U3}"))
        .arg("not json")
        .query(&mut redis())
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{p}vcons"))
        .arg(format!("{p}name:Ann"))
        .query(&mut redis())
        .unwrap();
    assert_eq!(send(&app, get("/vcon")).await.json(), json!([]));
    let reply = send(&app, get("/api/index_vcons")).await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!(2)));
    assert_eq!(send(&app, get("/vcon")).await.json(), json!([U2, U1]));
    assert_eq!(
        send(&app, get("/vcons/search?name=Ann")).await.json(),
        json!([U1])
    );
}
