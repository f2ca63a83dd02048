//! The one integration-test binary: every module below talks to real services (Redis from
//! `scripts/test`, or a server of the test's own) and to the app in process.
mod common;
