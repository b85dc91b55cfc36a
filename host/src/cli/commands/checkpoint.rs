//! `cbx checkpoint create|list|delete`: checkpoints of leases' sandboxes, through the
//! provider's `checkpoint` capability (checked before anything is done). Checkpoints are
//! named by owner (`lease::checkpoint_name`): list shows whose each is, delete refuses
//! another owner's without `--any-owner`.

use anyhow::Result;

use crate::cli::args::CheckpointCommand;
use crate::cli::output;
use crate::context::Context;
use crate::lease::checkpoint;
use crate::lease::checkpoint_name::short_name;
use crate::lease::owner::owner_id;
use crate::lease::resolve::resolve;
use crate::lease::session::Session;
use crate::provider::Capability;
use crate::provider::api::CheckpointState;
use crate::terminal::inert;

/// Runs `cbx checkpoint …`.
pub async fn run(ctx: &Context, command: &CheckpointCommand) -> Result<u8> {
    match command {
        CheckpointCommand::Create { lease, name } => create(ctx, lease, name.as_deref()).await,
        CheckpointCommand::List { json } => list(ctx, *json).await,
        CheckpointCommand::Delete { name, any_owner } => delete(ctx, name, *any_owner).await,
    }
}

async fn create(ctx: &Context, ident: &str, name: Option<&str>) -> Result<u8> {
    let name = name.map(short_name).transpose()?;
    let provider = ctx.provider_for(ident)?;
    let mut session = ctx
        .session_requiring(&provider, Capability::Checkpoint, "cbx checkpoint create")
        .await?;
    let lease = resolve(&mut session, ident).await?;
    lease.require_claim("checkpoint")?;
    let name = name.unwrap_or_else(|| checkpoint::default_name(&lease));
    let saved = checkpoint::create(&mut session, &lease, &name).await?;
    let line = format!(
        "checkpoint {name} id={} from {}",
        saved.id, lease.ownership.lease
    );
    println!("{}", inert(&line));
    Ok(0)
}

async fn list(ctx: &Context, json: bool) -> Result<u8> {
    let provider = ctx.provider_name();
    let mut session = ctx
        .session_requiring(&provider, Capability::Checkpoint, "cbx checkpoint list")
        .await?;
    let me = owner_id(session.dirs())?;
    let listed = checkpoint::listed(&mut session).await?;
    let mut rows: Vec<serde_json::Value> = listed
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name.shown(&me),
                "serviceName": c.info.name,
                "owner": c.name.owner_kind(&me).as_str(),
                "id": c.info.id,
                "state": state_word(c.info.state),
                "providerState": c.info.provider_state,
                "createdAt": c.info.created_at,
                "ageSecs": c.info.created_at.as_deref().and_then(age_secs),
            })
        })
        .collect();
    rows.extend(unfinished(&session, &listed)?);
    if json {
        for row in &rows {
            println!("{row}");
        }
        return Ok(0);
    }
    if rows.is_empty() {
        eprintln!("no checkpoints with provider {provider}");
        return Ok(0);
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let mut table = vec![[
        "NAME".to_string(),
        "OWNER".into(),
        "STATE".into(),
        "AGE".into(),
        "ID".into(),
    ]];
    for r in &rows {
        table.push([
            text(&r["name"]),
            text(&r["owner"]),
            text(&r["providerState"]),
            r["ageSecs"]
                .as_u64()
                .map_or_else(|| "-".into(), output::age),
            text(&r["id"]),
        ]);
    }
    print!("{}", output::table(&table));
    Ok(0)
}

/// This owner's checkpoint creations that the provider does not show (yet): state
/// `unfinished`, with the command and whether it still runs.
fn unfinished(
    session: &Session,
    listed: &[checkpoint::ListedCheckpoint],
) -> Result<Vec<serde_json::Value>> {
    let intents = session.intents();
    let (all, _) = intents.scan()?;
    Ok(all
        .iter()
        .filter(|i| i.provider == session.name())
        .filter(|i| !listed.iter().any(|l| l.info.name == i.name))
        .filter_map(|i| {
            let plan = i.checkpoint()?;
            let running = intents.owner_alive(&i.id);
            Some(serde_json::json!({
                "name": plan.short,
                "serviceName": i.name,
                "owner": "this-machine",
                "id": null,
                "state": "unfinished",
                "providerState": if running { "saving" } else { "unfinished" },
                "createdAt": i.recorded_at,
                "ageSecs": age_secs(&i.recorded_at),
                "unfinished": {
                    "command": i.command,
                    "pid": i.owner.pid,
                    "running": running,
                },
            }))
        })
        .collect())
}

/// Seconds since `created` (RFC 3339), if it parses.
fn age_secs(created: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc3339(created).ok()?;
    let secs = chrono::Utc::now().signed_duration_since(at).num_seconds();
    Some(secs.max(0) as u64)
}

async fn delete(ctx: &Context, name: &str, any_owner: bool) -> Result<u8> {
    let name = checkpoint::user_name(name)?;
    let provider = ctx.provider_name();
    let mut session = ctx
        .session_requiring(&provider, Capability::Checkpoint, "cbx checkpoint delete")
        .await?;
    let deleted = checkpoint::delete(&mut session, &name, any_owner).await?;
    let me = owner_id(session.dirs())?;
    println!(
        "{}",
        match deleted {
            Some(n) => format!("deleted checkpoint {}", n.shown(&me)),
            None => format!("checkpoint {name} was already gone"),
        }
    );
    Ok(0)
}

/// The normalised state as `--json` writes it.
fn state_word(state: CheckpointState) -> &'static str {
    match state {
        CheckpointState::Creating => "creating",
        CheckpointState::Ready => "ready",
        CheckpointState::Failed => "failed",
        CheckpointState::Deleting => "deleting",
        CheckpointState::Unknown => "unknown",
    }
}
