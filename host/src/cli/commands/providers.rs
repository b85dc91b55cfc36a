//! `cbx providers list`, `inspect` and `audit`: what each provider is, may do and did (the
//! reports are `ops::review` and the audit log).

use std::io::IsTerminal;

use anyhow::Result;

use crate::audit::{AuditLog, AuditRecord, RecordKind};
use crate::cli::args::AuditArgs;
use crate::cli::output;
use crate::context::Context;
use crate::grant::ssh::{DestinationBasis, SshGrant};
use crate::ops::review::{self, Inspection};
use crate::provenance::Definition;
use crate::terminal::inert;

/// Runs `cbx providers list`.
pub fn list(ctx: &Context, json: bool) -> Result<u8> {
    let entries = review::list(ctx)?;
    if json {
        output::json(&entries)?;
    } else {
        let mut rows = vec![[
            "NAME".to_string(),
            "VERSION".into(),
            "SOURCE".into(),
            "DIGEST".into(),
            "STATUS".into(),
        ]];
        for e in &entries {
            rows.push([
                e.name.clone(),
                e.version.clone(),
                e.origin.to_string(),
                format!("sha256:{}…", &e.digest[..12]),
                e.status.clone(),
            ]);
        }
        print!("{}", output::table(&rows));
    }
    Ok(0)
}

/// Runs `cbx providers audit`.
pub fn audit(ctx: &Context, args: &AuditArgs) -> Result<u8> {
    let log = AuditLog::new(ctx.dirs.audit_log());
    let all = if args.alerts {
        log.read_alerts()?
    } else {
        log.read()?
    };
    let records: Vec<AuditRecord> = all
        .into_iter()
        .filter(|r| args.of.as_ref().is_none_or(|p| &r.provider == p))
        .collect();
    let skip = records.len().saturating_sub(args.last);
    let records = &records[skip..];
    if args.json {
        for r in records {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(0);
    }
    if records.is_empty() {
        eprintln!(
            "the audit log has no {} ({} and {})",
            if args.alerts { "alerts" } else { "records" },
            log.path().display(),
            log.alerts_path().display()
        );
        return Ok(0);
    }
    let mut rows = vec![[
        "TIME".to_string(),
        "PROVIDER".into(),
        "OPERATION".into(),
        "OUTCOME".into(),
        "REQUEST".into(),
        "STATUS".into(),
        "BYTES".into(),
        "CREDENTIALS".into(),
    ]];
    for r in records {
        rows.push([
            r.time.clone(),
            r.provider.clone(),
            r.operation.clone(),
            r.outcome.as_str().to_string(),
            what(r),
            r.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            if r.credentials.is_empty() {
                "-".into()
            } else {
                r.credentials.join(",")
            },
        ]);
    }
    print!("{}", ctx.redactor.redact(&output::table(&rows)));
    Ok(0)
}

/// What an audit record is about, in one cell: the request, the SSH destination, what a sync
/// or `--env` sent, else the detail.
fn what(r: &AuditRecord) -> String {
    if let (Some(m), Some(u)) = (&r.method, &r.url) {
        return format!("{m} {u}");
    }
    let Some(dest) = &r.destination else {
        return r.detail.clone().unwrap_or_default();
    };
    match r.kind {
        RecordKind::Sync => format!(
            "{} {} files to {dest}",
            r.transport.as_deref().unwrap_or("sync"),
            r.files.unwrap_or(0)
        ),
        RecordKind::Env => format!("--env {} to {dest}", r.names.join(",")),
        RecordKind::Denied => format!("SSH {dest}: {}", r.detail.as_deref().unwrap_or("denied")),
        _ => format!("SSH {dest}"),
    }
}

/// Runs `cbx providers inspect NAME`.
pub async fn inspect(ctx: &Context, name: &str, json: bool) -> Result<u8> {
    let report = review::inspect(ctx, name).await?;
    if json {
        output::json(&report)?;
    } else {
        let colour = std::io::stdout().is_terminal() && ctx.var("NO_COLOR").is_none();
        print!("{}", ctx.redactor.redact(&human(&report, colour)));
    }
    Ok(0)
}

/// The whole inspection, for people: every line inert; warnings in red when `colour`.
fn human(r: &Inspection, colour: bool) -> String {
    let mut lines = Vec::new();
    lines.push(format!("{} {} — {}", r.name, r.version, r.description));
    lines.push(format!("  source:    {}", r.origin));
    lines.push(format!(
        "  digest:    sha256:{} ({} bytes)",
        r.digest, r.size
    ));
    lines.push(format!("  contract:  {}", r.contract));
    lines.push(format!("  approval:  {}", r.approval));
    lines.push(String::new());
    interface_lines(r, &mut lines);
    lines.push(String::new());
    manifest_lines(r, &mut lines);
    let warnings: Vec<String> = r
        .shared_credentials
        .iter()
        .map(|s| format!("  {}", s.warning()))
        .collect();
    lines.push(String::new());
    grant_lines(r, &mut lines);
    lines.push(String::new());
    option_lines(r, &mut lines);
    if !r.features.is_empty() {
        lines.push(format!("Features: {}", r.features.join(", ")));
    }
    lines.push(format!(
        "Capabilities: {}",
        if r.capabilities.is_empty() {
            "none (core operations only)".to_string()
        } else {
            r.capabilities
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    // Each line is built from one provider's words at most; none may span or steer lines.
    let mut s = String::new();
    for line in &lines {
        let line = inert(line);
        if colour && warnings.iter().any(|w| inert(w) == line) {
            s.push_str(&format!("\x1b[1;31m{line}\x1b[0m\n"));
        } else {
            s.push_str(&line);
            s.push('\n');
        }
    }
    s
}

fn interface_lines(r: &Inspection, out: &mut Vec<String>) {
    out.push("Imports (read from the component; everything it can call):".into());
    for i in &r.imports {
        out.push(format!(
            "  {:<32} {}",
            i.name,
            if i.functions.is_empty() {
                "(types only)".into()
            } else {
                i.functions.join(", ")
            }
        ));
    }
    out.push("Exports:".into());
    for e in &r.exports {
        out.push(format!("  {:<32} {}", e.name, e.functions.join(", ")));
    }
    if r.wasi {
        out.push(
            "  WASI is linked deny-by-default: no environment, arguments, files or sockets;".into(),
        );
        out.push(
            "  stdout and stderr go to the provider's log; clocks and randomness work.".into(),
        );
    }
}

fn manifest_lines(r: &Inspection, out: &mut Vec<String>) {
    out.push(format!("Manifest ({}) declares:", r.manifest.origin));
    for e in &r.manifest.endpoints {
        out.push(format!(
            "  endpoint {:<12} {}{}",
            e.name,
            e.url,
            e.env
                .as_ref()
                .map(|v| format!(" (override: {v})"))
                .unwrap_or_default()
        ));
    }
    for c in &r.manifest.credentials {
        out.push(format!(
            "  credential {:<12} {} → header `{}: {}` to endpoint `{}`{}{}",
            c.name,
            c.env,
            c.header,
            c.format,
            c.endpoint,
            if c.secret { "" } else { " (not secret)" },
            if c.requires.is_empty() {
                String::new()
            } else {
                format!(", requires {}", c.requires.join(", "))
            }
        ));
    }
    if !r.manifest.auth_one_of.is_empty() {
        out.push(format!(
            "  authentication: one of {}",
            r.manifest.auth_one_of.join(", ")
        ));
    }
    match &r.manifest.ssh {
        None => out.push("  ssh: no destinations".into()),
        Some(ssh) => {
            if let Some(host) = &ssh.host_option {
                out.push(format!(
                    "  ssh destination from your options `{host}`{}",
                    ssh.port_option
                        .as_ref()
                        .map(|p| format!(" and `{p}`"))
                        .unwrap_or_default()
                ));
            }
            for d in &ssh.destinations {
                out.push(format!(
                    "  ssh destination {d}{}",
                    ssh.env
                        .as_ref()
                        .map(|v| format!(" (override: {v})"))
                        .unwrap_or_default()
                ));
            }
            if let Some(key) = &ssh.identity_option {
                out.push(format!("  ssh key from your option `{key}`"));
            }
        }
    }
    for s in &r.shared_credentials {
        out.push(format!("  {}", s.warning()));
    }
}

fn grant_lines(r: &Inspection, out: &mut Vec<String>) {
    out.push("Effective grant (this invocation):".into());
    if r.grant.endpoints.is_empty() {
        out.push("  no network access".into());
    }
    for e in &r.grant.endpoints {
        let src = match &e.source {
            Definition::Manifest(_) => "manifest default".to_string(),
            other => other.to_string(),
        };
        out.push(format!("  may reach {} (`{}`, from {src})", e.url, e.name));
    }
    for c in &r.grant.credentials {
        out.push(format!(
            "  credential {:<12} {:<30} {}",
            c.name,
            format!("{} {}", c.env, if c.set { "(set)" } else { "(not set)" }),
            if c.attached {
                format!(
                    "attached as `{}` to {}",
                    c.header,
                    c.endpoint_url.as_deref().unwrap_or("-")
                )
            } else {
                "not attached".into()
            }
        ));
    }
    if let Some(p) = &r.grant.auth_problem {
        out.push(format!("  ! {p}"));
    }
    ssh_grant_lines(&r.grant.ssh, out);
}

/// What the effective SSH grant allows: destinations, key, agent.
fn ssh_grant_lines(ssh: &SshGrant, out: &mut Vec<String>) {
    if ssh.destinations.is_empty() {
        out.push(match &ssh.basis {
            DestinationBasis::Options { host, .. } => {
                format!("  no SSH destination: your option `{host}` is not set")
            }
            _ => "  no SSH destination: it cannot send your files anywhere".into(),
        });
    }
    for d in &ssh.destinations {
        let src = match &d.source {
            Definition::Manifest(_) => "manifest default".to_string(),
            other => other.to_string(),
        };
        out.push(format!(
            "  may send your files, commands and --env values over SSH to {} (from {src})",
            d.destination
        ));
    }
    out.push(match (&ssh.identity, &ssh.identity_option) {
        (Some(k), _) => format!("  SSH key: {} (from {})", k.path, k.source),
        (None, Some(o)) => format!("  SSH key: none (option `{o}` is not set)"),
        (None, None) => "  SSH key: none; the provider may not choose one".into(),
    });
    out.push(if ssh.agent {
        "  ssh agent: used (you opted in)".into()
    } else {
        "  ssh agent: not used".into()
    });
}

fn option_lines(r: &Inspection, out: &mut Vec<String>) {
    out.push("Options:".into());
    for o in &r.options {
        out.push(format!(
            "  {:<22} {:<8} = {:<24} {}",
            o.name,
            o.kind,
            o.value
                .as_deref()
                .map(|v| if v.is_empty() {
                    "\"\"".to_string()
                } else {
                    v.to_string()
                })
                .unwrap_or_else(|| "-".into()),
            o.origin
                .as_ref()
                .map(|o| format!("({})", o.place()))
                .unwrap_or_default()
        ));
        out.push(format!("  {:<22} {}", "", o.description));
    }
}
