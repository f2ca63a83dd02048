//! The storage benchmark (`scripts/bench-storages`, bench/README.md): vCons per second written
//! by the `mongo` and `s3` storages at several concurrencies, each next to its ceiling — a plain
//! client loop writing the same documents to the same server in the same run:
//!
//! - `mongo`: conserver's storage (JSON → BSON with dates, size check, `replace_one` upsert)
//!   against the official driver's `replace_one` upsert of the same documents, already BSON.
//! - `s3`: conserver's storage (object + lookup pointer) against an `object_store` client
//!   doing the same two PUTs.
//!
//! Each vCon is the ~5.3 KB benchmark vCon of `bench/vcon.lua` with a uuid of its own. For
//! each storage and concurrency, the storage and the ceiling alternate `--rounds` times (the
//! median is reported), the ceiling first in odd rounds, each writing `--count` distinct vCons with `concurrency` writes in
//! flight. Every written vCon is counted; an error stops the benchmark.
//!
//! `cargo run --release --example storages_bench -- --mongo mongodb://127.0.0.1:27017/ \
//!    --s3 http://127.0.0.1:8333 --count 2000`

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use conserver::config::{Config, Env};
use conserver::engine::Pipelines;
use conserver::modules::ModuleContext;
use conserver::storages::{Saved, Storage};
use futures_util::stream::{self, StreamExt};
use mongodb::bson::{doc, Bson, Document};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(about = "vCons per second written by the mongo and s3 storages, and their ceilings")]
struct Args {
    /// The MongoDB-protocol server (empty: skip mongo).
    #[arg(long, default_value = "")]
    mongo: String,
    /// The S3 endpoint (empty: skip s3).
    #[arg(long, default_value = "")]
    s3: String,
    #[arg(long, default_value = "conserver-bench")]
    bucket: String,
    #[arg(long, default_value = "conserver-test-key")]
    access_key: String,
    #[arg(long, default_value = "conserver-test-secret")]
    secret_key: String,
    /// vCons written per measurement.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Concurrent writes, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Measurements of each kind per concurrency (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// The benchmark vCon of bench/vcon.lua around `uuid`.
fn vcon_text(uuid: Uuid) -> String {
    let words: Vec<String> = (1..=600).map(|i| format!("word{}", i % 97)).collect();
    format!(
        concat!(
            r#"{{"uuid":"{uuid}","vcon":"0.4.0","created_at":"2026-11-28T10:00:00Z","subject":"benchmark call","#,
            r#""parties":[{{"tel":"+15550100","name":"Alice","role":"customer"}},"#,
            r#"{{"tel":"+15550199","name":"Bob","role":"agent","mailto":"bob@example.com"}}],"#,
            r#""dialog":[{{"type":"text","start":"2026-11-28T10:00:00Z","duration":42.5,"parties":[0,1],"#,
            r#""originator":0,"mediatype":"text/plain","encoding":"none","body":"{text}"}}],"#,
            r#""analysis":[],"attachments":[]}}"#
        ),
        uuid = uuid,
        text = words.join(" ")
    )
}

/// `count` fresh vCons as the storages receive them.
fn vcons(count: usize) -> Vec<Arc<Saved>> {
    (0..count)
        .map(|_| {
            let uuid = Uuid::new_v4();
            Arc::new(Saved::from_text(uuid, vcon_text(uuid)).expect("the benchmark vCon reads"))
        })
        .collect()
}

/// The storage `name` of a configuration with only `yaml` as its `storages:` section.
fn storage(yaml: &str, name: &str) -> Arc<dyn Storage> {
    let config = Config::from_yaml(yaml, None, &Env::default()).expect("the benchmark config");
    let store = Arc::new(conserver::store::memory::MemoryStore::new(
        conserver::server::store_settings(&config),
    ));
    let context = ModuleContext::new(
        config.limits.clone(),
        Arc::new(conserver::metrics::Metrics::new()),
        store,
    );
    let pipelines = Pipelines::build(&config, &context, None).expect("the storage builds");
    pipelines.storages.get(name).expect("configured").clone()
}

/// Run `write` on every item with `concurrency` in flight; vCons per second.
async fn rate<T, F, Fut>(items: Vec<T>, concurrency: usize, write: F) -> f64
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let count = items.len();
    let started = Instant::now();
    stream::iter(items.into_iter().map(write))
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    count as f64 / started.elapsed().as_secs_f64()
}

/// Both measurements of a round, the ceiling first in odd rounds (so that neither always runs
/// on a store the other has just warmed or filled).
async fn in_turn(
    round: usize,
    conserver: impl std::future::Future<Output = f64>,
    ceiling: impl std::future::Future<Output = f64>,
) -> (f64, f64) {
    if round.is_multiple_of(2) {
        let measured = conserver.await;
        (measured, ceiling.await)
    } else {
        let plain = ceiling.await;
        (conserver.await, plain)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn print_row(storage: &str, concurrency: usize, measured: f64, ceiling: f64) {
    println!(
        "| {storage} | {concurrency} | {measured:.0} | {ceiling:.0} | {:.0} % |",
        100.0 * measured / ceiling
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    println!("| storage | concurrency | conserver vCons/s | plain client vCons/s (ceiling) | of the ceiling |");
    println!("|---|---|---|---|---|");
    if !args.mongo.is_empty() {
        bench_mongo(&args).await;
    }
    if !args.s3.is_empty() {
        bench_s3(&args).await;
    }
}

async fn bench_mongo(args: &Args) {
    let database = format!(
        "conserver_bench_{}",
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let yaml = format!(
        "storages:\n  mongo: {{module: mongo, options: {{url: '{}', database: {database}, collection: vcons}}}}\n",
        args.mongo
    );
    let storage = storage(&yaml, "mongo");
    let client = mongodb::Client::with_uri_str(&args.mongo)
        .await
        .expect("the MongoDB URL");
    let collection = client.database(&database).collection::<Document>("ceiling");
    // One write each first: connections made, collections created.
    let warm = vcons(1);
    storage.save(&warm[0]).await.expect("mongo storage write");
    collection
        .replace_one(doc! {"_id": "warm"}, doc! {"_id": "warm"})
        .upsert(true)
        .await
        .expect("driver write");
    for &concurrency in &args.concurrency {
        let (mut measured, mut ceiling) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let batch = vcons(args.count);
            let documents: Vec<Document> = batch.iter().map(|s| document_of(s)).collect();
            let conserver_run = rate(batch, concurrency, |saved| {
                let storage = storage.clone();
                async move { storage.save(&saved).await.expect("mongo storage write") }
            });
            let ceiling_run = rate(documents, concurrency, |document| {
                let collection = collection.clone();
                async move {
                    let id = document.get("_id").cloned().unwrap_or(Bson::Null);
                    collection
                        .replace_one(doc! {"_id": id}, document)
                        .upsert(true)
                        .await
                        .expect("driver write");
                }
            });
            let (conserver_rate, ceiling_rate) = in_turn(round, conserver_run, ceiling_run).await;
            measured.push(conserver_rate);
            ceiling.push(ceiling_rate);
        }
        print_row("mongo", concurrency, median(measured), median(ceiling));
    }
    let _ = client.database(&database).drop().await;
}

/// The document the storage would store, with dates as BSON dates, built with the driver's
/// own types (so the ceiling pays no JSON work).
fn document_of(saved: &Saved) -> Document {
    let created = mongodb::bson::DateTime::from_millis(1_795_860_000_000);
    let words: Vec<String> = (1..=600).map(|i| format!("word{}", i % 97)).collect();
    doc! {
        "_id": saved.uuid.to_string(),
        "uuid": saved.uuid.to_string(),
        "vcon": "0.4.0",
        "created_at": created,
        "subject": "benchmark call",
        "parties": [
            {"tel": "+15550100", "name": "Alice", "role": "customer"},
            {"tel": "+15550199", "name": "Bob", "role": "agent", "mailto": "bob@example.com"},
        ],
        "dialog": [{
            "type": "text", "start": created, "duration": 42.5, "parties": [0, 1],
            "originator": 0, "mediatype": "text/plain", "encoding": "none", "body": words.join(" "),
        }],
        "analysis": [],
        "attachments": [],
    }
}

async fn bench_s3(args: &Args) {
    let prefix = format!("bench-{}", Uuid::new_v4().simple());
    let yaml = format!(
        "storages:\n  s3: {{module: s3, options: {{aws_bucket: {}, aws_access_key_id: {}, aws_secret_access_key: {}, endpoint_url: '{}', s3_path: {prefix}}}}}\n",
        args.bucket, args.access_key, args.secret_key, args.s3
    );
    let storage = storage(&yaml, "s3");
    let client = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(&args.s3)
            .with_bucket_name(&args.bucket)
            .with_region("us-east-1")
            .with_access_key_id(&args.access_key)
            .with_secret_access_key(&args.secret_key)
            .with_allow_http(true)
            .build()
            .expect("the S3 client"),
    );
    let warm = vcons(1);
    storage.save(&warm[0]).await.expect("s3 storage write");
    for &concurrency in &args.concurrency {
        let (mut measured, mut ceiling) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let batch = vcons(args.count);
            let objects: Vec<(String, String)> = batch
                .iter()
                .map(|s| (s.uuid.to_string(), s.text.clone()))
                .collect();
            let conserver_run = rate(batch, concurrency, |saved| {
                let storage = storage.clone();
                async move { storage.save(&saved).await.expect("s3 storage write") }
            });
            let ceiling_run = rate(objects, concurrency, |(uuid, text)| {
                let client = client.clone();
                let prefix = prefix.clone();
                async move {
                    let object = Path::from(format!("{prefix}-ceiling/2026/11/28/{uuid}.vcon"));
                    client
                        .put(&object, PutPayload::from(text))
                        .await
                        .expect("plain S3 write");
                    let pointer = Path::from(format!("{prefix}-ceiling/lookup/{uuid}.txt"));
                    client
                        .put(&pointer, PutPayload::from_static(b"2026/11/28"))
                        .await
                        .expect("plain S3 write");
                }
            });
            let (conserver_rate, ceiling_rate) = in_turn(round, conserver_run, ceiling_run).await;
            measured.push(conserver_rate);
            ceiling.push(ceiling_rate);
        }
        print_row("s3", concurrency, median(measured), median(ceiling));
    }
}
