//! The checks of `cbx doctor`: configuration, local tools, the provider, its grant and
//! credentials, its options, and the provider's own read-only checks of the service —
//! without changing anything; with `--lease`, a live lease too (`ops::doctor_lease`).

use crate::context::Context;
use crate::lease::session::Session;
pub use crate::ops::doctor_report::{DoctorCheck, DoctorReport};
use crate::progress::human_duration;
use crate::provider::Loaded;
use crate::provider::api::CheckStatus;

/// Runs every check against the provider this invocation uses — the provider of `lease`, if
/// given, whose live sandbox is checked too.
pub async fn run(ctx: &Context, lease: Option<&str>) -> DoctorReport {
    let provider = match lease {
        Some(ident) => ctx
            .provider_for(ident)
            .unwrap_or_else(|_| ctx.provider_name()),
        None => ctx.provider_name(),
    };
    let mut report = DoctorReport {
        provider,
        ok: true,
        checks: Vec::new(),
        sync_transport: None,
        exit: 0,
    };
    local_checks(ctx, &mut report).await;
    if let Some(mut session) = provider_checks(ctx, &mut report).await
        && let Some(ident) = lease
    {
        crate::ops::doctor_lease::check(ctx, &mut session, ident, &mut report).await;
    }
    report.ok = report.exit == 0;
    report
}

/// The configuration files and the tools cbx runs.
async fn local_checks(ctx: &Context, report: &mut DoctorReport) {
    let user_config = ctx.dirs.config_file();
    report.add(
        ctx,
        "config",
        CheckStatus::Ok,
        format!(
            "user config {}{}; repository config {}",
            user_config.display(),
            if user_config.exists() { "" } else { " (none)" },
            ctx.config
                .repo_path()
                .map_or("none".to_string(), |p| p.display().to_string())
        ),
    );
    for (tool, args, purpose) in [
        ("git", &["--version"][..], "decides which files to sync"),
        ("ssh", &["-V"][..], "reaches sandboxes"),
        ("rsync", &["--version"][..], "syncs the working tree"),
    ] {
        match tool_version(tool, args).await {
            Some(v) => report.add(ctx, tool, CheckStatus::Ok, v),
            None => report.add(
                ctx,
                tool,
                CheckStatus::Warn,
                format!("`{tool}` not found; cbx uses it for `run` and `ssh` ({purpose})"),
            ),
        }
    }
}

/// Loading, the grant, credentials, options, then the provider's own checks. A failure ends
/// the checks that depend on it; the session is returned when the service could be asked.
async fn provider_checks(ctx: &Context, report: &mut DoctorReport) -> Option<Session> {
    let loaded = match ctx.load(&report.provider).await {
        Ok(l) => l,
        Err(e) => {
            report.fail(ctx, "provider", &e);
            return None;
        }
    };
    grant_checks(ctx, report, &loaded);
    if let Err(e) = loaded.grant().require_auth() {
        report.fail(ctx, "credentials", &e);
        return None;
    }
    let mut session = match ctx.configure(loaded).await {
        Ok(c) => ctx.session_of(c),
        Err(e) => {
            report.fail(ctx, "options", &e);
            return None;
        }
    };
    let summary: Vec<String> = session
        .profile()
        .summary
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    report.add(ctx, "options", CheckStatus::Ok, summary.join(" "));
    match session.doctor().await {
        Ok(checks) => {
            for c in checks {
                if c.status == CheckStatus::Fail {
                    // A credential that lacks the scopes cbx needs is an authentication
                    // problem (exit 3), as `warmup` reports it.
                    let code = if c.name == "scopes" { 3 } else { 1 };
                    report.exit = report.exit.max(code);
                }
                report.add(ctx, &c.name, c.status, c.detail);
            }
            Some(session)
        }
        Err(e) => {
            let err = session.failure(e);
            report.fail(ctx, "service", &err);
            None
        }
    }
}

/// What was loaded, what it may reach and which credentials cbx will attach.
fn grant_checks(ctx: &Context, report: &mut DoctorReport, loaded: &Loaded) {
    let package = loaded.package();
    report.add(
        ctx,
        "provider",
        CheckStatus::Ok,
        format!(
            "{} {} ({}, sha256 {}…; {} in {})",
            loaded.info().name,
            loaded.info().version,
            package.origin,
            &package.digest[..12],
            if loaded.from_cache() {
                "loaded from cache"
            } else {
                "compiled"
            },
            human_duration(loaded.load_time())
        ),
    );
    for e in &loaded.grant().endpoints {
        report.add(
            ctx,
            "grant",
            CheckStatus::Ok,
            format!("may reach {} `{}` (from {})", e.url, e.name, e.source),
        );
    }
    if loaded.grant().auth_problem.is_some() {
        return;
    }
    let creds: Vec<String> = loaded
        .grant()
        .credentials
        .iter()
        .map(|c| {
            format!(
                "{} from {} → {} header to `{}`",
                c.name, c.env, c.header, c.endpoint
            )
        })
        .collect();
    report.add(
        ctx,
        "credentials",
        CheckStatus::Ok,
        if creds.is_empty() {
            "none needed".into()
        } else {
            creds.join("; ")
        },
    );
}

/// The first line a tool prints about its version, if it runs.
async fn tool_version(tool: &str, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}
