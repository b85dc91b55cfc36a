//! `cbx providers install` and `cbx providers remove`: the flow is `provider::install`; this
//! command shows what the provider asks for and asks the user to approve it.

use std::io::{IsTerminal, Write};

use anyhow::Result;

use crate::cli::args::InstallArgs;
use crate::context::Context;
use crate::error::{ErrorKind, Failure, fail};
use crate::grant::approval::Approvals;
use crate::provider::install::{self, InstallRequest};

/// Runs `cbx providers install`.
pub async fn run(ctx: &Context, args: &InstallArgs) -> Result<u8> {
    let request = InstallRequest {
        source: args.source.clone(),
        manifest: args.manifest.clone(),
        sha256: args.sha256.clone(),
    };
    let candidate = install::prepare(&ctx.runtime(), &request, &ctx.cwd).await?;
    print!("{}", candidate.summary());
    let approvals = Approvals::new(ctx.dirs.grants_file());
    if !candidate.already_approved(&approvals)? && !args.yes {
        ask_approval(candidate.name())?;
    }
    candidate.install(&ctx.dirs.installed_providers(), &approvals)?;
    println!(
        "installed {} {} (sha256 {})",
        candidate.name(),
        candidate.version(),
        candidate.digest()
    );
    eprintln!("try it: cbx --provider {} doctor", candidate.name());
    Ok(0)
}

/// Asks the user on the terminal to approve provider `name`; fails unless they do.
fn ask_approval(name: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!("installing {name} needs your approval"),
        )
        .hint("review the capabilities above, then rerun with --yes to approve them")
        .into());
    }
    eprint!("Approve provider {name} with exactly these capabilities? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return Err(fail(
            ErrorKind::Denied,
            format!("not approved; {name} was not installed"),
        ));
    }
    Ok(())
}

/// Runs `cbx providers remove`.
pub fn remove(ctx: &Context, name: &str) -> Result<u8> {
    let approvals = Approvals::new(ctx.dirs.grants_file());
    install::remove(&ctx.dirs.installed_providers(), &approvals, name)?;
    println!("removed {name}");
    Ok(0)
}
