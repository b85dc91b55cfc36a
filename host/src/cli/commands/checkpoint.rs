//! `cbx checkpoint create|list|delete`: checkpoints of leases' sandboxes, through the
//! provider's `checkpoint` capability (checked before anything is done).

use anyhow::Result;

use crate::cli::args::CheckpointCommand;
use crate::cli::output;
use crate::context::Context;
use crate::lease::checkpoint::{self, PREFIX};
use crate::lease::resolve::resolve;
use crate::provider::Capability;
use crate::provider::api::CheckpointState;
use crate::terminal::inert;

/// Runs `cbx checkpoint …`.
pub async fn run(ctx: &Context, command: &CheckpointCommand) -> Result<u8> {
    match command {
        CheckpointCommand::Create { lease, name } => create(ctx, lease, name.as_deref()).await,
        CheckpointCommand::List { json } => list(ctx, *json).await,
        CheckpointCommand::Delete { name } => delete(ctx, name).await,
    }
}

async fn create(ctx: &Context, ident: &str, name: Option<&str>) -> Result<u8> {
    let name = name.map(checkpoint::user_name).transpose()?;
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
    let all = checkpoint::list(&mut session).await?;
    let name_of = |full: &str| full.strip_prefix(PREFIX).unwrap_or(full).to_string();
    if json {
        for c in &all {
            let row = serde_json::json!({
                "name": name_of(&c.name),
                "id": c.id,
                "state": state_word(c.state),
                "providerState": c.provider_state,
                "createdAt": c.created_at,
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
        "STATE".into(),
        "CREATED".into(),
        "ID".into(),
    ]];
    for c in &all {
        rows.push([
            name_of(&c.name),
            c.provider_state.clone(),
            c.created_at.clone().unwrap_or_else(|| "-".into()),
            c.id.clone(),
        ]);
    }
    print!("{}", output::table(&rows));
    Ok(0)
}

async fn delete(ctx: &Context, name: &str) -> Result<u8> {
    let name = checkpoint::user_name(name)?;
    let provider = ctx.provider_name();
    let mut session = ctx
        .session_requiring(&provider, Capability::Checkpoint, "cbx checkpoint delete")
        .await?;
    let deleted = checkpoint::delete(&mut session, &name).await?;
    println!(
        "{}",
        if deleted {
            format!("deleted checkpoint {name}")
        } else {
            format!("checkpoint {name} was already gone")
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
