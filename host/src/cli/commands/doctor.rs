//! `cbx doctor`: check configuration, the provider, its grant and credentials, and the service,
//! without changing anything.

use anyhow::Result;
use serde::Serialize;

use crate::cli::Context;
use crate::cli::args::DoctorArgs;
use crate::cli::output;
use crate::error::{ErrorKind, failure};
use crate::progress::human_duration;
use crate::provider::api::CheckStatus;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    name: String,
    status: &'static str,
    detail: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    provider: String,
    ok: bool,
    checks: Vec<Check>,
}

/// Runs `cbx doctor`.
pub async fn run(ctx: &Context, args: &DoctorArgs) -> Result<u8> {
    let name = ctx.provider_name();
    let mut checks = Vec::new();
    let mut exit = 0u8;
    let add = |checks: &mut Vec<Check>, name: &str, status: &'static str, detail: String| {
        checks.push(Check {
            name: name.into(),
            status,
            detail: ctx.redactor.redact(&detail),
        });
    };
    let fail_with = |checks: &mut Vec<Check>, check: &str, err: &anyhow::Error| {
        let kind = failure(err).map_or(ErrorKind::Other, |f| f.kind);
        let hint = failure(err).and_then(|f| f.hint.clone());
        let mut detail = format!("{err:#}");
        if let Some(h) = hint {
            detail.push_str(&format!(" (hint: {h})"));
        }
        add(checks, check, "fail", detail);
        kind.exit_code()
    };

    let user_config = ctx.dirs.config_file();
    add(
        &mut checks,
        "config",
        "ok",
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
            Some(v) => add(&mut checks, tool, "ok", v),
            None => add(
                &mut checks,
                tool,
                "warn",
                format!("`{tool}` not found; cbx uses it for `run` and `ssh` ({purpose})"),
            ),
        }
    }

    let loaded = match ctx.load(&name).await {
        Ok(l) => l,
        Err(e) => {
            exit = fail_with(&mut checks, "provider", &e);
            return finish(ctx, args, name, checks, exit);
        }
    };
    add(
        &mut checks,
        "provider",
        "ok",
        format!(
            "{} {} ({}, sha256 {}…; {} in {})",
            loaded.info.name,
            loaded.info.version,
            loaded.package.origin,
            &loaded.package.digest[..12],
            if loaded.cached {
                "loaded from cache"
            } else {
                "compiled"
            },
            human_duration(loaded.load_time)
        ),
    );
    for e in &loaded.grant.endpoints {
        add(
            &mut checks,
            "grant",
            "ok",
            format!("may reach {} `{}` (from {})", e.url, e.name, e.source),
        );
    }
    match loaded.grant.require_auth() {
        Ok(()) => {
            let creds: Vec<String> = loaded
                .grant
                .credentials
                .iter()
                .map(|c| {
                    format!(
                        "{} from {} → {} header to `{}`",
                        c.name, c.env, c.header, c.endpoint
                    )
                })
                .collect();
            add(
                &mut checks,
                "credentials",
                "ok",
                if creds.is_empty() {
                    "none needed".into()
                } else {
                    creds.join("; ")
                },
            );
        }
        Err(e) => {
            exit = fail_with(&mut checks, "credentials", &e);
            return finish(ctx, args, name, checks, exit);
        }
    }
    let mut session = match ctx.configure(loaded).await {
        Ok(s) => s,
        Err(e) => {
            exit = fail_with(&mut checks, "options", &e);
            return finish(ctx, args, name, checks, exit);
        }
    };
    let summary: Vec<String> = session
        .profile
        .summary
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    add(&mut checks, "options", "ok", summary.join(" "));
    match session.provider.doctor().await {
        Ok(provider_checks) => {
            for c in provider_checks {
                let status = match c.status {
                    CheckStatus::Ok => "ok",
                    CheckStatus::Warn => "warn",
                    CheckStatus::Fail => {
                        exit = exit.max(1);
                        "fail"
                    }
                };
                add(&mut checks, &c.name, status, c.detail);
            }
        }
        Err(e) => {
            let err = session.failure(e);
            exit = fail_with(&mut checks, "service", &err);
        }
    }
    finish(ctx, args, name, checks, exit)
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

fn finish(
    ctx: &Context,
    args: &DoctorArgs,
    provider: String,
    checks: Vec<Check>,
    exit: u8,
) -> Result<u8> {
    let report = Report {
        provider,
        ok: exit == 0,
        checks,
    };
    if args.json {
        output::json(&report)?;
    } else {
        let rows: Vec<[String; 3]> = report
            .checks
            .iter()
            .map(|c| [c.status.to_string(), c.name.clone(), c.detail.clone()])
            .collect();
        print!("{}", ctx.redactor.redact(&output::table(&rows)));
        if exit != 0 {
            eprintln!("doctor found problems with provider {}", report.provider);
        }
    }
    Ok(exit)
}
