//! conserver: a vCon processing server (see ../README.md and DESIGN.md).
pub mod config;
pub mod problem;
pub mod store;
pub mod vcon;
