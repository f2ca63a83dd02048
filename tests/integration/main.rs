//! The one integration-test binary: every module below talks to real services (Redis from
//! `scripts/test`, or a server of the test's own) and to the app in process.
mod api_basics;
mod api_config;
mod api_queues;
mod api_vcon;
mod cli;
mod common;
mod corpus;
mod engine;
mod faults;
mod links;
mod outage;
mod postgres;
mod storages;
mod store_conformance;
mod vcon_mcp;
