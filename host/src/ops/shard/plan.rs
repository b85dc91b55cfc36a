//! What `cbx shard` leases, decided before anything is created: what `--from` names (a lease
//! to fork, or a checkpoint), whether the provider can do that, and the plan line that says
//! how many sandboxes come from what. Also each shard's own command: `{index}`, `{total}` and
//! `{lease}` substituted.

use anyhow::Result;

use crate::context::Context;
use crate::lease::acquire::Source;
use crate::lease::checkpoint;
use crate::lease::claims::Claims;
use crate::lease::session::Session;
use crate::provider::Capability;
use crate::remote::Program;
use crate::terminal::inert;

/// Where every shard's sandbox comes from, and the line that says so.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    /// What each acquire starts from.
    pub source: Source,
    /// `4 sandboxes with daytona, each a fork of lease blue-otter`.
    pub line: String,
}

/// What `--from` names.
#[derive(Debug, Clone)]
pub enum ShardSource {
    /// Nothing: fresh sandboxes.
    Nothing,
    /// One of this machine's leases with the provider (its id and slug).
    Lease { id: String, slug: String },
    /// A checkpoint, by the user's name.
    Checkpoint(String),
}

impl ShardSource {
    /// What `from` names: a lease when one of this machine's claims with `provider` matches
    /// it, else a checkpoint (its name checked).
    pub fn of(ctx: &Context, provider: &str, from: Option<&str>) -> Result<ShardSource> {
        let Some(from) = from else {
            return Ok(ShardSource::Nothing);
        };
        let claims = Claims::new(ctx.dirs.claims());
        if let Some(claim) = claims.matching(Some(provider), from)?.first() {
            return Ok(ShardSource::Lease {
                id: claim.lease_id.to_string(),
                slug: claim.slug.clone(),
            });
        }
        Ok(ShardSource::Checkpoint(checkpoint::user_name(from)?))
    }

    /// The capability a session must have for this, if any must (a lease can be copied
    /// without `fork`: fresh sandboxes then).
    pub fn needs(&self) -> Option<Capability> {
        match self {
            ShardSource::Checkpoint(_) => Some(Capability::Checkpoint),
            _ => None,
        }
    }
}

/// Decides the plan for `count` shards with `session`'s provider: forks of a lease where the
/// provider has the `fork` capability (else fresh sandboxes, and the line says why), sandboxes
/// from a checkpoint (which must exist and be ready), or fresh ones.
pub async fn decide(session: &mut Session, count: u32, from: &ShardSource) -> Result<ShardPlan> {
    let head = format!(
        "{count} {} with {}",
        if count == 1 { "sandbox" } else { "sandboxes" },
        session.name()
    );
    match from {
        ShardSource::Nothing => Ok(ShardPlan {
            source: Source::Fresh,
            line: format!("{head}, each created fresh"),
        }),
        ShardSource::Lease { id, slug } if session.require(Capability::Fork, "shard").is_ok() => {
            Ok(ShardPlan {
                source: Source::Fork(id.clone()),
                line: format!(
                    "{head}, each a fork of lease {} (a fresh sandbox where the service \
                     cannot fork it)",
                    inert(slug)
                ),
            })
        }
        ShardSource::Lease { slug, .. } => Ok(ShardPlan {
            source: Source::Fresh,
            line: format!(
                "{head}, each created fresh: {} has no `fork` capability, so lease {} is not \
                 copied",
                session.name(),
                inert(slug)
            ),
        }),
        ShardSource::Checkpoint(name) => {
            checkpoint::usable(session, name).await?;
            Ok(ShardPlan {
                line: format!("{head}, each from checkpoint {name}"),
                source: Source::Checkpoint(name.clone()),
            })
        }
    }
}

/// Shard `index` of `total`'s command: `{index}` (1-based), `{total}` and `{lease}` (the lease
/// id) replaced in every argument, or in the shell string.
pub fn substitute(program: &Program, index: u32, total: u32, lease: &str) -> Program {
    let one = |text: &str| {
        text.replace("{index}", &index.to_string())
            .replace("{total}", &total.to_string())
            .replace("{lease}", lease)
    };
    match program {
        Program::Argv(args) => Program::Argv(args.iter().map(|a| one(a)).collect()),
        Program::Shell(script) => Program::Shell(one(script)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_in_every_argument_and_in_a_script() {
        let argv = Program::Argv(vec![
            "test".into(),
            "--shard={index}/{total}".into(),
            "{lease}".into(),
            "{other}".into(),
        ]);
        match substitute(&argv, 2, 4, "cbx_0123456789ab") {
            Program::Argv(a) => {
                assert_eq!(a, ["test", "--shard=2/4", "cbx_0123456789ab", "{other}"])
            }
            Program::Shell(_) => panic!("an argv stays an argv"),
        }
        match substitute(&Program::Shell("echo {index} of {total}".into()), 1, 3, "x") {
            Program::Shell(s) => assert_eq!(s, "echo 1 of 3"),
            Program::Argv(_) => panic!("a script stays a script"),
        }
    }
}
