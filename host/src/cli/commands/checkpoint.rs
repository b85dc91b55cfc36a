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
    let all = checkpoint::listed(&mut session).await?;
    if json {
        for c in &all {
            let row = serde_json::json!({
                "name": c.name.shown(&me),
                "serviceName": c.info.name,
                "owner": c.name.owner_kind(&me).as_str(),
                "id": c.info.id,
                "state": state_word(c.info.state),
                "providerState": c.info.provider_state,
                "createdAt": c.info.created_at,
                "ageSecs": c.info.created_at.as_deref().and_then(age_secs),
            });
            println!("{row}");
        }
        return Ok(0);
    }
    if all.is_empty() {
        eprintln!("no checkpoints with provider {provider}");
        return Ok(0);
    }
    let mut rows = vec![[
        "NAME".to_string(),
        "OWNER".into(),
        "STATE".into(),
        "AGE".into(),
        "ID".into(),
    ]];
    for c in &all {
        rows.push([
            c.name.shown(&me),
            c.name.owner_kind(&me).as_str().into(),
            c.info.provider_state.clone(),
            c.info
                .created_at
                .as_deref()
                .and_then(age_secs)
                .map_or_else(|| "-".into(), output::age),
            c.info.id.clone(),
        ]);
    }
    print!("{}", output::table(&rows));
    Ok(0)
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
