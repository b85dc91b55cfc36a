//! `cbx cleanup`: delete the cbx sandboxes of this provider that nobody here holds — expired
//! ones, this machine's orphans, and with `--any-owner` every cbx sandbox — after showing them
//! and, on a terminal, asking. Never a sandbox without cbx's labels (see `lease::cleanup`).

use std::io::{IsTerminal, Write};

use anyhow::Result;

use crate::cli::args::CleanupArgs;
use crate::cli::output::{self, age, table};
use crate::config::{TTL_RANGE, parse_duration_in};
use crate::context::Context;
use crate::error::{ErrorKind, Failure, fail};
use crate::lease::cleanup::{self, CleanupPlan, Selection};
use crate::lease::owner::owner_id;
use crate::lease::resolve;
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
    if !args.json {
        print_plan(&plan, args.dry_run, session.name());
    }
    if args.dry_run || plan.delete.is_empty() {
        if args.json {
            output::json(&report(&plan, args.dry_run))?;
        }
        return Ok(0);
    }
    if !args.yes {
        confirm(plan.delete.len())?;
    }
    let failed = cleanup::execute(&mut session, &mut plan).await;
    if args.json {
        output::json(&report(&plan, false))?;
    } else {
        for r in &plan.delete {
            let line = match &r.error {
                Some(e) => format!("{} {} ({}): {e}", r.outcome, r.lease_id, r.sandbox_id),
                None => format!("{} {} ({})", r.outcome, r.lease_id, r.sandbox_id),
            };
            println!("{}", inert(&line));
        }
    }
    if failed > 0 {
        return Err(fail(
            ErrorKind::Other,
            format!(
                "{failed} of {} sandboxes could not be deleted (above); run `cbx cleanup` again",
                plan.delete.len()
            ),
        ));
    }
    Ok(0)
}

/// The `--json` object: `dryRun`, `delete` (each with its outcome) and `kept`.
fn report(plan: &CleanupPlan, dry_run: bool) -> serde_json::Value {
    serde_json::json!({
        "dryRun": dry_run,
        "delete": plan.delete,
        "kept": plan.kept,
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

/// Asks on the terminal before deleting `count` sandboxes; without a terminal, refuses.
fn confirm(count: usize) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "cbx cleanup would delete {count} sandbox{} (above) and asks first, but stdin \
                 is not a terminal; nothing was deleted",
                if count == 1 { "" } else { "es" }
            ),
        )
        .hint("rerun with --yes to delete them, or --dry-run to only list them")
        .into());
    }
    if count == 1 {
        eprint!("Delete this sandbox? [y/N] ");
    } else {
        eprint!("Delete these {count} sandboxes? [y/N] ");
    }
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return Err(fail(ErrorKind::Usage, "not confirmed; nothing was deleted"));
    }
    Ok(())
}
