//! The audit log: every outbound request a provider makes, every denial and every limit hit,
//! and the data plane — every SSH destination a provider minted (allowed or denied), every
//! sync and every `--env` forwarding (names only) — appended as JSON lines (0600). Requests
//! and data-plane records go to `<state>/audit.jsonl`; alerts — denials (of requests and of
//! SSH destinations), limit hits and faults — to `<state>/alerts.jsonl` beside it, so however
//! many requests a provider makes they cannot rotate an alert out. Each file keeps one rotated
//! generation. `cbx providers audit` reads both, merged by time (`--alerts`: the alerts alone).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::grant::http::{HttpEvent, HttpOutcome};
use crate::paths;
use crate::sync::Transport;

/// When a log file passes this size it is rotated to `<name>.jsonl.1`.
const ROTATE_BYTES: u64 = 16 << 20;

/// What an audit record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A request that left the machine (or was meant to).
    Request,
    /// A request the grant refused.
    Denied,
    /// A call that hit a limit.
    Limit,
    /// A call the component failed otherwise.
    Fault,
    /// SSH access a provider minted, allowed by its grant.
    Ssh,
    /// A sync of the working tree to a sandbox.
    Sync,
    /// Variables forwarded with `--env` (their names).
    Env,
}

/// How a provider call failed, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// It hit a limit.
    Limit,
    /// It crashed or returned something unusable.
    Fault,
}

/// How something the host did on the data plane ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataOutcome {
    /// Minted SSH access the grant allows.
    Allowed,
    /// Files or variables were sent.
    Sent,
    /// Nothing to send: the tree is as the last sync left it.
    Unchanged,
    /// Sending failed.
    Failed,
}

/// How the recorded event ended: an HTTP outcome, the kind of a fault, or a data-plane
/// outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordOutcome {
    /// The outcome of a request.
    Http(HttpOutcome),
    /// A failed call.
    Fault(FaultKind),
    /// What happened on the data plane.
    Data(DataOutcome),
}

impl RecordKind {
    /// Whether records of this kind are alerts, kept apart from the requests.
    pub fn is_alert(self) -> bool {
        match self {
            RecordKind::Request | RecordKind::Ssh | RecordKind::Sync | RecordKind::Env => false,
            RecordKind::Denied | RecordKind::Limit | RecordKind::Fault => true,
        }
    }
}

impl RecordOutcome {
    /// The word the audit log writes.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::Http(o) => o.as_str(),
            RecordOutcome::Fault(FaultKind::Limit) => "limit",
            RecordOutcome::Fault(FaultKind::Fault) => "fault",
            RecordOutcome::Data(DataOutcome::Allowed) => "allowed",
            RecordOutcome::Data(DataOutcome::Sent) => "sent",
            RecordOutcome::Data(DataOutcome::Unchanged) => "unchanged",
            RecordOutcome::Data(DataOutcome::Failed) => "failed",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The provider.
    pub provider: String,
    /// What it is about.
    pub kind: RecordKind,
    /// The provider operation in progress (`create`, `list`, …).
    pub operation: String,
    /// HTTP method, for requests and denials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// URL with its query string, secrets and credential-like parameter values redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP status, if a response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response bytes received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Names of the credentials the host attached (never values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<String>,
    /// How it ended.
    pub outcome: RecordOutcome,
    /// Details (what was denied and why; which limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The lease, for data-plane records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// The SSH destination (`host:port`), for data-plane records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// How files travel (`rsync over ssh`), for syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// How many files a sync covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// The names of the variables forwarded with `--env` (never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// One sync, as the audit log records it.
#[derive(Debug, Clone)]
pub struct SyncAudit {
    /// The provider of the lease.
    pub provider: String,
    /// The lease.
    pub lease: String,
    /// `host:port`.
    pub destination: String,
    /// Files in the synced list, and their bytes.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Sent, unchanged or failed.
    pub outcome: DataOutcome,
    /// What happened, in words.
    pub detail: String,
    /// The transport that sent the files (none: nothing was sent, or it failed).
    pub transport: Option<Transport>,
}

impl AuditRecord {
    /// The record of one HTTP request (or denial).
    pub fn from_http(event: &HttpEvent) -> AuditRecord {
        let kind = match event.outcome {
            HttpOutcome::Denied => RecordKind::Denied,
            _ => RecordKind::Request,
        };
        AuditRecord {
            method: Some(event.method.clone()),
            url: Some(event.url.clone()),
            status: event.status,
            bytes: Some(event.bytes),
            credentials: event.credentials.clone(),
            detail: event.detail.clone(),
            ..AuditRecord::bare(
                &event.provider,
                kind,
                event.operation,
                RecordOutcome::Http(event.outcome),
            )
        }
    }

    /// A record with only the common fields set.
    fn bare(
        provider: &str,
        kind: RecordKind,
        operation: &str,
        outcome: RecordOutcome,
    ) -> AuditRecord {
        AuditRecord {
            time: now(),
            provider: provider.to_string(),
            kind,
            operation: operation.to_string(),
            method: None,
            url: None,
            status: None,
            bytes: None,
            credentials: Vec::new(),
            outcome,
            detail: None,
            lease: None,
            destination: None,
            transport: None,
            files: None,
            names: Vec::new(),
        }
    }

    /// The record of SSH access `provider` minted for `lease` (in `operation`:
    /// `mint-ssh-access`, or `cached-ssh-access` for access read back from disk) to
    /// `destination`: allowed, or denied for the reason in `denial`.
    pub fn ssh_access(
        provider: &str,
        operation: &str,
        lease: Option<&str>,
        destination: &str,
        denial: Option<&str>,
    ) -> AuditRecord {
        let (kind, outcome) = match denial {
            None => (RecordKind::Ssh, RecordOutcome::Data(DataOutcome::Allowed)),
            Some(_) => (RecordKind::Denied, RecordOutcome::Http(HttpOutcome::Denied)),
        };
        AuditRecord {
            lease: lease.map(String::from),
            destination: Some(destination.to_string()),
            detail: denial.map(String::from),
            ..AuditRecord::bare(provider, kind, operation, outcome)
        }
    }

    /// The record of one sync.
    pub fn sync(s: &SyncAudit) -> AuditRecord {
        AuditRecord {
            lease: Some(s.lease.clone()),
            destination: Some(s.destination.clone()),
            transport: Some(
                match s.transport {
                    Some(Transport::Tar) => "tar over ssh",
                    Some(Transport::Rsync) | None => "rsync over ssh",
                }
                .into(),
            ),
            files: Some(s.files),
            bytes: Some(s.bytes),
            detail: Some(s.detail.clone()),
            ..AuditRecord::bare(
                &s.provider,
                RecordKind::Sync,
                "sync",
                RecordOutcome::Data(s.outcome),
            )
        }
    }

    /// The record of variables forwarded with `--env` to `lease` at `destination`: their
    /// `names`, never their values.
    pub fn env(
        provider: &str,
        lease: &str,
        destination: &str,
        names: Vec<String>,
        sent: bool,
    ) -> AuditRecord {
        let outcome = if sent {
            DataOutcome::Sent
        } else {
            DataOutcome::Failed
        };
        AuditRecord {
            lease: Some(lease.to_string()),
            destination: Some(destination.to_string()),
            names,
            ..AuditRecord::bare(
                provider,
                RecordKind::Env,
                "run",
                RecordOutcome::Data(outcome),
            )
        }
    }

    /// The record of a provider failure: a limit hit or another fault.
    pub fn fault(provider: &str, operation: &str, limit: bool, detail: &str) -> AuditRecord {
        let (kind, outcome) = if limit {
            (RecordKind::Limit, FaultKind::Limit)
        } else {
            (RecordKind::Fault, FaultKind::Fault)
        };
        AuditRecord {
            detail: Some(detail.to_string()),
            ..AuditRecord::bare(provider, kind, operation, RecordOutcome::Fault(outcome))
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The audit log file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The log at `path`.
    pub fn new(path: PathBuf) -> AuditLog {
        AuditLog { path }
    }

    /// Its path (the requests' file).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The alerts' file, beside it.
    pub fn alerts_path(&self) -> PathBuf {
        self.path.with_file_name("alerts.jsonl")
    }

    /// Appends one record to its file (one `write` of one line, so concurrent writers do not
    /// interleave).
    pub fn append(&self, record: &AuditRecord) -> Result<()> {
        let path = if record.kind.is_alert() {
            self.alerts_path()
        } else {
            self.path.clone()
        };
        let dir = path.parent().context("audit log has no directory")?;
        paths::private_dir(dir)?;
        if fs_err::metadata(&path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
            let _ = fs_err::rename(&path, path.with_extension("jsonl.1"));
        }
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        file.write_all(&line)?;
        Ok(())
    }

    /// All records of both files, oldest first (rotated files included); unreadable lines are
    /// skipped.
    pub fn read(&self) -> Result<Vec<AuditRecord>> {
        let mut records = read_file(&self.path)?;
        records.extend(read_file(&self.alerts_path())?);
        // RFC 3339 UTC times of one width sort as text; the sort is stable for equal times.
        records.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(records)
    }

    /// The alerts alone (denials, limit hits, faults), oldest first — including any a version
    /// before the split wrote among the requests.
    pub fn read_alerts(&self) -> Result<Vec<AuditRecord>> {
        Ok(self
            .read()?
            .into_iter()
            .filter(|r| r.kind.is_alert())
            .collect())
    }
}

/// The records of one log file and its rotated generation, oldest first.
fn read_file(path: &Path) -> Result<Vec<AuditRecord>> {
    let mut records = Vec::new();
    for path in [path.with_extension("jsonl.1"), path.to_path_buf()] {
        let text = match fs_err::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        records.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> AuditRecord {
        AuditRecord::from_http(&HttpEvent {
            provider: "p".into(),
            operation: "list",
            method: "GET".into(),
            url: url.into(),
            status: Some(200),
            bytes: 1,
            credentials: Vec::new(),
            outcome: HttpOutcome::Ok,
            detail: None,
            millis: 1,
        })
    }

    #[test]
    fn appends_and_reads_back_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("state/audit.jsonl"));
        let r = AuditRecord::fault("p", "create", true, "exceeded its CPU budget");
        let q = request("https://x.example/a");
        log.append(&r).unwrap();
        log.append(&q).unwrap();
        log.append(&r).unwrap();
        let read = log.read().unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(log.read_alerts().unwrap(), vec![r.clone(), r]);
        #[cfg(unix)]
        for path in [log.path().to_path_buf(), log.alerts_path()] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
    }

    /// However many requests are logged, they rotate only their own file.
    #[test]
    fn requests_cannot_rotate_an_alert_out() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        let alert = AuditRecord::fault("p", "get", false, "planted denial");
        log.append(&alert).unwrap();
        for round in 0..3 {
            // A full requests file (sparse), then one more request: a rotation each round.
            log.append(&request("https://x.example/fill")).unwrap();
            std::fs::OpenOptions::new()
                .append(true)
                .open(log.path())
                .unwrap()
                .set_len(ROTATE_BYTES + 1)
                .unwrap();
            log.append(&request(&format!("https://x.example/{round}")))
                .unwrap();
        }
        assert_eq!(log.read_alerts().unwrap(), vec![alert]);
    }

    /// Every kind of line, byte for byte as `audit.jsonl` and `providers audit --json` hold it.
    #[test]
    fn lines_are_pinned() {
        let line = |mut r: AuditRecord| {
            r.time = "T".into();
            serde_json::to_string(&r).unwrap()
        };
        let event = |outcome: HttpOutcome, status, detail: Option<&str>| HttpEvent {
            provider: "p".into(),
            operation: "create",
            method: "POST".into(),
            url: "https://x.example/api/sandbox".into(),
            status,
            bytes: 12,
            credentials: vec!["api-key".into()],
            outcome,
            detail: detail.map(String::from),
            millis: 5,
        };
        assert_eq!(
            line(AuditRecord::from_http(&event(
                HttpOutcome::Ok,
                Some(200),
                None
            ))),
            r#"{"time":"T","provider":"p","kind":"request","operation":"create","method":"POST","url":"https://x.example/api/sandbox","status":200,"bytes":12,"credentials":["api-key"],"outcome":"ok"}"#
        );
        assert_eq!(
            line(AuditRecord::from_http(&event(
                HttpOutcome::Redirect,
                Some(302),
                Some("redirected to https://x.example/b")
            ))),
            r#"{"time":"T","provider":"p","kind":"request","operation":"create","method":"POST","url":"https://x.example/api/sandbox","status":302,"bytes":12,"credentials":["api-key"],"outcome":"redirect","detail":"redirected to https://x.example/b"}"#
        );
        assert_eq!(
            line(AuditRecord::from_http(&event(
                HttpOutcome::Denied,
                None,
                Some("no")
            ))),
            r#"{"time":"T","provider":"p","kind":"denied","operation":"create","method":"POST","url":"https://x.example/api/sandbox","bytes":12,"credentials":["api-key"],"outcome":"denied","detail":"no"}"#
        );
        for (outcome, word) in [
            (HttpOutcome::TooLarge, "too-large"),
            (HttpOutcome::Timeout, "timeout"),
            (HttpOutcome::Connect, "connect"),
            (HttpOutcome::Invalid, "invalid"),
            (HttpOutcome::Error, "error"),
        ] {
            assert!(
                line(AuditRecord::from_http(&event(outcome, None, Some("x"))))
                    .ends_with(&format!(r#""kind":"request","operation":"create","method":"POST","url":"https://x.example/api/sandbox","bytes":12,"credentials":["api-key"],"outcome":"{word}","detail":"x"}}"#)),
                "{outcome:?}"
            );
            assert_eq!(outcome.as_str(), word);
        }
        assert_eq!(
            line(AuditRecord::fault(
                "p",
                "get",
                true,
                "exceeded its CPU budget"
            )),
            r#"{"time":"T","provider":"p","kind":"limit","operation":"get","outcome":"limit","detail":"exceeded its CPU budget"}"#
        );
        assert_eq!(
            line(AuditRecord::fault("p", "get", false, "crashed")),
            r#"{"time":"T","provider":"p","kind":"fault","operation":"get","outcome":"fault","detail":"crashed"}"#
        );
    }

    /// Minted SSH access the grant allows, syncs and `--env` records sit with the requests; an
    /// SSH destination the grant refused is an alert, which requests cannot rotate out.
    #[test]
    fn an_ssh_denial_is_an_alert_and_the_data_plane_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        let allowed = AuditRecord::ssh_access("p", "mint-ssh-access", None, "h:22", None);
        let denied =
            AuditRecord::ssh_access("p", "mint-ssh-access", None, "127.0.0.2:2222", Some("no"));
        let sync = AuditRecord::sync(&SyncAudit {
            provider: "p".into(),
            lease: "cbx_0123456789ab".into(),
            destination: "h:22".into(),
            files: 1,
            bytes: 1,
            outcome: DataOutcome::Failed,
            detail: "rsync failed".into(),
            transport: None,
        });
        let env = AuditRecord::env("p", "cbx_0123456789ab", "h:22", vec!["A".into()], true);
        for r in [&allowed, &denied, &sync, &env] {
            log.append(r).unwrap();
        }
        assert_eq!(log.read_alerts().unwrap(), vec![denied]);
        let requests = read_file(log.path()).unwrap();
        assert_eq!(requests, vec![allowed, sync, env]);
    }

    /// The data-plane lines, byte for byte.
    #[test]
    fn data_plane_lines_are_pinned() {
        let line = |mut r: AuditRecord| {
            r.time = "T".into();
            serde_json::to_string(&r).unwrap()
        };
        assert_eq!(
            line(AuditRecord::ssh_access(
                "p",
                "mint-ssh-access",
                Some("cbx_0123456789ab"),
                "ssh.example.com:22",
                None
            )),
            r#"{"time":"T","provider":"p","kind":"ssh","operation":"mint-ssh-access","outcome":"allowed","lease":"cbx_0123456789ab","destination":"ssh.example.com:22"}"#
        );
        assert_eq!(
            line(AuditRecord::ssh_access(
                "p",
                "cached-ssh-access",
                None,
                "127.0.0.2:2222",
                Some("no")
            )),
            r#"{"time":"T","provider":"p","kind":"denied","operation":"cached-ssh-access","outcome":"denied","detail":"no","destination":"127.0.0.2:2222"}"#
        );
        assert_eq!(
            line(AuditRecord::sync(&SyncAudit {
                provider: "p".into(),
                lease: "cbx_0123456789ab".into(),
                destination: "h:22".into(),
                files: 3,
                bytes: 120,
                outcome: DataOutcome::Sent,
                detail: "3 files sent".into(),
                transport: Some(Transport::Rsync),
            })),
            r#"{"time":"T","provider":"p","kind":"sync","operation":"sync","bytes":120,"outcome":"sent","detail":"3 files sent","lease":"cbx_0123456789ab","destination":"h:22","transport":"rsync over ssh","files":3}"#
        );
        let tar = line(AuditRecord::sync(&SyncAudit {
            provider: "p".into(),
            lease: "cbx_0123456789ab".into(),
            destination: "h:22".into(),
            files: 3,
            bytes: 120,
            outcome: DataOutcome::Sent,
            detail: "3 files sent".into(),
            transport: Some(Transport::Tar),
        }));
        assert!(tar.contains(r#""transport":"tar over ssh""#), "{tar}");
        assert_eq!(
            line(AuditRecord::env(
                "p",
                "cbx_0123456789ab",
                "h:22",
                vec!["A".into(), "B".into()],
                true
            )),
            r#"{"time":"T","provider":"p","kind":"env","operation":"run","outcome":"sent","lease":"cbx_0123456789ab","destination":"h:22","names":["A","B"]}"#
        );
        for (outcome, word) in [
            (DataOutcome::Allowed, "allowed"),
            (DataOutcome::Sent, "sent"),
            (DataOutcome::Unchanged, "unchanged"),
            (DataOutcome::Failed, "failed"),
        ] {
            let r = RecordOutcome::Data(outcome);
            assert_eq!(r.as_str(), word);
            let back: RecordOutcome = serde_json::from_str(&format!("\"{word}\"")).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn lines_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        std::fs::write(
            log.path(),
            concat!(
                r#"{"time":"T","provider":"p","kind":"denied","operation":"get","method":"GET","url":"https://x.example/","bytes":0,"outcome":"denied","detail":"no"}"#,
                "\n",
                r#"{"time":"T","provider":"p","kind":"limit","operation":"get","outcome":"limit","detail":"cpu"}"#,
                "\n"
            ),
        )
        .unwrap();
        let records = log.read().unwrap();
        assert_eq!(records[0].kind, RecordKind::Denied);
        assert_eq!(records[0].outcome, RecordOutcome::Http(HttpOutcome::Denied));
        assert_eq!(records[1].outcome, RecordOutcome::Fault(FaultKind::Limit));
    }
}
