//! `cbx cleanup`: delete the cbx sandboxes of this provider that nobody here holds — expired
//! ones, this machine's orphans, and with `--any-owner` every cbx sandbox — and this owner's
//! unfinished checkpoints, after showing them and, on a terminal, asking. Never a sandbox
//! without cbx's labels (see `lease::cleanup`), never a saved checkpoint
//! (`lease::checkpoint_cleanup`).

use std::io::{IsTerminal, Write};

use anyhow::Result;

use crate::cli::args::CleanupArgs;
use crate::cli::output::{self, age, table};
use crate::config::{TTL_RANGE, parse_duration_in};
use crate::context::Context;
use crate::error::{ErrorKind, Failure, fail};
use crate::lease::checkpoint_cleanup::{self, CheckpointCleanup};
use crate::lease::cleanup::{self, CleanupPlan, Selection};
use crate::lease::owner::owner_id;
use crate::lease::resolve;
use crate::provider::Capability;
use crate::terminal::inert;

/// Runs `cbx cleanup`.
pub async fn run(ctx: &Context, args: &CleanupArgs) -> Result<u8> {
    let older_than = args
        .older_than
        .as_deref()
        .map(|t| parse_duration_in(t, "--older-than", TTL_RANGE))
        .transpose()?;
    let mut session = ctx.session(&ctx.provider_name()).await?;
    let me = owner_id(session.dirs())?;
    let leases = resolve::list(&mut session).await?;
    let selection = Selection {
        older_than,
        any_owner: args.any_owner,
    };
    let mut plan = cleanup::plan(&session, leases, &me, selection)?;
    let mut ckpts = if session
        .require(Capability::Checkpoint, "cbx cleanup")
        .is_ok()
    {
        checkpoint_cleanup::plan(&session)?
    } else {
        CheckpointCleanup::default()
    };
    if !args.json {
        print_plan(&plan, args.dry_run, session.name());
        print_checkpoints(&ckpts, args.dry_run);
    }
    let total = plan.delete.len() + ckpts.delete.len();
    if args.dry_run || total == 0 {
        if args.json {
            output::json(&report(&plan, &ckpts, args.dry_run))?;
        }
        return Ok(0);
    }
    if !args.yes {
        confirm(plan.delete.len(), ckpts.delete.len())?;
    }
    let mut failed = cleanup::execute(&mut session, &mut plan).await;
    failed += checkpoint_cleanup::execute(&mut session, &mut ckpts).await;
    if args.json {
        output::json(&report(&plan, &ckpts, false))?;
    } else {
        print_outcomes(&plan, &ckpts);
    }
    if failed > 0 {
        return Err(fail(
            ErrorKind::Other,
            format!(
                "{failed} of {} could not be deleted (above); run `cbx cleanup` again",
                items(plan.delete.len(), ckpts.delete.len())
            ),
        ));
    }
    Ok(0)
}

/// A line per sandbox and checkpoint: its outcome.
fn print_outcomes(plan: &CleanupPlan, ckpts: &CheckpointCleanup) {
    for r in &plan.delete {
        let line = match &r.error {
            Some(e) => format!("{} {} ({}): {e}", r.outcome, r.lease_id, r.sandbox_id),
            None => format!("{} {} ({})", r.outcome, r.lease_id, r.sandbox_id),
        };
        println!("{}", inert(&line));
    }
    for r in &ckpts.delete {
        let line = match &r.error {
            Some(e) => format!("{} checkpoint {}: {e}", r.outcome, r.name),
            None => format!("{} checkpoint {}", r.outcome, r.name),
        };
        println!("{}", inert(&line));
    }
}

/// The orphaned checkpoints: a table of what goes, and a line per creation that stays.
fn print_checkpoints(ckpts: &CheckpointCleanup, dry_run: bool) {
    if !ckpts.delete.is_empty() {
        let mut rows = vec![["CHECKPOINT".to_string(), "NAME".into(), "REASON".into()]];
        for r in &ckpts.delete {
            rows.push([r.name.clone(), r.service_name.clone(), r.reason.into()]);
        }
        eprintln!(
            "{} {}:",
            if dry_run { "would delete" } else { "deleting" },
            items(0, ckpts.delete.len())
        );
        print!("{}", table(&rows));
    }
    for k in &ckpts.kept {
        eprintln!(
            "{}",
            inert(&format!("kept checkpoint {}: {}", k.name, k.why))
        );
    }
}

/// `2 sandboxes`, `1 unfinished checkpoint`, `1 sandbox and 2 unfinished checkpoints`.
fn items(sandboxes: usize, checkpoints: usize) -> String {
    let mut parts = Vec::new();
    if sandboxes > 0 || checkpoints == 0 {
        let s = if sandboxes == 1 { "" } else { "es" };
        parts.push(format!("{sandboxes} sandbox{s}"));
    }
    if checkpoints > 0 {
        let s = if checkpoints == 1 { "" } else { "s" };
        parts.push(format!("{checkpoints} unfinished checkpoint{s}"));
    }
    parts.join(" and ")
}

/// The `--json` object: `dryRun`, `delete` (each with its outcome), `kept`, and
/// `checkpoints` (`delete` and `kept` of the orphaned checkpoints).
fn report(plan: &CleanupPlan, ckpts: &CheckpointCleanup, dry_run: bool) -> serde_json::Value {
    serde_json::json!({
        "dryRun": dry_run,
        "delete": plan.delete,
        "kept": plan.kept,
        "checkpoints": ckpts,
    })
}

/// The table of what goes, and a line per sandbox that stays.
fn print_plan(plan: &CleanupPlan, dry_run: bool, provider: &str) {
    if plan.delete.is_empty() {
        eprintln!("nothing to clean up among {provider}'s cbx sandboxes");
    } else {
        let mut rows = vec![[
            "LEASE".to_string(),
            "SLUG".into(),
            "STATE".into(),
            "SANDBOX".into(),
            "AGE".into(),
            "OWNER".into(),
            "REASON".into(),
        ]];
        for r in &plan.delete {
            rows.push([
                r.lease_id.clone(),
                r.slug.clone(),
                r.provider_state.clone(),
                r.sandbox_id.clone(),
                age(r.age_secs),
                r.owner.to_string(),
                serde_json::to_value(r.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ]);
        }
        eprintln!(
            "{} {} cbx sandbox{}:",
            if dry_run { "would delete" } else { "deleting" },
            plan.delete.len(),
            if plan.delete.len() == 1 { "" } else { "es" }
        );
        print!("{}", table(&rows));
    }
    for k in &plan.kept {
        eprintln!(
            "{}",
            inert(&format!(
                "kept {} ({}): {}",
                k.lease_id, k.sandbox_id, k.why
            ))
        );
    }
}

/// Asks on the terminal before deleting `sandboxes` sandboxes and `checkpoints` unfinished
/// checkpoints; without a terminal, refuses.
fn confirm(sandboxes: usize, checkpoints: usize) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "cbx cleanup would delete {} (above) and asks first, but stdin is not a \
                 terminal; nothing was deleted",
                items(sandboxes, checkpoints)
            ),
        )
        .hint("rerun with --yes to delete them, or --dry-run to only list them")
        .into());
    }
    match (sandboxes, checkpoints) {
        (1, 0) => eprint!("Delete this sandbox? [y/N] "),
        (n, 0) => eprint!("Delete these {n} sandboxes? [y/N] "),
        _ => eprint!("Delete these {}? [y/N] ", items(sandboxes, checkpoints)),
    }
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return Err(fail(ErrorKind::Usage, "not confirmed; nothing was deleted"));
    }
    Ok(())
}
