//! Write throughput of the `postgres` and `vcon_mcp` storages (bench/README.md), each next to
//! its ceiling: a plain client loop writing the same documents to the same server in the same
//! run.
//!
//! - `postgres`: the storage built from its options as the engine builds it (its pool, its
//!   statements), `save` called by `c` tasks at once; the ceiling is `c` tasks each on a
//!   tokio-postgres connection of its own, running the storage's upsert with the same values
//!   into a table of the same schema.
//! - `vcon_mcp`: the storage on the process's HTTP client against an in-process peer that
//!   answers as vcon-mcp does (`201` and its JSON envelope, the body read and dropped); the
//!   ceiling is `c` tasks POSTing the same body with the same client to the same peer.
//!
//! Every write is of the 5.3 KB benchmark vCon of bench/vcon.lua, under a uuid of its own (a
//! new row each time). Each case runs `--seconds` after a one-second warm-up; the cases of one
//! concurrency alternate storage and ceiling. Output: a Markdown table, then `RESULT` lines.
//!
//! `cargo run --release --example storage_postgres_vcon_mcp -- --postgres \
//!    postgresql://postgres@127.0.0.1:5432/bench --seconds 10`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Parser;
use conserver::config::{Config, Env};
use conserver::engine::Pipelines;
use conserver::modules::ModuleContext;
use conserver::storages::{Saved, Storage};
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(about = "vCons per second written by the postgres and vcon_mcp storages")]
struct Args {
    /// The PostgreSQL database written to (its user must be allowed to create tables).
    #[arg(long)]
    postgres: String,
    /// Seconds each case runs (after a one-second warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrencies, comma-separated.
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    concurrency: Vec<usize>,
}

/// The benchmark vCon of bench/vcon.lua.
fn vcon_text(uuid: Uuid) -> String {
    let text: Vec<String> = (1..=600).map(|i| format!("word{}", i % 97)).collect();
    format!(
        r#"{{"uuid":"{uuid}","vcon":"0.4.0","created_at":"2026-11-28T10:00:00Z","subject":"benchmark call","parties":[{{"tel":"+15550100","name":"Alice","role":"customer"}},{{"tel":"+15550199","name":"Bob","role":"agent","mailto":"bob@example.com"}}],"dialog":[{{"type":"text","start":"2026-11-28T10:00:00Z","duration":42.5,"parties":[0,1],"originator":0,"mediatype":"text/plain","encoding":"none","body":"{}"}}],"analysis":[],"attachments":[]}}"#,
        text.join(" ")
    )
}

/// `c` tasks calling `write` until the time is up; writes per second of the measured part.
async fn run<F, Fut>(c: usize, seconds: f64, write: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let write = Arc::new(write);
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..c)
        .map(|task| {
            let (write, counting, stop, done) =
                (write.clone(), counting.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(error) = write(task).await {
                        panic!("a write failed: {error}");
                    }
                    if counting.load(Ordering::Relaxed) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let counted = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a writer task ended");
    }
    counted as f64 / elapsed
}

/// One `Saved` per task, its uuid changed before each write (so no vCon is parsed or copied
/// in the loop: the engine hands the storages a `Saved` it already has).
fn saved_per_task(c: usize) -> Arc<Vec<tokio::sync::Mutex<Saved>>> {
    Arc::new(
        (0..c)
            .map(|_| {
                let uuid = Uuid::new_v4();
                tokio::sync::Mutex::new(Saved::from_text(uuid, vcon_text(uuid)).expect("a vCon"))
            })
            .collect(),
    )
}

fn storage(yaml: &str, name: &str) -> Arc<dyn Storage> {
    let config = Config::from_yaml(yaml, None, &Env::default()).expect("the bench config");
    let context = ModuleContext::new(
        config.limits.clone(),
        Arc::new(conserver::metrics::Metrics::new()),
        Arc::new(conserver::store::memory::MemoryStore::new(
            conserver::server::store_settings(&config),
        )),
    );
    Pipelines::build(&config, &context, None)
        .expect("the bench storages build")
        .storages
        .get(name)
        .expect("the storage is configured")
        .clone()
}

const UPSERT: &str = "INSERT INTO \"bench_plain\" \
    (\"id\", \"vcon\", \"uuid\", \"created_at\", \"updated_at\", \"subject\", \"vcon_json\") \
    VALUES ($1, $2, $1, $3, now() AT TIME ZONE 'UTC', $4, $5::text::jsonb) \
    ON CONFLICT (\"id\") DO UPDATE SET \"vcon\" = EXCLUDED.\"vcon\", \"uuid\" = EXCLUDED.\"uuid\", \
    \"created_at\" = EXCLUDED.\"created_at\", \"updated_at\" = EXCLUDED.\"updated_at\", \
    \"subject\" = EXCLUDED.\"subject\", \"vcon_json\" = EXCLUDED.\"vcon_json\"";

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers");
    tokio::spawn(connection);
    client
}

/// The peer: `POST /api/v1/vcons` reads the body and answers as vcon-mcp does.
fn start_peer() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(|| {
                App::new().route(
                    "/api/v1/vcons",
                    web::post().to(|body: web::Bytes| async move {
                        drop(body);
                        HttpResponse::Created()
                            .content_type("application/json")
                            .body(r#"{"success":true,"uuid":"x","id":"1","message":"vCon created successfully","duration_ms":1}"#)
                    }),
                )
            })
            .workers(1)
            .listen(listener)
            .expect("the peer listens")
            .run()
            .await
            .expect("the peer runs");
        });
    });
    format!("http://{address}/api/v1")
}

#[tokio::main(worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let pg_config: tokio_postgres::Config = args.postgres.parse().expect("a PostgreSQL URL");
    let host = match pg_config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let admin = connect(&args.postgres).await;
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS \"bench_storage\"; DROP TABLE IF EXISTS \"bench_plain\"; \
             CREATE TABLE \"bench_plain\" (\"id\" UUID NOT NULL PRIMARY KEY, \"vcon\" TEXT NOT NULL, \
             \"uuid\" UUID NOT NULL, \"created_at\" TIMESTAMP NOT NULL, \"updated_at\" TIMESTAMP, \
             \"subject\" TEXT, \"vcon_json\" JSONB)",
        )
        .await
        .expect("the bench tables");
    let pg_yaml = format!(
        "storages:\n  pg:\n    module: postgres\n    options: {{host: '{host}', port: {}, user: '{}', database: '{}', table_name: bench_storage, sslmode: disable}}\n",
        pg_config.get_ports().first().copied().unwrap_or(5432),
        pg_config.get_user().unwrap_or("postgres"),
        pg_config.get_dbname().unwrap_or("postgres"),
    );
    let base_url = start_peer();
    let mcp_yaml = format!(
        "storages:\n  mcp:\n    module: vcon_mcp\n    options: {{base_url: '{base_url}', api_key: bench-key}}\n"
    );
    let limits = Config::from_yaml("{}", None, &Env::default())
        .expect("the default config")
        .limits;
    let client = conserver::http::http_client(&limits);

    println!("| storage | concurrency | storage vCons/s | ceiling vCons/s | storage / ceiling |");
    println!("|---|---|---|---|---|");
    let mut results = Vec::new();
    for &c in &args.concurrency {
        // postgres: a fresh storage (its pool) per concurrency, as a started server has.
        let pg = storage(&pg_yaml, "pg");
        let items = saved_per_task(c);
        let measured = run(c, args.seconds, move |task| {
            let (pg, items) = (pg.clone(), items.clone());
            async move {
                let mut saved = items[task].lock().await;
                saved.uuid = Uuid::new_v4();
                pg.save(&saved)
                    .await
                    .map_err(|e| conserver::report(&e).to_string())
            }
        })
        .await;
        let mut connections = Vec::new();
        for _ in 0..c {
            let client = connect(&args.postgres).await;
            let statement = client.prepare(UPSERT).await.expect("the upsert prepares");
            connections.push((client, statement));
        }
        let connections = Arc::new(connections);
        let items = saved_per_task(c);
        let created = chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .expect("a date")
            .naive_utc();
        let ceiling = run(c, args.seconds, move |task| {
            let (connections, items) = (connections.clone(), items.clone());
            async move {
                let (client, statement) = &connections[task];
                let saved = items[task].lock().await;
                client
                    .execute(
                        statement,
                        &[
                            &Uuid::new_v4(),
                            &"0.4.0",
                            &created,
                            &Some("benchmark call"),
                            &saved.text.as_str(),
                        ],
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        results.push(("postgres", c, measured, ceiling));
        println!(
            "| postgres | {c} | {measured:.0} | {ceiling:.0} | {:.0} % |",
            100.0 * measured / ceiling
        );

        let mcp = storage(&mcp_yaml, "mcp");
        let items = saved_per_task(c);
        let measured = run(c, args.seconds, move |task| {
            let (mcp, items) = (mcp.clone(), items.clone());
            async move {
                let saved = items[task].lock().await;
                mcp.save(&saved)
                    .await
                    .map_err(|e| conserver::report(&e).to_string())
            }
        })
        .await;
        let url = reqwest::Url::parse(&format!("{base_url}/vcons")).expect("the peer's URL");
        let body = bytes::Bytes::from(vcon_text(Uuid::new_v4()));
        let (client, url, body) = (client.clone(), Arc::new(url), body);
        let ceiling = run(c, args.seconds, move |_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move {
                let response = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("accept", "application/json")
                    .header("authorization", "Bearer bench-key")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                response.bytes().await.map_err(|e| e.to_string())?;
                status
                    .is_success()
                    .then_some(())
                    .ok_or_else(|| status.to_string())
            }
        })
        .await;
        results.push(("vcon_mcp", c, measured, ceiling));
        println!(
            "| vcon_mcp | {c} | {measured:.0} | {ceiling:.0} | {:.0} % |",
            100.0 * measured / ceiling
        );
    }
    for (name, c, measured, ceiling) in results {
        println!("RESULT storage={name} concurrency={c} storage_per_s={measured:.0} ceiling_per_s={ceiling:.0}");
    }
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM \"bench_storage\"", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    println!("rows written by the storage: {rows}");
}
