//! The command line. Flags that set config values become `path=value` overrides, the highest
//! layer of the config (defaults < file < `PILOTLIGHT_*` env < flags).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// pilotlight: always-on disaster recovery for AWS.
#[derive(Debug, Parser)]
#[command(name = "pilotlight", version, about)]
pub struct Cli {
    /// Config file (TOML). Without one, defaults and PILOTLIGHT_* variables apply.
    #[arg(short, long, global = true, env = "PILOTLIGHT_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log format (overrides log.format).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,

    /// Set any config key, e.g. --set reconcile.cycle_secs=60 (repeatable; highest precedence).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run {
        /// Admin API address (overrides api.listen).
        #[arg(long)]
        api_listen: Option<String>,
        /// Metrics address (overrides api.metrics_listen).
        #[arg(long)]
        metrics_listen: Option<String>,
        /// State store URL (overrides store.url).
        #[arg(long)]
        store_url: Option<String>,
    },
    /// Apply the state store's migrations and exit.
    Migrate,
    /// Show the restore plan: tiers, launch groups, API calls, estimated time per tier, the
    /// lower bound the API limits impose, and the capacity plan against the DR quotas. Asks
    /// the running daemon's admin API (`GET /v1/plan`), which builds it from the DR bucket's
    /// inventory and the store only.
    Plan {
        /// Only these tenants' clusters (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<String>,
        /// Only these tiers (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tiers: Vec<u8>,
        /// Print the plan as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Declare, approve, cancel and follow restore runs (talks to the daemon's admin API).
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Start and list drills: full restores into the DR region that never touch production
    /// DNS and tear down everything they created (talks to the daemon's admin API).
    #[command(subcommand)]
    Drill(DrillCommand),
    /// Print or check configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `disaster` or `drill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestoreModeArg {
    /// A declared disaster: production DNS is cut over.
    Disaster,
    /// A drill: restored with drill tags, production DNS untouched.
    Drill,
}

impl RestoreModeArg {
    /// The API's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreModeArg::Disaster => "disaster",
            RestoreModeArg::Drill => "drill",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Declare a restore run (`POST /v1/restores`, operator role) and print its id and state.
    /// Under the two-person rule a disaster then waits for `pilotlight restore approve` by
    /// another principal.
    Declare {
        /// What is declared.
        #[arg(long, value_enum, default_value = "disaster")]
        mode: RestoreModeArg,
        /// Only these tiers (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tiers: Vec<u8>,
        /// Only these tenants' clusters (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<String>,
        /// Show the plan the run would execute; declare nothing.
        #[arg(long)]
        dry_run: bool,
        /// Sent as `Idempotency-Key`: repeating the command with the same key answers the same
        /// run instead of declaring a second one.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Approve a run awaiting approval (approver role; not the principal that declared it).
    Approve {
        /// The run id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel an active run: no new work starts; what was created stays, journalled.
    Cancel {
        /// The run id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a run: state, per-tier timeline, counts, substitutions, API calls, RTO.
    Status {
        /// The run id.
        id: String,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Follow a run live with a progress bar per tier until it ends. Exits 0 when it
    /// succeeded, 1 when it failed or was cancelled.
    Watch {
        /// The run id.
        id: String,
        /// Redraw interval in milliseconds.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(100..=60_000))]
        interval_ms: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the most recent runs, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// How the CLI reaches the admin API.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Admin API base URL (default: http://<api.listen> of the config).
    #[arg(long, env = "PILOTLIGHT_API")]
    pub api: Option<String>,
    /// File holding a bearer token (viewer role or above; declaring and cancelling need the
    /// operator role, approving the approver role).
    #[arg(long, env = "PILOTLIGHT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Declare a drill (`POST /v1/restores {"mode": "drill"}`, operator role): restored with
    /// drill tags, production DNS untouched, RTO measured per tier, then torn down. Cancel it
    /// with `pilotlight restore cancel <id>` (it is still torn down).
    Start {
        /// Only these tiers (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tiers: Vec<u8>,
        /// Only these tenants' clusters (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<String>,
        /// Sent as `Idempotency-Key`: repeating the command answers the same drill.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Follow the drill with live progress bars until it has been torn down; exit 0 when
        /// it succeeded, 1 otherwise.
        #[arg(long)]
        watch: bool,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List recent drills, newest first: state, RTO overall and per tier, teardown time and
    /// anything left behind (`GET /v1/drills`), and the schedule.
    List {
        /// How many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the complete, commented default config.
    Default,
    /// Validate a config file (and the secret files it names); exit 64 if invalid.
    Check {
        /// The file to check (defaults to --config).
        file: Option<PathBuf>,
    },
}

impl Cli {
    /// The `path=value` overrides these flags stand for, in increasing precedence.
    pub fn overrides(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = self.log_format {
            out.push(format!(
                "log.format={}",
                match f {
                    LogFormatArg::Text => "text",
                    LogFormatArg::Json => "json",
                }
            ));
        }
        if let Command::Run {
            api_listen,
            metrics_listen,
            store_url,
        } = &self.command
        {
            if let Some(a) = api_listen {
                out.push(format!("api.listen={a:?}"));
            }
            if let Some(a) = metrics_listen {
                out.push(format!("api.metrics_listen={a:?}"));
            }
            if let Some(u) = store_url {
                out.push(format!("store.url={u:?}"));
            }
        }
        out.extend(self.set.iter().cloned());
        out
    }
}
