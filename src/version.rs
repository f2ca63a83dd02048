//! What this build is: crate version, git commit and build time (api.md §5.1).

use serde::Serialize;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("CONSERVER_GIT_COMMIT");
pub const BUILD_TIME: &str = env!("CONSERVER_BUILD_TIME");

/// The body of `GET /version`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_time: &'static str,
}

pub fn info() -> VersionInfo {
    VersionInfo {
        version: VERSION,
        git_commit: GIT_COMMIT,
        build_time: BUILD_TIME,
    }
}
