//! Command-line arguments, all in one place.

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::ArgValueCompleter;

use crate::cli::complete::{cp_candidates, lease_candidates};

/// Lease remote Linux sandboxes, sync your working tree and run commands there.
///
/// Providers (Daytona first) are sandboxed WebAssembly components; cbx keeps your credentials,
/// SSH and rsync to itself and grants each provider only what its manifest declares.
#[derive(Debug, Parser)]
#[command(name = "cbx", version, about, long_about, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 other error, 2 usage or config, 3 authentication, \
4 not found or not owned, 5 sandbox failed or timed out, 6 sync failed, 7 capability denied, \
8 provider fault, 130 interrupted (SIGINT), 143 terminated (SIGTERM), 129 hung up (SIGHUP); \
`run` exits with the remote command's status; `shard` with its lowest-numbered failing shard's code."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// The provider to use [default: CBX_PROVIDER, then config, then daytona].
    #[arg(long, global = true, value_name = "NAME")]
    pub provider: Option<String>,
    /// Set a provider option (repeatable), e.g. `-o snapshot=daytona-small`.
    #[arg(short = 'o', long = "option", global = true, value_name = "NAME=VALUE", value_parser = parse_pair)]
    pub options: Vec<(String, String)>,
    /// Point a provider endpoint elsewhere (repeatable), e.g. `--endpoint api=https://…`.
    #[arg(long = "endpoint", global = true, value_name = "NAME=URL", value_parser = parse_pair)]
    pub endpoints: Vec<(String, String)>,
    /// Show more detail on stderr (-v: info, -vv: debug, including provider HTTP requests).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Show no progress, only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that cbx, the provider and your credentials work, without changing anything.
    Doctor(DoctorArgs),
    /// Lease a new sandbox and wait until it is ready.
    Warmup(WarmupArgs),
    /// List your leases with this provider.
    List(ListArgs),
    /// Show one lease and its sandbox's live state.
    Status(StatusArgs),
    /// Delete a lease's sandbox and forget the lease.
    Stop(StopArgs),
    /// Stop a lease's sandbox without deleting it; `run --id` and `ssh` start it again.
    Pause(PauseArgs),
    /// Delete cbx sandboxes nobody here holds: expired ones, this machine's orphans, or with
    /// --any-owner every cbx sandbox. Never a sandbox without cbx's labels.
    Cleanup(CleanupArgs),
    /// Sync the working tree to a sandbox and run a command there.
    ///
    /// Without --id, leases a new sandbox and deletes it when the command ends (unless
    /// --keep). The command's output streams back live and cbx exits with its status.
    Run(RunArgs),
    /// Run one command on N new sandboxes at once (a test suite split in N).
    ///
    /// Prints the plan first, then leases the sandboxes concurrently (forks of --from LEASE
    /// where the provider can, else from --from CHECKPOINT, else fresh), syncs the tree to
    /// each, runs the command with {index} (1-based), {total} and {lease} replaced and
    /// CBX_SHARD_INDEX/CBX_SHARD_TOTAL set, every output line led by `[i/N] `, and deletes each
    /// sandbox when its shard ends (unless --keep). Exits 0 only if every shard's command
    /// exited 0, else with the code of the lowest-numbered shard that failed.
    Shard(ShardArgs),
    /// Open a shell on a lease's sandbox, or run one command there.
    Ssh(SshArgs),
    /// Copy files and directories to or from a lease's sandbox.
    ///
    /// One of SRC and DST is `LEASE:PATH`; PATH is relative to the lease's work directory or
    /// absolute. Write a local path with a `:` as `./name:x`.
    Cp(CpArgs),
    /// List, inspect and manage providers.
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Print the script that adds cbx's completions to your shell (lease slugs included).
    ///
    /// bash: `source <(cbx completions bash)` in ~/.bashrc; zsh: `source <(cbx completions
    /// zsh)` in ~/.zshrc; fish: `cbx completions fish | source` in config.fish; PowerShell:
    /// `cbx completions powershell | Out-String | Invoke-Expression` in $PROFILE.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Print cbx's manual page (roff), e.g. `cbx man > ~/.local/share/man/man1/cbx.1`.
    Man,
    /// Save a lease's sandbox as a checkpoint new sandboxes can start from (`--from`); list
    /// and delete checkpoints. Needs a provider with the `checkpoint` capability.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
}

/// A shell `cbx completions` supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
}

/// `cbx checkpoint …`
#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Save lease LEASE's sandbox as a checkpoint and wait until it is saved.
    Create {
        /// The lease id or slug.
        lease: String,
        /// The checkpoint's name (lowercase letters, digits, dashes) [default: SLUG-XXXXXX].
        #[arg(long)]
        name: Option<String>,
    },
    /// List cbx's checkpoints with this provider.
    List {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Delete a checkpoint: this machine's, or one of a cbx before owners; another owner's
    /// only with --any-owner.
    Delete {
        /// The checkpoint's name (`deps`, or another owner's as `list` shows it).
        name: String,
        /// Also delete another owner's checkpoint (another machine's, or this one's before
        /// its state was lost).
        #[arg(long)]
        any_owner: bool,
    },
}

/// `cbx doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check this live lease (id or slug): SSH and the sandbox's tools, in one login, and
    /// which transport syncs will use.
    #[arg(long, value_name = "LEASE")]
    pub lease: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Lease settings shared by commands that create leases.
#[derive(Debug, Args, Clone, Default)]
pub struct LeaseArgs {
    /// A slug for the lease (default: a random adjective-animal).
    #[arg(long)]
    pub slug: Option<String>,
    /// Lease lifetime, 1m to 365d; cbx deletes the sandbox after it [default: 90m].
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Idle time after which the provider stops the sandbox, 0s (never) to 365d [default: 30m].
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// How long to wait for the sandbox to become ready, 1s to 24h [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub ready_timeout: Option<String>,
    /// Start the sandbox from this checkpoint (`cbx checkpoint create`) instead of afresh.
    #[arg(long, value_name = "CHECKPOINT", conflicts_with = "fork")]
    pub from: Option<String>,
    /// Make the sandbox a copy of this lease's, files and all (providers with the `fork`
    /// capability; a fresh sandbox when the service cannot fork that one).
    #[arg(long, value_name = "LEASE")]
    pub fork: Option<String>,
}

/// `cbx warmup`
#[derive(Debug, Args)]
pub struct WarmupArgs {
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cbx list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Also list cbx sandboxes without a claim here (another machine's, or lost by this one)
    /// and sandboxes being deleted, with their owner and age.
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cbx status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Lease id or slug.
    #[arg(add = ArgValueCompleter::new(lease_candidates))]
    pub lease: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cbx stop`
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Lease id or slug.
    #[arg(add = ArgValueCompleter::new(lease_candidates))]
    pub lease: String,
    /// Adopt and delete a cbx sandbox this machine holds no claim for (another machine's, or
    /// one whose claim was lost), after checking that no local command holds it.
    #[arg(long)]
    pub reclaim: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cbx pause`
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Lease id or slug.
    #[arg(add = ArgValueCompleter::new(lease_candidates))]
    pub lease: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cbx cleanup`
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only sandboxes created longer ago than this, e.g. 2h or 3d.
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// Also delete other owners' cbx sandboxes (other machines', or this one's before its
    /// state was lost) that are not expired.
    #[arg(long)]
    pub any_owner: bool,
    /// Delete without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cbx run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Reuse this lease (id or slug) instead of leasing a new sandbox.
    #[arg(long, value_name = "LEASE", add = ArgValueCompleter::new(lease_candidates))]
    pub id: Option<String>,
    /// Keep a newly leased sandbox after the command ends.
    #[arg(long)]
    pub keep: bool,
    /// Keep a newly leased sandbox when the command fails (non-zero exit or an error other
    /// than a signal), to look at it with `cbx ssh`.
    #[arg(long, conflicts_with = "keep")]
    pub keep_on_failure: bool,
    /// Do not sync the working tree.
    #[arg(long)]
    pub no_sync: bool,
    /// Sync even if nothing changed since the last sync.
    #[arg(long)]
    pub resync: bool,
    /// Sync a tree past the size limit.
    #[arg(long, env = "CBX_SYNC_ALLOW_LARGE", value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    pub sync_large: bool,
    /// How to send the files: auto (rsync where the sandbox has it, else a tar stream), rsync
    /// or tar. Default: `[sync] transport` in config, else auto.
    #[arg(long, value_name = "TRANSPORT")]
    pub sync_transport: Option<String>,
    /// Run the command as one shell script string instead of an exact argv.
    #[arg(long)]
    pub shell: bool,
    /// Forward this local environment variable (repeatable). CBX_LEASE_ID and CBX_SLUG are
    /// always set.
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// After the command (also when it failed or was interrupted), copy what this glob
    /// matches in the work directory into LOCAL (default: the current directory), keeping
    /// relative paths; directories are copied whole (repeatable).
    #[arg(long = "download", value_name = "REMOTE[:LOCAL]")]
    pub download: Vec<String>,
    /// Fail when a --download matches nothing or does not finish (exit 6 after a command
    /// that succeeded) instead of warning.
    #[arg(long, requires = "download")]
    pub require_download: bool,
    /// After the command (and the downloads), fetch the JUnit XML reports this glob matches
    /// in the work directory and print a summary: totals and each failed case (repeatable).
    #[arg(long = "junit", value_name = "GLOB")]
    pub junit: Vec<String>,
    /// Write the run's JSON report (lease, sync, timings, exit code, downloads, tests) to
    /// this file when the run ends, however it ends.
    #[arg(long, value_name = "PATH")]
    pub report: Option<std::path::PathBuf>,
    /// Print the run's JSON report on stdout; the command's own stdout then goes to stderr.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `cbx shard`
#[derive(Debug, Args)]
pub struct ShardArgs {
    /// How many sandboxes (shards), at most `[shard] max-count` (default 32).
    #[arg(long, value_name = "N")]
    pub count: u32,
    /// Start every sandbox from this: a lease of yours (forked, where the provider has the
    /// `fork` capability; fresh sandboxes otherwise) or a checkpoint (`cbx checkpoint create`).
    #[arg(long, value_name = "LEASE|CHECKPOINT")]
    pub from: Option<String>,
    /// Keep the leases after the command and print their slugs.
    #[arg(long)]
    pub keep: bool,
    /// After the first shard fails, stop the other shards' commands and release their leases.
    #[arg(long)]
    pub fail_fast: bool,
    /// Do not sync the working tree.
    #[arg(long)]
    pub no_sync: bool,
    /// Sync a tree past the size limit.
    #[arg(long, env = "CBX_SYNC_ALLOW_LARGE", value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    pub sync_large: bool,
    /// How to send the files: auto, rsync or tar (as for `run`).
    #[arg(long, value_name = "TRANSPORT")]
    pub sync_transport: Option<String>,
    /// Run the command as one shell script string instead of an exact argv.
    #[arg(long)]
    pub shell: bool,
    /// Forward this local environment variable to every shard (repeatable).
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// After each shard's command, fetch the JUnit XML reports this glob matches in its work
    /// directory (repeatable); one summary of all shards is printed, each case tagged with its
    /// shard.
    #[arg(long = "junit", value_name = "GLOB")]
    pub junit: Vec<String>,
    /// With --junit: also write every shard's reports merged into this one JUnit XML file,
    /// each suite's name led by its shard and each case with a `shard` attribute.
    #[arg(long, value_name = "PATH", requires = "junit")]
    pub junit_out: Option<std::path::PathBuf>,
    /// Print a JSON report of every shard on stdout; the commands' stdout then goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Lease lifetime, 1m to 365d [default: 90m].
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Idle time after which the provider stops a sandbox [default: 30m].
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// How long to wait for each sandbox to become ready [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub ready_timeout: Option<String>,
    /// The command to run on every shard, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `cbx ssh`
#[derive(Debug, Args)]
pub struct SshArgs {
    /// Lease id or slug.
    #[arg(add = ArgValueCompleter::new(lease_candidates))]
    pub lease: String,
    /// Print a paste-able ssh command instead of connecting (a secret user is shown as
    /// `<token>`).
    #[arg(long)]
    pub print: bool,
    /// With --print, show the secret user in full.
    #[arg(long, requires = "print")]
    pub show_secret: bool,
    /// With --print, print JSON: the command and its parts.
    #[arg(long, requires = "print")]
    pub json: bool,
    /// A command to run instead of an interactive shell, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `cbx cp`
#[derive(Debug, Args)]
pub struct CpArgs {
    /// What to copy: a local path, or `LEASE:PATH` (the last name may be a glob).
    #[arg(value_name = "SRC", add = ArgValueCompleter::new(cp_candidates))]
    pub source: String,
    /// Where to: a local path, or `LEASE:PATH`. An existing directory (or a path ending in
    /// `/`) receives SRC under its own name.
    #[arg(value_name = "DST", add = ArgValueCompleter::new(cp_candidates))]
    pub destination: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cbx providers …`
#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// List the providers this cbx knows: built in and installed.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a provider's interface, capabilities, approval, grant and options.
    Inspect {
        /// The provider's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install a provider component after showing what it asks for and recording your approval.
    Install(InstallArgs),
    /// Uninstall a provider and forget its approval.
    Remove {
        /// The provider's name.
        name: String,
    },
    /// Show the audit log: every request, denial and limit hit of providers.
    Audit(AuditArgs),
    /// Run a provider through the whole lease lifecycle against its configured endpoint (a
    /// fake of your service while you develop one) and report each step of the contract.
    ///
    /// Tests the provider `--provider` names (as every lease command does), or a component
    /// file with `--component` — not installed, nothing approved or stored.
    Test(TestArgs),
    /// Write a new provider project to start from, in a new directory.
    New(NewArgs),
    /// Write the WIT contract providers are built against (to vendor it into a project).
    Wit {
        /// The directory to write `provider.wit` into.
        #[arg(long, value_name = "DIR", default_value = "wit")]
        out: std::path::PathBuf,
    },
    /// Build the Rust provider project in DIR into a component beside its manifest.
    Build {
        /// The project directory (its Cargo.toml and cbx-provider.toml).
        #[arg(value_name = "DIR", default_value = ".")]
        dir: std::path::PathBuf,
    },
}

/// `cbx providers test`
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test this component file instead of an installed provider: its grant is enforced as
    /// shown, but nothing is installed and no approval is recorded.
    #[arg(long, value_name = "FILE")]
    pub component: Option<std::path::PathBuf>,
    /// With --component: its manifest (default: `cbx-provider.toml` beside it).
    #[arg(long, value_name = "FILE", requires = "component")]
    pub manifest: Option<std::path::PathBuf>,
    /// How long each step may wait for the sandbox to become ready, stopped or gone (1s to
    /// 24h); raise it against a real service.
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub timeout: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cbx providers new`
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The provider's name (lowercase letters, digits, `-`); also the new directory's name.
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where to create the project directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub parent: std::path::PathBuf,
}

/// A language `cbx providers new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with wit-bindgen.
    Rust,
    /// Python, with componentize-py.
    Python,
}

/// `cbx providers install`
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The component: a local `.wasm` file or an https URL.
    pub source: String,
    /// Its manifest (default: `cbx-provider.toml` beside the component).
    #[arg(long, value_name = "PATH_OR_URL")]
    pub manifest: Option<String>,
    /// The component's expected sha256 (required for URLs).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Approve without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `cbx providers audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this provider's records.
    #[arg(long = "of", value_name = "NAME")]
    pub of: Option<String>,
    /// Only the last N records.
    #[arg(long, value_name = "N", default_value = "50")]
    pub last: usize,
    /// Only the alerts: denials, limit hits and faults (kept in a file of their own, which
    /// requests cannot rotate out).
    #[arg(long)]
    pub alerts: bool,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got `{text}`")),
    }
}
