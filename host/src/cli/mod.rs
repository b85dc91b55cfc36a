//! The command-line interface: parse arguments, read the environment once, build a
//! [`Context`], run one command, turn its result into output and an exit code.

pub mod args;
pub mod commands;
pub mod complete;
pub mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use self::args::{Cli, Command, GlobalArgs, ProvidersCommand};
use crate::context::{Context, Flags};
use crate::environment::Environment;
use crate::error::{self, Failure};
use crate::redact::{RedactingStderr, Redactor};
use crate::terminal::inert;

/// Runs cbx with the process's arguments and environment.
pub fn main() -> ExitCode {
    commands::completions::answer_if_asked();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let env = Environment::capture();
    let redactor = Redactor::new();
    init_tracing(cli.global.verbose, &env, &redactor);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        // From here on SIGINT, SIGTERM and SIGHUP are cbx's to handle: a step with something
        // to clean up does so; anything else is dropped here (its child processes killed).
        crate::interrupt::watch();
        tokio::select! {
            biased;
            r = run(cli, env, redactor.clone()) => r,
            signal = crate::interrupt::unshielded() => Err(signal.failure("interrupted")),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            report(&err, &redactor);
            ExitCode::from(error::exit_code(&err))
        }
    }
}

fn init_tracing(verbose: u8, env: &Environment, redactor: &Redactor) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = env
        .var("CBX_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(format!("cbx={level},warn")));
    // Colours only for a person at a terminal who has not asked for none (no-color.org).
    let colour = std::io::stderr().is_terminal() && env.var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_target(false)
        .without_time()
        .with_writer(RedactingStderr::new(redactor.clone()))
        .try_init();
}

/// Prints an error and its hint on stderr, secrets removed.
fn report(err: &anyhow::Error, redactor: &Redactor) {
    eprint!("{}", error_lines(err, redactor));
}

/// The `error:` and `hint:` lines for `err`, secrets removed. Provider text inside is already
/// inert where it was quoted; in case some is not, every line is made [`inert`] and every line
/// after the first is indented, so nothing can start a line of its own (a forged `error:`).
fn error_lines(err: &anyhow::Error, redactor: &Redactor) -> String {
    let mut out = labelled("error: ", &redactor.redact(&format!("{err:#}")));
    if let Some(Failure {
        hint: Some(hint), ..
    }) = error::failure(err)
    {
        out.push_str(&labelled("hint: ", &redactor.redact(hint)));
    }
    out
}

/// `label` and `text`, each line inert, lines after the first indented by two spaces.
fn labelled(label: &str, text: &str) -> String {
    let mut out = String::from(label);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\n  ");
        }
        out.push_str(&inert(line));
    }
    out.push('\n');
    out
}

/// The library's view of the global flags.
fn flags(global: &GlobalArgs) -> Flags {
    Flags {
        provider: global.provider.clone(),
        options: global.options.clone(),
        endpoints: global.endpoints.clone(),
        quiet: global.quiet,
        verbose: global.verbose,
    }
}

async fn run(cli: Cli, env: Environment, redactor: Redactor) -> Result<u8> {
    let ctx = Context::new(env, flags(&cli.global), redactor)?;
    match cli.command {
        Command::Doctor(a) => commands::doctor::run(&ctx, &a).await,
        Command::Warmup(a) => commands::warmup::run(&ctx, &a).await,
        Command::List(a) => commands::list::run(&ctx, &a).await,
        Command::Status(a) => commands::status::run(&ctx, &a).await,
        Command::Stop(a) => commands::stop::run(&ctx, &a).await,
        Command::Pause(a) => commands::pause::run(&ctx, &a).await,
        Command::Cleanup(a) => commands::cleanup::run(&ctx, &a).await,
        Command::Run(a) => commands::run::run(&ctx, &a).await,
        Command::Shard(a) => commands::shard::run(&ctx, &a).await,
        Command::Ssh(a) => commands::ssh::run(&ctx, &a).await,
        Command::Checkpoint(c) => commands::checkpoint::run(&ctx, &c).await,
        Command::Cp(a) => commands::cp::run(&ctx, &a).await,
        Command::Completions { shell } => commands::completions::run(shell),
        Command::Man => commands::completions::man(),
        Command::Providers(ProvidersCommand::List { json }) => {
            commands::providers::list(&ctx, json)
        }
        Command::Providers(ProvidersCommand::Inspect { name, json }) => {
            commands::providers::inspect(&ctx, &name, json).await
        }
        Command::Providers(ProvidersCommand::Install(a)) => commands::install::run(&ctx, &a).await,
        Command::Providers(ProvidersCommand::Remove { name }) => {
            commands::install::remove(&ctx, &name)
        }
        Command::Providers(ProvidersCommand::Audit(a)) => commands::providers::audit(&ctx, &a),
        Command::Providers(ProvidersCommand::Test(a)) => commands::conformance::run(&ctx, &a).await,
        Command::Providers(ProvidersCommand::New(a)) => commands::scaffold::new(&ctx, &a),
        Command::Providers(ProvidersCommand::Wit { out }) => commands::scaffold::wit(&ctx, &out),
        Command::Providers(ProvidersCommand::Build { dir }) => {
            commands::scaffold::build(&ctx, &dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_cannot_be_forged() {
        let err = anyhow::Error::new(
            Failure::new(
                error::ErrorKind::Provider,
                "bad\nerror: forged\r\x1b[2Jhint: also forged",
            )
            .hint("real hint\nhint: forged"),
        );
        let text = error_lines(&err, &Redactor::new());
        assert_eq!(
            text,
            "error: bad\n  error: forged\\r\\x1b[2Jhint: also forged\nhint: real hint\n  hint: forged\n"
        );
        let starts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("hint:"))
            .collect();
        assert_eq!(starts, ["error: bad", "hint: real hint"]);
    }
}
