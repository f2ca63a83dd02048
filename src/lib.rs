//! conserver: a vCon processing server, drop-in for the Python vCon Conserver (same REST API,
//! `config.yml` and Redis keys), built to never lose a vCon.
//!
//! A map of the crate, in the order a request meets it:
//!
//! - [`cli`] — `conserver serve | check-config`; [`server`] starts the HTTP server and stops it
//!   cleanly on SIGTERM/SIGINT; [`logging`] sets up `tracing` from `RUST_LOG`/`LOG_LEVEL`.
//! - [`config`] — the YAML file: raw serde structs, `${VAR}` interpolation, the compiled
//!   typed form, every problem reported at once, redaction for `GET /config`.
//! - [`api`] — the REST API of spec/api.md, one file per area; [`api::app`] is shared by the
//!   binary and the tests.
//! - [`vcon`] — the vCon format: strict JSON scan that keeps the exact text, validation that
//!   collects every problem with its JSON path, the signed and encrypted forms, dates, uuids.
//! - [`store`] — `trait Store` in product terms (put a vCon, enqueue, dead-letter…), with the
//!   Redis implementation (one pipelined round trip per API write) and the embedded in-memory
//!   one; `store::keys` is the only place key names are made.
//! - [`problem`] — the 422 problem shape shared by the API, vCon validation and the config.
//! - [`metrics`] — the Prometheus registry; [`version`] — what this build is.
pub mod api;
pub mod cli;
pub mod config;
pub mod engine;
pub mod http;
pub mod links;
pub mod logging;
pub mod metrics;
pub mod problem;
pub mod server;
pub mod storages;
pub mod store;
pub mod vcon;
pub mod version;
