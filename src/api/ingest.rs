//! Storing a posted vCon: shared by `POST /vcon` and `POST /vcon/external-ingress`, in the
//! order of checks of api.md §1.4 (400, then the ingress-list 404, then 422), then one
//! pipelined write (steps 2–5 of §5.13).

use actix_web::web;
use bytes::Bytes;

use super::error::ApiError;
use super::state::AppState;
use crate::config::Config;
use crate::problem::Problem;
use crate::store::VconWrite;
use crate::vcon::{self, IngestError, IngestOptions, Ingested};

/// Bodies larger than this are validated on the blocking pool, not on an async worker.
const INLINE_INGEST_BYTES: usize = 256 * 1024;

/// Where an enqueue came from, for `conserver_vcons_enqueued_total{source}`.
#[derive(Clone, Copy)]
pub enum Source {
    New,
    External,
    Reingress,
    DlqReprocess,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::New => "new",
            Source::External => "external",
            Source::Reingress => "reingress",
            Source::DlqReprocess => "dlq_reprocess",
        }
    }
}

/// Validate `body`, check the lists, write it and enqueue it. Returns the stored vCon.
pub async fn store_posted(
    state: &AppState,
    config: &Config,
    body: Bytes,
    lists: &[String],
    source: Source,
) -> Result<Ingested, ApiError> {
    let options = IngestOptions {
        accept_signed: config.api.accept_signed,
        max_bytes: config.api.max_body_bytes,
    };
    let outcome = if body.len() <= INLINE_INGEST_BYTES {
        vcon::ingest(&body, &options)
    } else {
        web::block(move || vcon::ingest(&body, &options))
            .await
            .map_err(|_| ApiError::Internal("Failed to store vCon"))?
    };
    if let Err(IngestError::Malformed {
        line,
        column,
        message,
    }) = outcome
    {
        return Err(ApiError::MalformedJson {
            line,
            column,
            message,
        });
    }
    require_chain_reads(config, lists)?;
    let vcon = outcome.map_err(|e| match e {
        IngestError::Invalid(problems) => ApiError::Unprocessable(problems),
        _ => ApiError::problem(Problem::body("missing", vec![], "a vCon body is required")),
    })?;
    state.report_warnings(&vcon.uuid, &vcon.warnings);
    let score = vcon
        .created_at
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let write = VconWrite {
        uuid: vcon.uuid,
        text: &vcon.text,
        score,
        parties: &vcon.parties,
    };
    state
        .store
        .put_vcon(write, lists)
        .await
        .map_err(ApiError::store("Failed to store vCon"))?;
    count_enqueued(state, lists, source, 1);
    tracing::debug!(vcon_id = %vcon.uuid, lists = ?lists, "vCon stored");
    Ok(vcon)
}

/// The rule of api.md §4: every named list must be read by an enabled chain.
pub fn require_chain_reads(config: &Config, lists: &[String]) -> Result<(), ApiError> {
    match lists
        .iter()
        .find(|list| config.chain_reading(list).is_none())
    {
        Some(list) => Err(ApiError::NotFound(format!(
            "No chain reads ingress list '{list}'"
        ))),
        None => Ok(()),
    }
}

pub fn count_enqueued(state: &AppState, lists: &[String], source: Source, n: u64) {
    for list in lists {
        state
            .metrics
            .vcons_enqueued
            .with_label_values(&[list.as_str(), source.label()])
            .inc_by(n);
    }
}
