//! The `postgres` storage on real PostgreSQL servers: the test server of scripts/test (a
//! database per test) and clusters of a test's own that it stops, starts, or serves TLS from.
//! What conserver wrote is read back with tokio-postgres directly, as a user's own queries
//! would, and rows written as the Python server writes them are read by conserver.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use conserver::api::Role;
use conserver::config::{Config, Env};
use conserver::engine::Pipelines;
use conserver::modules::ModuleContext;
use conserver::storages::{Saved, Storage, StorageError, Storages};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{self, send, Backend, OwnPostgres, PgDatabase, TestState};

/// The storages of `yaml` (on the memory store), built as the engine builds them.
fn storages(yaml: &str) -> Arc<Storages> {
    let config = Config::from_yaml(yaml, None, &Env::default())
        .unwrap_or_else(|e| panic!("the test config is valid: {e}"));
    let context = ModuleContext::new(
        config.limits.clone(),
        Arc::new(conserver::metrics::Metrics::new()),
        Arc::new(conserver::store::memory::MemoryStore::new(
            conserver::server::store_settings(&config),
        )),
    );
    Pipelines::build(&config, &context, None)
        .unwrap_or_else(|problems| panic!("storages build: {problems:?}"))
        .storages
}

/// The one storage `pg` of a config whose only storage is `module: postgres` with `options`.
fn pg_storage(options: &str) -> Arc<dyn Storage> {
    storages(&format!(
        "storages:\n  pg:\n    module: postgres\n    options: {options}\n"
    ))
    .get("pg")
    .expect("the storage pg is configured")
    .clone()
}

fn vcon_text(uuid: Uuid, subject: &str) -> String {
    json!({
        "vcon": "0.4.0",
        "uuid": uuid.to_string(),
        "created_at": "2024-05-02T00:30:00.250+02:00",
        "subject": subject,
        "parties": [
            {"tel": "+15550100", "name": "Ann", "mailto": "ann@example.com"},
            {"tel": "+15550199", "name": "Bob"}
        ],
        "dialog": [{"type": "text", "start": "2024-05-01T22:30:00Z", "parties": [0, 1],
                    "body": "Hello", "encoding": "none"}],
        "attachments": [],
        "analysis": []
    })
    .to_string()
    // A number no machine type holds: it must reach the database as written.
    .replacen('{', r#"{"big":12345678901234567890123,"#, 1)
}

fn saved(text: String) -> Saved {
    let uuid = serde_json::from_str::<Value>(&text).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    Saved::from_text(uuid, text).unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn save_get_and_delete_write_the_python_server_s_row() {
    let db = PgDatabase::create().await;
    let storage = pg_storage(&db.storage_options("vcons", "sslmode: disable"));
    let uuid = Uuid::new_v4();
    let first = saved(vcon_text(uuid, "Billing"));
    storage.save(&first).await.unwrap();

    let client = db.client().await;
    // The table has the Python server's columns and types.
    let columns: Vec<(String, String, String)> = client
        .query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = 'vcons' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("id", "uuid", "NO"),
        ("vcon", "text", "NO"),
        ("uuid", "uuid", "NO"),
        ("created_at", "timestamp without time zone", "NO"),
        ("updated_at", "timestamp without time zone", "YES"),
        ("subject", "text", "YES"),
        ("vcon_json", "jsonb", "YES"),
    ];
    assert_eq!(
        columns,
        expected
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
    let row = client
        .query_one(
            "SELECT id, vcon, uuid, created_at::text, subject, vcon_json->>'uuid', \
             updated_at > (now() AT TIME ZONE 'UTC') - interval '1 minute', \
             vcon_json->'big' = '12345678901234567890123'::jsonb \
             FROM vcons",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Uuid>(0), uuid);
    assert_eq!(row.get::<_, &str>(1), "0.4.0");
    assert_eq!(row.get::<_, Uuid>(2), uuid);
    assert_eq!(
        row.get::<_, &str>(3),
        "2024-05-01 22:30:00.25",
        "created_at in UTC, without zone"
    );
    assert_eq!(row.get::<_, &str>(4), "Billing");
    assert_eq!(row.get::<_, String>(5), uuid.to_string());
    assert!(
        row.get::<_, bool>(6),
        "updated_at is the time of the write, in UTC"
    );
    assert!(row.get::<_, bool>(7), "numbers keep their precision");

    // The database's own queries on vcon_json: a party's tel, a dialog's body.
    let by_tel: Vec<Uuid> = client
        .query(
            "SELECT id FROM vcons WHERE vcon_json->'parties' @> '[{\"tel\": \"+15550199\"}]'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(by_tel, [uuid]);
    let body: String = client
        .query_one("SELECT vcon_json #>> '{dialog,0,body}' FROM vcons", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(body, "Hello");

    // get: the vCon (JSONB keeps the members, not their order).
    let read = storage.get(uuid).await.unwrap().expect("the vCon is found");
    assert_eq!(json_of(&read), json_of(&first.text));

    // A second save replaces the row: one row, every column new; a removed member is gone.
    let mut changed = json_of(&first.text);
    changed["subject"] = json!("Refund");
    changed.as_object_mut().unwrap().remove("analysis");
    storage.save(&saved(changed.to_string())).await.unwrap();
    let rows = client
        .query("SELECT subject, vcon_json ? 'analysis' FROM vcons", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, &str>(0), "Refund");
    assert!(!rows[0].get::<_, bool>(1));
    assert_eq!(json_of(&storage.get(uuid).await.unwrap().unwrap()), changed);

    assert!(storage.delete(uuid).await.unwrap());
    assert_eq!(storage.get(uuid).await.unwrap(), None);
    assert!(!storage.delete(uuid).await.unwrap());
    let left: i64 = client
        .query_one("SELECT count(*) FROM vcons", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    // A uuid nobody wrote, in a table nobody created yet, is simply absent.
    let fresh = pg_storage(&db.storage_options("never_written", "sslmode: disable"));
    assert_eq!(fresh.get(uuid).await.unwrap(), None);
    assert!(!fresh.delete(uuid).await.unwrap());
}

#[tokio::test]
async fn a_table_the_python_server_made_is_used_as_it_is() {
    let db = PgDatabase::create().await;
    let client = db.client().await;
    // What peewee issues for the Python storage's model, and a row as it writes one
    // (`created_at` as the wall-clock time written, `updated_at` in the server's local time).
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS \"Calls\" (\"id\" UUID NOT NULL PRIMARY KEY, \
             \"vcon\" TEXT NOT NULL, \"uuid\" UUID NOT NULL, \"created_at\" TIMESTAMP NOT NULL, \
             \"updated_at\" TIMESTAMP, \"subject\" TEXT, \"vcon_json\" JSONB)",
        )
        .await
        .unwrap();
    let python = Uuid::new_v4();
    let python_vcon = json!({"vcon": "0.0.1", "uuid": python.to_string(),
        "created_at": "2023-01-01T10:00:00+00:00", "parties": [{"tel": "+1555"}]});
    client
        .execute(
            "INSERT INTO \"Calls\" VALUES ($1, '0.0.1', $1, '2023-01-01T10:00:00', now(), NULL, $2::text::jsonb)",
            &[&python, &python_vcon.to_string()],
        )
        .await
        .unwrap();

    let storage = pg_storage(&db.storage_options("Calls", "sslmode: disable"));
    let read = storage
        .get(python)
        .await
        .unwrap()
        .expect("the Python row is read");
    assert_eq!(json_of(&read), python_vcon);
    // conserver's write of the same uuid replaces the Python row; another is added beside it.
    let mut newer = python_vcon.clone();
    newer["subject"] = json!("now from conserver");
    storage.save(&saved(newer.to_string())).await.unwrap();
    let other = saved(vcon_text(Uuid::new_v4(), "second"));
    storage.save(&other).await.unwrap();
    let rows = client
        .query(
            "SELECT id, subject, vcon FROM \"Calls\" ORDER BY created_at",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, Uuid>(0), python);
    assert_eq!(rows[0].get::<_, &str>(1), "now from conserver");
    assert_eq!(rows[0].get::<_, &str>(2), "0.0.1");
    assert_eq!(rows[1].get::<_, Uuid>(0), other.uuid);
    // A lower-case table of the same name is another table: the case is kept.
    let lower: Option<String> = client
        .query_one("SELECT to_regclass('calls')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(lower, None);
}

#[tokio::test]
async fn concurrent_first_saves_create_the_table_once() {
    let db = PgDatabase::create().await;
    let client = db.client().await;
    // Every CREATE TABLE issued in this database is counted, whether it creates or not.
    client
        .batch_execute(
            "CREATE TABLE ddl_log (tag text); \
             CREATE FUNCTION count_ddl() RETURNS event_trigger LANGUAGE plpgsql AS \
               $$ BEGIN IF current_query() LIKE '%\"vcons\"%' THEN \
                  INSERT INTO ddl_log VALUES (tg_tag); END IF; END $$; \
             CREATE EVENT TRIGGER count_ddl ON ddl_command_start \
               WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION count_ddl();",
        )
        .await
        .unwrap();
    let storage = pg_storage(&db.storage_options("vcons", "sslmode: disable"));
    let vcons: Vec<Saved> = (0..32)
        .map(|n| saved(vcon_text(Uuid::new_v4(), &format!("call {n}"))))
        .collect();
    let outcomes = futures_util::future::join_all(vcons.iter().map(|v| storage.save(v))).await;
    for outcome in &outcomes {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    for vcon in &vcons[..4] {
        storage.save(vcon).await.unwrap();
    }
    let count = |client: tokio_postgres::Client| async move {
        let created: i64 = client
            .query_one("SELECT count(*) FROM ddl_log", &[])
            .await
            .unwrap()
            .get(0);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM vcons", &[])
            .await
            .unwrap()
            .get(0);
        (created, rows)
    };
    assert_eq!(
        count(db.client().await).await,
        (1, 32),
        "one CREATE TABLE for 36 saves"
    );

    // Dropped behind the storage's back: the next save fails (transient), the one after
    // creates the table again.
    client.batch_execute("DROP TABLE vcons").await.unwrap();
    let error = storage.save(&vcons[0]).await.unwrap_err();
    assert!(matches!(error, StorageError::Transient { .. }), "{error:?}");
    storage.save(&vcons[0]).await.unwrap();
    assert_eq!(count(db.client().await).await, (2, 1));
}

#[test]
fn a_bad_table_name_is_refused_at_config_time_with_its_path() {
    let yaml = "storages:\n  archive:\n    module: postgres\n    options:\n      table_name: 'vcons; DROP TABLE users'\n      sslmode: sometimes\n";
    let error = Config::from_yaml(yaml, None, &Env::default())
        .expect_err("the config is refused")
        .to_string();
    assert!(
        error.contains("storages.archive.options.table_name")
            && error.contains("\"vcons; DROP TABLE users\" is not a table name")
            && error.contains("line 5"),
        "{error}"
    );
    assert!(
        error.contains("storages.archive.options.sslmode"),
        "{error}"
    );
}

#[tokio::test]
async fn refused_values_and_bad_settings_are_permanent_and_an_absent_server_transient() {
    let db = PgDatabase::create().await;
    let storage = pg_storage(&db.storage_options("vcons", "sslmode: disable"));
    // Text in PostgreSQL holds no NUL character: it refuses the value, in the subject column
    // as in the jsonb document.
    let uuid = Uuid::new_v4();
    let with_nul = saved(format!(
        r#"{{"uuid":"{uuid}","vcon":"0.4.0","created_at":"2024-05-01T12:00:00Z","subject":"a\u0000b"}}"#
    ));
    let error = storage.save(&with_nul).await.unwrap_err();
    let shown = conserver::report(&error).to_string();
    assert!(matches!(error, StorageError::Permanent { .. }), "{shown}");
    assert!(shown.contains(&uuid.to_string()), "{shown}");
    assert!(shown.contains("0x00"), "the database's message: {shown}");
    let nul_in_body = saved(format!(
        r#"{{"uuid":"{uuid}","vcon":"0.4.0","dialog":[{{"body":"a\u0000b"}}]}}"#
    ));
    let error = storage.save(&nul_in_body).await.unwrap_err();
    let shown = conserver::report(&error).to_string();
    assert!(matches!(error, StorageError::Permanent { .. }), "{shown}");
    assert!(
        shown.contains("Unicode escape"),
        "the database's message: {shown}"
    );

    let server = &db.server;
    let missing_db = pg_storage(&format!(
        "{{host: '{}', port: {}, user: '{}', database: no_such_database, sslmode: disable}}",
        server.host, server.port, server.user
    ));
    let error = missing_db.save(&with_nul).await.unwrap_err();
    let shown = conserver::report(&error).to_string();
    assert!(matches!(error, StorageError::Permanent { .. }), "{shown}");
    assert!(shown.contains("no_such_database"), "{shown}");

    let missing_schema = pg_storage(&db.storage_options("nowhere.vcons", "sslmode: disable"));
    let error = missing_schema.save(&with_nul).await.unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");

    let nobody = pg_storage(&format!(
        "{{host: 127.0.0.1, port: {}, sslmode: disable}}",
        common::free_port()
    ));
    let error = nobody.save(&with_nul).await.unwrap_err();
    let shown = conserver::report(&error).to_string();
    assert!(matches!(error, StorageError::Transient { .. }), "{shown}");
    assert!(shown.to_lowercase().contains("refused"), "{shown}");
}

#[tokio::test]
async fn sslmode_encrypts_as_libpq_does_and_verify_full_checks_the_certificate() {
    let server = OwnPostgres::start(true);
    let mut databases = Vec::new();
    for mode in ["disable", "prefer", "require"] {
        let db = PgDatabase::create_on(server.server()).await;
        let storage = pg_storage(&db.storage_options("vcons", &format!("sslmode: {mode}")));
        storage
            .save(&saved(vcon_text(Uuid::new_v4(), mode)))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {}", conserver::report(&e)));
        // Kept: its pool holds the connection the server reports on below.
        databases.push((mode, db, storage));
    }
    let admin = server.server().connect("postgres").await;
    for (mode, db, _) in &databases {
        let encrypted: Vec<bool> = admin
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = $1 AND a.application_name = 'conserver'",
                &[&db.name],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            !encrypted.is_empty(),
            "{mode}: conserver's connection is seen"
        );
        assert!(
            encrypted.iter().all(|ssl| *ssl == (*mode != "disable")),
            "{mode}: {encrypted:?}"
        );
    }
    // The certificate is self-signed: verify-full refuses it, for good.
    let db = &databases[0].1;
    let strict = pg_storage(&db.storage_options("vcons", "sslmode: verify-full"));
    let error = strict
        .save(&saved(vcon_text(Uuid::new_v4(), "strict")))
        .await
        .unwrap_err();
    let shown = conserver::report(&error).to_string();
    assert!(matches!(error, StorageError::Permanent { .. }), "{shown}");
    assert!(shown.to_lowercase().contains("certificate"), "{shown}");
}

/// A chain writing to the storage `pg` of `db`, with quick retries.
fn chain_yaml(db: &PgDatabase) -> String {
    format!(
        "storages:\n  pg:\n    module: postgres\n    options: {}\n    \
         retry: {{attempts: 2, initial_backoff: 0.05, max_backoff: 0.1}}\n\
         chains:\n  main:\n    links: []\n    storages: [pg]\n    ingress_lists: [calls]\n    \
         egress_lists: [done]\n    workers: 4\n",
        db.storage_options("vcons", "sslmode: disable, password: 'pg-s3cret'")
    )
}

fn redis() -> redis::Connection {
    redis::Client::open(common::redis_url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn llen(key: &str) -> u64 {
    redis::cmd("LLEN").arg(key).query(&mut redis()).unwrap()
}

async fn post_vcons(state: &TestState, n: usize) -> Vec<Uuid> {
    let app = common::service(state).await;
    let mut uuids = Vec::new();
    for i in 0..n {
        let uuid = Uuid::new_v4();
        let reply = send(
            &app,
            TestRequest::post()
                .uri("/vcon?ingress_lists=calls")
                .set_payload(vcon_text(uuid, &format!("call {i}"))),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        uuids.push(uuid);
    }
    uuids
}

async fn rows(db: &PgDatabase) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM vcons", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_chain_writes_to_postgres_and_a_cache_miss_is_served_from_it() {
    let db = PgDatabase::create().await;
    let state = common::state_for_role(&chain_yaml(&db), Backend::Redis, &[], Role::All).await;
    let p = state.prefix.clone();
    let _engine = common::start_engine(&state).await;
    let uuids = post_vcons(&state, 10).await;
    common::eventually("every vCon is on the egress list", || {
        llen(&format!("{p}done")) == 10
    })
    .await;
    let client = db.client().await;
    let stored: Vec<(Uuid, String)> = client
        .query(
            "SELECT id, vcon_json->>'subject' FROM vcons ORDER BY subject",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(stored.len(), 10);
    for (i, uuid) in uuids.iter().enumerate() {
        assert!(stored.contains(&(*uuid, format!("call {i}"))), "{uuid}");
    }

    // The Redis copy is gone: GET /vcon is served from PostgreSQL and re-cached.
    let app = common::service(&state).await;
    let id = uuids[3];
    let cached = send(&app, TestRequest::get().uri(&format!("/vcon/{id}")))
        .await
        .json();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{p}vcon:{id}"))
        .query(&mut redis())
        .unwrap();
    let reply = send(&app, TestRequest::get().uri(&format!("/vcon/{id}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), cached);
    let recached: Option<String> = redis::cmd("GET")
        .arg(format!("{p}vcon:{id}"))
        .query(&mut redis())
        .unwrap();
    assert_eq!(json_of(&recached.expect("re-cached")), cached);

    // DELETE /vcon removes the row too.
    let reply = send(&app, TestRequest::delete().uri(&format!("/vcon/{id}"))).await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert_eq!(rows(&db).await, 9);

    // GET /config shows the storage without its password.
    let config = send(&app, TestRequest::get().uri("/config")).await;
    assert_eq!(config.status, StatusCode::OK, "{}", config.text());
    let shown = config.text();
    assert!(!shown.contains("pg-s3cret"), "{shown}");
    assert_eq!(
        config.json()["storages"]["pg"]["options"]["password"],
        "***"
    );
}

#[actix_web::test]
async fn postgres_stopped_mid_run_dead_letters_then_reprocessing_writes_every_vcon_once() {
    let mut server = OwnPostgres::start(false);
    let db = PgDatabase::create_on(server.server()).await;
    let state = common::state_for_role(&chain_yaml(&db), Backend::Redis, &[], Role::All).await;
    let p = state.prefix.clone();
    let _engine = common::start_engine(&state).await;
    let before = post_vcons(&state, 5).await;
    common::eventually("the first vCons are on the egress list", || {
        llen(&format!("{p}done")) == 5
    })
    .await;

    server.stop();
    let during = post_vcons(&state, 5).await;
    common::eventually(
        "the vCons written while PostgreSQL is down are dead-lettered",
        || llen(&format!("{p}DLQ:storage:pg")) == 5,
    )
    .await;
    // Their egress is held back until the storage has them (redis.md §4.3).
    assert_eq!(llen(&format!("{p}done")), 5);
    for uuid in &during {
        let pending: bool = redis::cmd("EXISTS")
            .arg(format!("{p}conserver:egress_pending:{uuid}"))
            .query(&mut redis())
            .unwrap();
        assert!(pending, "{uuid}: egress pending");
    }

    server.resume();
    let app = common::service(&state).await;
    let reply = send(
        &app,
        TestRequest::post().uri("/dlq/storage/reprocess?storage_name=pg"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text().trim(), "5");
    assert_eq!(llen(&format!("{p}DLQ:storage:pg")), 0);
    assert_eq!(llen(&format!("{p}done")), 10, "egress released");
    let client = db.client().await;
    for uuid in before.iter().chain(&during) {
        let count: i64 = client
            .query_one("SELECT count(*) FROM vcons WHERE id = $1", &[uuid])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 1, "{uuid}");
    }
    let egress: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{p}done"))
        .arg(0)
        .arg(-1)
        .query(&mut redis())
        .unwrap();
    let mut egress_sorted = egress.clone();
    egress_sorted.sort();
    egress_sorted.dedup();
    assert_eq!(
        egress_sorted.len(),
        10,
        "each vCon announced once: {egress:?}"
    );
}
