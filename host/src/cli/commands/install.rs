//! `cbx providers install` and `cbx providers remove`: the flow is `provider::install`; this
//! command shows what the provider asks for (and what changed since an earlier approval) and
//! asks the user to approve it.

use std::io::{IsTerminal, Write};

use anyhow::Result;

use crate::cli::args::InstallArgs;
use crate::context::Context;
use crate::error::{ErrorKind, Failure, fail};
use crate::grant::approval::Approvals;
use crate::provider::install::{self, InstallRequest, Standing};
use crate::terminal::inert;

/// Runs `cbx providers install`.
pub async fn run(ctx: &Context, args: &InstallArgs) -> Result<u8> {
    let request = InstallRequest {
        source: args.source.clone(),
        manifest: args.manifest.clone(),
        sha256: args.sha256.clone(),
    };
    let candidate = install::prepare(&ctx.runtime(), &request, &ctx.cwd).await?;
    let installed = ctx.dirs.installed_providers();
    let colour = std::io::stdout().is_terminal() && ctx.var("NO_COLOR").is_none();
    print!("{}", candidate.screen(&installed, colour)?);
    let approvals = Approvals::new(ctx.dirs.grants_file());
    let name = candidate.name();
    match candidate.standing(&approvals, &installed)? {
        Standing::Approved => {}
        Standing::New if args.yes => {}
        Standing::New => ask_approval(name, false)?,
        Standing::Changed(changes) => {
            println!("Changed since you approved it:");
            for line in &changes {
                println!("  {}", inert(line));
            }
            if !args.yes {
                ask_approval(name, true)?;
            }
        }
    }
    candidate.install(&installed, &approvals)?;
    println!(
        "installed {} {} (sha256 {})",
        name,
        inert(candidate.version()),
        candidate.digest()
    );
    eprintln!("try it: cbx --provider {name} doctor");
    Ok(0)
}

/// Asks the user on the terminal to approve provider `name` (`changed`: again, after a
/// change); fails (exit 7) unless they do, and without a terminal.
fn ask_approval(name: &str, changed: bool) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        let message = if changed {
            format!(
                "{name} changed since you approved it; installing it needs your approval again, and nothing was installed"
            )
        } else {
            format!("installing {name} needs your approval; nothing was installed")
        };
        return Err(Failure::new(ErrorKind::Denied, message)
            .hint(if changed {
                "review the capabilities and the changes above, then rerun with --yes to approve them"
            } else {
                "review the capabilities above, then rerun with --yes to approve them"
            })
            .into());
    }
    eprint!(
        "Approve provider {name} with exactly these capabilities{}? [y/N] ",
        if changed { " and changes" } else { "" }
    );
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
