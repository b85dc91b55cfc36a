//! `cbx completions SHELL` and `cbx man`: shell integration generated from the same clap
//! definitions as the parser. Completion is dynamic (clap_complete's engine): the shell calls
//! `COMPLETE=<shell> cbx -- …` for each completion, so lease arguments complete to the leases
//! claimed here (see `cli::complete`).

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::env::{Bash, EnvCompleter, Fish, Powershell, Zsh};

use crate::cli::args::{Cli, Shell};

/// The variable the shell sets to ask cbx for completions.
pub const COMPLETE_VAR: &str = "COMPLETE";

/// Answers a completion request when the shell made one (`COMPLETE` set), then exits;
/// otherwise returns.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .complete();
}

/// Runs `cbx completions SHELL`: prints the script that registers cbx's completions.
pub fn run(shell: Shell) -> Result<u8> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Powershell => &Powershell,
    };
    let mut out = Vec::new();
    completer.write_registration(COMPLETE_VAR, "cbx", "cbx", "cbx", &mut out)?;
    std::io::stdout().write_all(&out)?;
    Ok(0)
}

/// Runs `cbx man`: prints the manual page (roff) on stdout.
pub fn man() -> Result<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    std::io::stdout().write_all(&out)?;
    Ok(0)
}
