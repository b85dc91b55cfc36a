//! `cbx shard`: one command on N new sandboxes at once, each line of output led by its shard,
//! then one verdict — the per-shard table, the merged `--junit` summary, the kept leases, the
//! `--json` report — and one exit code (the work is `ops::shard`).

use anyhow::Result;
use serde::Serialize;

use crate::cli::args::ShardArgs;
use crate::cli::output;
use crate::config::LeaseFlags;
use crate::context::Context;
use crate::error::{ErrorKind, Failure, exit_code};
use crate::lease::acquire::{AcquireRequest, Purpose, Source};
use crate::ops::download::Downloads;
use crate::ops::run::{LeaseChoice, RunRequest};
use crate::ops::shard::verdict::ShardReport;
use crate::ops::shard::{self, ShardRequest, junit_merge};
use crate::ops::test_report::{self, TestReport};
use crate::progress;
use crate::remote::Program;

/// `--json`'s report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    /// The exit code cbx exits with.
    exit_code: u8,
    /// The error that ended the whole run (a signal, a bad setting), secrets removed.
    error: Option<String>,
    /// Every shard, in order.
    shards: &'a [ShardReport],
    /// The merged `--junit` results.
    tests: Option<TestReport>,
}

/// Runs `cbx shard`.
pub async fn run(ctx: &Context, args: &ShardArgs) -> Result<u8> {
    let request = request(ctx, args)?;
    let mut reports = Vec::new();
    let result = shard::shard(ctx, &request, &mut reports).await;
    let tests = (!args.junit.is_empty()).then(|| merged_tests(&reports));
    if let Some(t) = &tests {
        test_report::print(t);
    }
    if let Some(path) = &args.junit_out {
        write_merged(ctx, path, &reports);
    }
    if args.keep {
        print_kept(&reports);
    }
    if args.json {
        let (code, error) = match &result {
            Ok(code) => (*code, None),
            Err(e) => (exit_code(e), Some(ctx.redactor.redact(&format!("{e:#}")))),
        };
        output::json(&Report {
            exit_code: code,
            error,
            shards: &reports,
            tests,
        })?;
    }
    result
}

/// Every shard's `--junit` results in one, each failed case's suite and each warning led by
/// its shard.
fn merged_tests(reports: &[ShardReport]) -> TestReport {
    let total = reports.len();
    let mut merged = TestReport::default();
    for r in reports {
        let Some(t) = &r.tests else { continue };
        let tag = format!("[{}/{total}]", r.index);
        merged.files += t.files;
        let mut summary = t.summary.clone();
        for p in &mut summary.problems {
            p.suite = format!("{tag} {}", p.suite);
        }
        merged.summary.absorb(summary);
        merged
            .warnings
            .extend(t.warnings.iter().map(|w| format!("{tag} {w}")));
    }
    merged
}

/// `--junit-out PATH`: every shard's reports merged into one file (a failure to write it is
/// a warning: the shards' verdict stands).
fn write_merged(ctx: &Context, path: &std::path::Path, reports: &[ShardReport]) {
    let docs: Vec<(u32, &[Vec<u8>])> = reports
        .iter()
        .filter_map(|r| r.tests.as_ref().map(|t| (r.index, &t.documents[..])))
        .collect();
    let (merged, warnings) = junit_merge::merge(&docs, reports.len() as u32);
    for w in warnings {
        progress::report(&format!("warning: {w}"));
    }
    let path = ctx.cwd.join(path);
    match crate::paths::write_private_atomic(&path, &merged) {
        Ok(()) => progress::note(
            ctx.flags.quiet,
            &format!("wrote the merged JUnit report to {}", path.display()),
        ),
        Err(e) => progress::report(&format!(
            "warning: could not write the merged JUnit report to {}: {e:#}",
            path.display()
        )),
    }
}

/// With `--keep`: the kept leases' slugs, and how to use and delete them.
fn print_kept(reports: &[ShardReport]) {
    let slugs: Vec<&str> = reports
        .iter()
        .filter(|r| r.kept)
        .filter_map(|r| r.slug.as_deref())
        .collect();
    if slugs.is_empty() {
        return;
    }
    progress::report(&format!(
        "kept {} {}: {} (use: `cbx run --id SLUG`; delete: `cbx stop SLUG`)",
        slugs.len(),
        if slugs.len() == 1 { "lease" } else { "leases" },
        slugs.join(" ")
    ));
}

/// The library's request for `args`.
fn request(ctx: &Context, args: &ShardArgs) -> Result<ShardRequest> {
    ctx.config.check_shard_count(args.count)?;
    if let Some(name) = args
        .env
        .iter()
        .find(|n| *n == "CBX_SHARD_INDEX" || *n == "CBX_SHARD_TOTAL")
    {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!("--env {name}: cbx sets it itself, for each shard"),
        )
        .into());
    }
    let program = if args.shell {
        Program::Shell(args.command.join(" "))
    } else {
        Program::Argv(args.command.clone())
    };
    let times = ctx.config.lease_times(
        LeaseFlags {
            ttl: args.ttl.as_deref(),
            idle: args.idle_timeout.as_deref(),
            ready: args.ready_timeout.as_deref(),
        },
        &ctx.env,
    )?;
    let transport = ctx
        .config
        .sync_transport(args.sync_transport.as_deref(), &ctx.env)?
        .val;
    let lease = AcquireRequest {
        slug: None,
        ttl: times.ttl.val,
        idle: times.idle.val,
        repo_root: ctx.repo_root().map(std::path::PathBuf::from),
        ready_timeout: times.ready.val,
        purpose: if args.keep {
            Purpose::KeptShard
        } else {
            Purpose::Shard
        },
        source: Source::Fresh,
    };
    let junit = args
        .junit
        .iter()
        .map(|g| crate::transfer::pattern::check(g, false, "--junit"))
        .collect::<Result<_>>()?;
    Ok(ShardRequest {
        count: args.count,
        from: args.from.clone(),
        fail_fast: args.fail_fast,
        junit_documents: args.junit_out.is_some(),
        run: RunRequest {
            lease: LeaseChoice::New(lease),
            program,
            env: args.env.clone(),
            sync: !args.no_sync,
            resync: false,
            sync_large: args.sync_large,
            transport,
            ready_timeout: times.ready.val,
            downloads: Downloads {
                junit,
                ..Downloads::default()
            },
            keep_on_failure: false,
            stdout_to_stderr: args.json,
        },
    })
}
