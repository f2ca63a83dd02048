//! The one integration-test binary: the modules below talk to real services (Redis from
//! `scripts/test`, or a server of the test's own) and to the app in process; `standalone`
//! checks that the repository's own files need nothing outside it.
mod api_basics;
mod api_config;
mod api_queues;
mod api_vcon;
mod cli;
mod common;
mod corpus;
mod delivery;
mod diet;
mod engine;
mod faults;
mod links;
mod mongo;
mod outage;
mod postgres;
mod s3;
mod secrets;
mod slack;
mod standalone;
mod storages;
mod store_conformance;
mod transcribe;
mod vcon_mcp;
