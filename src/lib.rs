//! conserver: a vCon processing server, drop-in for the Python vCon Conserver (same REST API,
//! `config.yml` and Redis keys), built to never lose a vCon.
//!
//! A map of the crate, in the order a vCon meets it:
//!
//! - [`cli`] — `conserver serve | check-config`; [`server`] starts the HTTP server and the
//!   engine, reloads the configuration live, and stops cleanly on SIGTERM/SIGINT; [`logging`]
//!   sets up `tracing` from `RUST_LOG`/`LOG_LEVEL`.
//! - [`config`] — the YAML file: `${VAR}` interpolation, the environment laid over it, every
//!   section and module option read by one lenient reader that reports every problem at once
//!   with its path and line, the access rules, redaction for `GET /config`.
//! - [`api`] — the REST API of spec/api.md, one file per area; [`api::app`] is shared by the
//!   binary and the tests.
//! - [`vcon`] — the vCon format: strict JSON scan that keeps the exact text, validation that
//!   collects every problem with its JSON path, the signed and encrypted forms, dates, uuids,
//!   and the in-memory [`vcon::Document`] of a chain run.
//! - [`store`] — `trait Store` in product terms (put a vCon, enqueue, claim, finish…), with the
//!   Redis implementation (one pipelined round trip per operation) and the embedded in-memory
//!   one; `store::keys` is the only place key names are made.
//! - [`engine`] — the chains at work on the actor runtime (`conserver-actors`): chain plans,
//!   one run of a chain, the storage phase, heartbeat, reaper and sweeper.
//! - [`modules`] — what links and storages share: module names and kinds, the context they are
//!   built with, typed option values; [`links`] and [`storages`] — one folder per module, each
//!   a variant of `LinkKind` / `StorageKind`.
//! - [`http`] — the outbound HTTP client the network modules share: timeouts, bounded answers,
//!   transient/permanent classification, retries.
//! - [`problem`] — the 422 problem shape shared by the API, vCon validation and the config;
//!   [`report`] — an error with its chain of causes, for log lines.
//! - [`metrics`] — the Prometheus registry; [`version`] — what this build is.
pub mod api;
pub mod cli;
pub mod config;
pub mod engine;
pub mod http;
pub mod links;
pub mod logging;
pub mod metrics;
pub mod modules;
pub mod problem;
mod report;
pub mod server;
pub mod storages;
pub mod store;
pub mod vcon;
pub mod version;

pub use report::{report, Report};
