//! What `cbx doctor` reports: its checks, in order, and the exit code (shared by the checks of
//! `ops::doctor` and `ops::doctor_lease`).

use serde::Serialize;

use crate::context::Context;
use crate::error::{ErrorKind, failure};
use crate::provider::api::CheckStatus;

/// One check and its outcome.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorCheck {
    /// What was checked.
    pub name: String,
    /// How it went.
    pub status: CheckStatus,
    /// What was found (secrets removed).
    pub detail: String,
}

/// What `cbx doctor` found. Field names are documented in docs/cli.md and stable.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorReport {
    /// The provider checked.
    pub provider: String,
    /// Whether nothing failed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<DoctorCheck>,
    /// With `--lease`: the transport syncs to that lease will use, when it can sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_transport: Option<&'static str>,
    /// The exit code: 0, or the code of the first failure that stopped the checks.
    #[serde(skip)]
    pub exit: u8,
}

impl DoctorReport {
    /// Adds a check.
    pub fn add(&mut self, ctx: &Context, name: &str, status: CheckStatus, detail: String) {
        self.checks.push(DoctorCheck {
            name: name.into(),
            status,
            detail: ctx.redactor.redact(&detail),
        });
    }

    /// Records `err` as the failure of `check`, with its hint; the exit code becomes its kind's.
    pub fn fail(&mut self, ctx: &Context, check: &str, err: &anyhow::Error) {
        let kind = failure(err).map_or(ErrorKind::Other, |f| f.kind);
        let mut detail = format!("{err:#}");
        if let Some(h) = failure(err).and_then(|f| f.hint.clone()) {
            detail.push_str(&format!(" (hint: {h})"));
        }
        self.add(ctx, check, CheckStatus::Fail, detail);
        self.exit = kind.exit_code();
    }
}
