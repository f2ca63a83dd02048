//! The vCon routes on the production store (Redis, a key prefix per test): store exactly as
//! posted, read, list, search, delete, and every error status with its full body.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::api_basics::{get, post, CONFIG, TOKEN};
use crate::common::{self, send, vcon_json, Backend};

const U1: &str = "0191a3f4-5b6c-7d8e-9f00-000000000001";
const U2: &str = "0191a3f4-5b6c-7d8e-9f00-000000000002";
const U3: &str = "0191a3f4-5b6c-7d8e-9f00-000000000003";

fn post_vcon(body: impl Into<String>) -> TestRequest {
    post("/api/vcon")
        .insert_header(("content-type", "application/json"))
        .set_payload(body.into())
}

#[actix_web::test]
async fn a_posted_vcon_is_stored_and_returned_byte_for_byte() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    // Whitespace between tokens goes; member order, number text and escapes stay.
    let body = "{ \"uuid\" : \"0191A3F4-5B6C-7D8E-9F00-000000000001\",\n \"created_at\": \"2024-05-01T12:00:00Z\",\n \"x\": [1.0, 1.2e2, 12345678901234567890, \"\\u00e9\\/\"], \"dialog\": [] }";
    let compact = r#"{"uuid":"0191A3F4-5B6C-7D8E-9F00-000000000001","created_at":"2024-05-01T12:00:00Z","x":[1.0,1.2e2,12345678901234567890,"\u00e9\/"],"dialog":[]}"#;
    let reply = send(&app, post_vcon(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.text(), compact);
    assert_eq!(reply.header("content-type"), "application/json");
    // Read back through every accepted uuid form.
    for form in [
        U1,
        "0191a3f45b6c7d8e9f00000000000001",
        "{0191A3F4-5B6C-7D8E-9F00-000000000001}",
        "urn:uuid:0191a3f4-5b6c-7d8e-9f00-000000000001",
    ] {
        let reply = send(&app, get(&format!("/api/vcon/{form}"))).await;
        assert_eq!(
            (reply.status, reply.text()),
            (StatusCode::OK, compact.to_owned()),
            "{form}"
        );
    }
    // No ingress list: the vCon carries vcon_ttl.
    let ttl = redis_ttl(&format!("{}vcon:{U1}", state.prefix));
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
}

#[actix_web::test]
async fn a_vcon_posted_to_an_ingress_list_is_queued_without_ttl() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    let reply = send(
        &app,
        post_vcon(vcon_json(U1, "2024-05-01T12:00:00Z", json!([])))
            .uri("/vcon?ingress_lists=default_ingress"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(redis_ttl(&format!("{}vcon:{U1}", state.prefix)), -1);
    let reply = send(
        &app,
        TestRequest::get().uri("/stats/queue?list_name=default_ingress"),
    )
    .await;
    assert_eq!(
        reply.json(),
        json!({"list_name": "default_ingress", "depth": 1})
    );
}

#[actix_web::test]
async fn lists_not_read_by_an_enabled_chain_are_rejected_and_nothing_is_written() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    for query in [
        "ingress_lists=default_ingress&ingress_lists=nobody",
        "ingress_lists=paused_list",
        "ingress_lists=default_ingress,processed",
    ] {
        let reply = send(
            &app,
            post_vcon(vcon_json(U1, "2024-05-01T12:00:00Z", json!([])))
                .uri(&format!("/vcon?{query}")),
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{query}");
        let list = match query {
            q if q.ends_with("nobody") => "nobody",
            q if q.contains("paused") => "paused_list",
            _ => "default_ingress,processed",
        };
        assert_eq!(
            reply.json(),
            json!({"detail": format!("No chain reads ingress list '{list}'")})
        );
    }
    let reply = send(&app, get(&format!("/vcon/{U1}"))).await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::NOT_FOUND, json!({"detail": "vCon not found"}))
    );
    let reply = send(
        &app,
        TestRequest::get().uri("/stats/queue?list_name=default_ingress"),
    )
    .await;
    assert_eq!(reply.json()["depth"], 0);
}

#[actix_web::test]
async fn bad_requests_get_the_precise_status_and_detail() {
    let state = common::state(
        "api: {tokens: [test-token-1], max_body_bytes: 2048}\n",
        Backend::Memory,
    )
    .await;
    let app = common::service(&state).await;
    let reply = send(&app, post_vcon("{\"uuid\": \"x\",}")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let detail = reply.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.starts_with("Malformed JSON at line 1, column 14: "),
        "{detail}"
    );
    let reply = send(&app, post_vcon("x".repeat(4096))).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"detail": "Request body exceeds the limit of 2048 bytes"})
        )
    );
    let reply = send(
        &app,
        post("/vcon")
            .insert_header(("content-type", "text/plain"))
            .set_payload("{}"),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"detail": "Unsupported media type 'text/plain'; send application/json"})
        )
    );
    // Size and type are checked before authentication.
    let reply = send(
        &app,
        TestRequest::post()
            .uri("/vcon")
            .insert_header(("content-type", "text/xml"))
            .set_payload("<a/>"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = send(&app, TestRequest::post().uri("/vcon").set_payload("{}")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::FORBIDDEN, json!({"detail": "Invalid API Key"}))
    );
    let reply = send(&app, post_vcon("")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["detail"][0]["type"], "missing");
    assert_eq!(reply.json()["detail"][0]["path"], "$");
    let reply = send(&app, post_vcon("[1, 2]")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["detail"][0]["type"], "dict_type");
    // Invalid UTF-8 is malformed JSON, not a crash.
    let reply = send(
        &app,
        post("/vcon").set_payload(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
}

#[actix_web::test]
async fn hostile_bodies_never_get_a_5xx() {
    let state = common::state("api: {tokens: [test-token-1]}\n", Backend::Memory).await;
    let app = common::service(&state).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        "{{\"uuid\":\"{U1}\",\"created_at\":\"2024-01-01\",\"x\":{}{}}}",
        "{\"a\":".repeat(200),
        "1".to_owned() + &"}".repeat(200)
    );
    for body in [
        deep,
        deep_object,
        "\u{feff}".to_owned(),
        "nul\0l".to_owned(),
        "{\"uuid\": 1e999999}".to_owned(),
        "\"\\ud800\"".to_owned(),
    ] {
        let reply = send(&app, post_vcon(body.clone())).await;
        assert!(
            reply.status.is_client_error(),
            "{} for {:.60}",
            reply.status,
            body
        );
        assert!(reply.json()["detail"].is_string() || reply.json()["detail"].is_array());
    }
}

#[actix_web::test]
async fn gzip_bodies_and_json_media_types_are_accepted() {
    use std::io::Write;
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    let body = vcon_json(U1, "2024-05-01T12:00:00Z", json!([]));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let reply = send(
        &app,
        post("/vcon")
            .insert_header(("content-type", "application/vcon+gzip"))
            .set_payload(gz.clone()),
    )
    .await;
    assert_eq!(
        (reply.status, reply.text()),
        (StatusCode::CREATED, body.clone())
    );
    let reply = send(
        &app,
        post("/vcon")
            .insert_header(("content-type", "application/json; charset=utf-8"))
            .insert_header(("content-encoding", "gzip"))
            .set_payload(gz),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    for media in [
        "application/vcon",
        "application/vcon+json",
        "application/x-custom+json",
    ] {
        let reply = send(
            &app,
            post("/vcon")
                .insert_header(("content-type", media))
                .set_payload(body.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{media}");
    }
    let reply = send(&app, post("/vcon").set_payload(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "no content type is JSON");
}

#[actix_web::test]
async fn listing_pages_newest_first_with_bounds() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    for (uuid, at) in [
        (U1, "2024-01-01T00:00:00Z"),
        (U2, "2024-01-02T00:00:00Z"),
        (U3, "2024-01-03T00:00:00.900Z"),
    ] {
        assert_eq!(
            send(&app, post_vcon(vcon_json(uuid, at, json!([]))))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let list = |q: &str| get(&format!("/vcon{q}"));
    assert_eq!(send(&app, list("")).await.json(), json!([U3, U2, U1]));
    assert_eq!(send(&app, list("?size=2")).await.json(), json!([U3, U2]));
    assert_eq!(send(&app, list("?size=2&page=2")).await.json(), json!([U1]));
    assert_eq!(
        send(&app, list("?since=2024-01-02T00:00:00Z")).await.json(),
        json!([U3, U2])
    );
    assert_eq!(
        send(&app, list("?until=2024-01-02")).await.json(),
        json!([U2, U1])
    );
    assert_eq!(
        send(&app, list("?since=1704153600&until=2024-01-02%2000:00:00"))
            .await
            .json(),
        json!([U2])
    );
    assert_eq!(send(&app, list("?page=9")).await.json(), json!([]));
    let reply = send(&app, list("?page=0&size=x&since=yesterday")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.json(),
        json!({"detail": [
            {"type": "greater_than_equal", "loc": ["query", "page"], "path": "page", "msg": "page must be an integer >= 1", "input": "0"},
            {"type": "int_parsing", "loc": ["query", "size"], "path": "size", "msg": "size must be an integer", "input": "x"},
            {"type": "datetime_parsing", "loc": ["query", "since"], "path": "since", "msg": "since must be an RFC 3339 datetime, a naive ISO 8601 datetime (UTC) or Unix seconds", "input": "yesterday"},
        ]})
    );
}

#[actix_web::test]
async fn several_vcons_at_once_in_request_order() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    let v1 = vcon_json(U1, "2024-01-01T00:00:00Z", json!([]));
    let v2 = vcon_json(U2, "2024-01-01T00:00:00Z", json!([]));
    send(&app, post_vcon(v1.clone())).await;
    send(&app, post_vcon(v2.clone())).await;
    let reply = send(
        &app,
        get(&format!(
            "/vcons?vcon_uuids={U2}&vcon_uuids={U3}&vcon_uuids={U1}&vcon_uuids={U2}"
        )),
    )
    .await;
    assert_eq!(reply.text(), format!("[{v2},null,{v1},{v2}]"));
    assert_eq!(send(&app, get("/vcons")).await.json(), json!([]));
    let reply = send(
        &app,
        get(&format!("/vcons?vcon_uuids={U1}&vcon_uuids=nope")),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "uuid_parsing", "loc": ["query", "vcon_uuids"], "path": "vcon_uuids", "msg": "vcon_uuids must be a UUID (hyphenated, 32 hex digits, in braces, or urn:uuid:)", "input": "nope"}]})
        )
    );
    let reply = send(&app, get("/vcon/not-a-uuid")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "uuid_parsing", "loc": ["path", "vcon_uuid"], "path": "vcon_uuid", "msg": "vcon_uuid must be a UUID (hyphenated, 32 hex digits, in braces, or urn:uuid:)", "input": "not-a-uuid"}]})
        )
    );
}

#[actix_web::test]
async fn search_is_an_exact_and_of_the_given_terms() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    let alice = json!({"tel": "+15550100", "name": "Alice", "mailto": "alice@example.com"});
    let bob = json!({"tel": "+15550199", "name": "Bob"});
    send(
        &app,
        post_vcon(vcon_json(U1, "2024-01-01T00:00:00Z", json!([alice, bob]))),
    )
    .await;
    send(
        &app,
        post_vcon(vcon_json(U2, "2024-01-01T00:00:00Z", json!([alice]))),
    )
    .await;
    send(
        &app,
        post_vcon(vcon_json(U3, "2024-01-01T00:00:00Z", json!([bob]))),
    )
    .await;
    let search = |q: &str| get(&format!("/vcons/search?{q}"));
    assert_eq!(
        send(&app, search("tel=%2B15550100")).await.json(),
        json!([U1, U2])
    );
    assert_eq!(send(&app, search("name=Bob")).await.json(), json!([U1, U3]));
    assert_eq!(
        send(&app, search("tel=%2B15550100&name=Bob")).await.json(),
        json!([U1])
    );
    assert_eq!(
        send(&app, search("mailto=alice@example.com&name=Nobody"))
            .await
            .json(),
        json!([])
    );
    assert_eq!(send(&app, search("name=")).await.json(), json!([]));
    // `+` decodes to a space: an unencoded plus does not match.
    assert_eq!(send(&app, search("tel=+15550100")).await.json(), json!([]));
    let reply = send(&app, search("other=1")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "At least one search parameter must be provided"})
        )
    );
}

#[actix_web::test]
async fn delete_removes_the_vcon_and_its_index_entries() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    send(
        &app,
        post_vcon(vcon_json(
            U1,
            "2024-01-01T00:00:00Z",
            json!([{"name": "Alice"}]),
        )),
    )
    .await;
    let reply = send(
        &app,
        TestRequest::delete()
            .uri(&format!("/api/vcon/{U1}"))
            .insert_header(("x-conserver-api-token", TOKEN)),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body.len()),
        (StatusCode::NO_CONTENT, 0)
    );
    assert_eq!(
        send(&app, get(&format!("/vcon/{U1}"))).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(send(&app, get("/vcon")).await.json(), json!([]));
    assert_eq!(
        send(&app, get("/vcons/search?name=Alice")).await.json(),
        json!([])
    );
    // Deleting what does not exist is still a 204.
    let reply = send(
        &app,
        TestRequest::delete()
            .uri(&format!("/vcon/{U2}"))
            .insert_header(("x-conserver-api-token", TOKEN)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn a_vcon_posted_again_replaces_the_stored_one() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    send(
        &app,
        post_vcon(vcon_json(U1, "2024-01-01T00:00:00Z", json!([]))),
    )
    .await;
    let second = vcon_json(U1, "2024-01-01T00:00:00Z", json!([{"name": "Later"}]));
    assert_eq!(
        send(&app, post_vcon(second.clone())).await.status,
        StatusCode::CREATED
    );
    assert_eq!(send(&app, get(&format!("/vcon/{U1}"))).await.text(), second);
}

#[actix_web::test]
async fn external_ingress_checks_the_list_key_with_the_python_messages() {
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    let body = vcon_json(U1, "2024-01-01T00:00:00Z", json!([]));
    let ext = |q: &str, key: Option<&str>| {
        let mut req = TestRequest::post()
            .uri(&format!("/api/vcon/external-ingress{q}"))
            .set_payload(body.clone());
        if let Some(key) = key {
            req = req.insert_header(("x-conserver-api-token", key));
        }
        req
    };
    let reply = send(&app, ext("", Some("partner-key-1"))).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "missing", "loc": ["query", "ingress_list"], "path": "ingress_list", "msg": "query parameter 'ingress_list' is required"}]})
        )
    );
    for (query, key, detail) in [
        ("?ingress_list=partner_calls", None, "API Key required"),
        ("?ingress_list=partner_calls", Some(""), "API Key required"),
        (
            "?ingress_list=elsewhere",
            Some("partner-key-1"),
            "Ingress list 'elsewhere' not configured",
        ),
        (
            "?ingress_list=partner_calls",
            Some("default-key"),
            "Invalid API Key for ingress list 'partner_calls'",
        ),
        (
            "?ingress_list=partner_calls",
            Some(TOKEN),
            "Invalid API Key for ingress list 'partner_calls'",
        ),
    ] {
        let reply = send(&app, ext(query, key)).await;
        assert_eq!(
            (reply.status, reply.json()),
            (StatusCode::FORBIDDEN, json!({"detail": detail})),
            "{query} {key:?}"
        );
    }
    // A valid key for a list no chain reads: 404, nothing written.
    let reply = send(
        &app,
        ext("?ingress_list=partner_calls", Some("partner-key-2")),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "No chain reads ingress list 'partner_calls'"})
        )
    );
    let reply = send(
        &app,
        ext("?ingress_list=default_ingress", Some("default-key")),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body.len()),
        (StatusCode::NO_CONTENT, 0)
    );
    assert_eq!(
        send(
            &app,
            TestRequest::get().uri("/stats/queue?list_name=default_ingress")
        )
        .await
        .json()["depth"],
        1
    );
    assert_eq!(send(&app, get(&format!("/vcon/{U1}"))).await.text(), body);

    let state = common::state(
        "chains: {c: {links: [], ingress_lists: [in]}}\n",
        Backend::Memory,
    )
    .await;
    let app = common::service(&state).await;
    let reply = send(&app, ext("?ingress_list=in", Some("k"))).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::FORBIDDEN,
            json!({"detail": "No ingress authentication configured"})
        )
    );
}

/// TTL of a key in the test Redis.
pub fn redis_ttl(key: &str) -> i64 {
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut con = client.get_connection().unwrap();
    redis::cmd("TTL").arg(key).query(&mut con).unwrap()
}

#[actix_web::test]
async fn an_unreadable_stored_value_is_missing_never_a_vcon_nor_a_failure_of_the_others() {
    let files = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{CONFIG}\nstorages:\n  files: {{module: file, options: {{path: '{}', organize_by_date: false}}}}\n",
        files.path().display()
    );
    let state = common::state(&yaml, Backend::Redis).await;
    let app = common::service(&state).await;
    let p = state.prefix.clone();
    let (hash, garbage, archived, good) = (U1, U2, U3, "0191a3f4-5b6c-7d8e-9f00-112233445599");
    let good_text = vcon_json(good, "2024-01-01T00:00:00Z", json!([]));
    send(&app, post_vcon(good_text.clone())).await;
    let mut redis = redis::Client::open(common::redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{p}vcon:{hash}"))
        .arg("f")
        .arg("v")
        .query(&mut redis)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{p}vcon:{garbage}"))
        .arg("not json {")
        .query(&mut redis)
        .unwrap();
    // Broken in Redis, intact in a storage: read back from there.
    let archived_text = vcon_json(archived, "2024-01-01T00:00:00Z", json!([]));
    let _: () = redis::cmd("SET")
        .arg(format!("{p}vcon:{archived}"))
        .arg("{\"truncated\": ")
        .query(&mut redis)
        .unwrap();
    std::fs::write(
        files.path().join(format!("{archived}.json")),
        &archived_text,
    )
    .unwrap();

    for id in [hash, garbage] {
        let reply = send(&app, get(&format!("/vcon/{id}"))).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{id}: {}",
            reply.text()
        );
    }
    let reply = send(&app, get(&format!("/vcon/{archived}"))).await;
    assert_eq!(
        (reply.status, reply.text()),
        (StatusCode::OK, archived_text.clone())
    );
    let reply = send(
        &app,
        get(&format!(
            "/vcons?vcon_uuids={hash}&vcon_uuids={good}&vcon_uuids={garbage}"
        )),
    )
    .await;
    assert_eq!(
        (reply.status, reply.text()),
        (StatusCode::OK, format!("[null,{good_text},null]"))
    );
}
