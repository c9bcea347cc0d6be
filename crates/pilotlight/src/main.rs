//! `pilotlight`: parses flags, loads the config (exit 64 on a bad one), starts telemetry and
//! hands over to [`pilotlight::run`]. A first SIGTERM/SIGINT starts a graceful shutdown; a
//! second one exits at once.
#![allow(clippy::print_stdout)]

mod drill_cmd;
mod restore_cmd;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pilotlight::admin_client::AdminClient;
use pilotlight::cli::{Cli, Command, ConfigCommand, DrillCommand, RestoreCommand, RestoreModeArg};
use pilotlight::{Daemon, Listeners, secrets};
use pilotlight_core::config::{Config, ConfigErrors};
use tokio_util::sync::CancellationToken;

const EXIT_CONFIG: u8 = ConfigErrors::EXIT_CODE;

fn load_config(cli: &Cli, file: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    let text = match file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: cannot read config file {}: {e}", path.display());
                return Err(ExitCode::from(EXIT_CONFIG));
            }
        },
        None => None,
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    Config::from_sources(text.as_deref(), &env, &cli.overrides()).map_err(|errors| {
        eprintln!(
            "error: invalid configuration ({} problems):",
            errors.0.len()
        );
        eprintln!("{errors}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn load_daemon(cli: &Cli) -> Result<Daemon, ExitCode> {
    let config = load_config(cli, cli.config.as_deref())?;
    let secrets = secrets::load(&config).map_err(|errors| {
        eprintln!(
            "error: invalid configuration ({} problems):",
            errors.0.len()
        );
        eprintln!("{errors}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    Ok(Daemon { config, secrets })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Config(ConfigCommand::Default) => {
            print!("{}", Config::default_toml());
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let file = file.clone().or_else(|| cli.config.clone());
            match load_config(&cli, file.as_deref()).and_then(|config| {
                secrets::load(&config).map(|_| ()).map_err(|errors| {
                    eprintln!(
                        "error: invalid configuration ({} problems):",
                        errors.0.len()
                    );
                    eprintln!("{errors}");
                    ExitCode::from(EXIT_CONFIG)
                })
            }) {
                Ok(()) => {
                    println!("configuration is valid");
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::Plan {
            tenants,
            tiers,
            json,
            api,
        } => match load_config(&cli, cli.config.as_deref()) {
            Ok(config) => runtime(async move {
                let out = pilotlight::plan_cmd::run(&config, tenants, tiers, *json, api).await?;
                print!("{out}");
                Ok(())
            }),
            Err(code) => code,
        },
        Command::Restore(cmd) => match load_config(&cli, cli.config.as_deref()) {
            Ok(config) => runtime_exit(restore(config, cmd)),
            Err(code) => code,
        },
        Command::Drill(cmd) => match load_config(&cli, cli.config.as_deref()) {
            Ok(config) => runtime_exit(drill(config, cmd)),
            Err(code) => code,
        },
        Command::Migrate => match load_daemon(&cli) {
            Ok(daemon) => runtime(async move {
                pilotlight::app::open_store(&daemon).await?;
                println!("migrations applied");
                Ok(())
            }),
            Err(code) => code,
        },
        Command::Run { .. } => match load_daemon(&cli) {
            Ok(daemon) => {
                if let Err(e) =
                    pilotlight::telemetry::init(daemon.config.log.format, &daemon.config.log.level)
                {
                    eprintln!("error: invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
                runtime(async move {
                    let listeners = Listeners::bind(&daemon.config).await?;
                    let shutdown = CancellationToken::new();
                    tokio::spawn(signals(shutdown.clone()));
                    pilotlight::run(daemon, listeners, shutdown).await
                })
            }
            Err(code) => code,
        },
    }
}

/// `pilotlight drill …`: exit 0, or 1 when a watched drill did not succeed.
async fn drill(config: Config, cmd: &DrillCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DrillCommand::Start {
            tiers,
            tenants,
            idempotency_key,
            watch,
            json,
            api,
        } => {
            let client = AdminClient::from_args(&config, api)?;
            let declaration = restore_cmd::Declaration {
                mode: RestoreModeArg::Drill,
                tiers: tiers.clone(),
                tenants: tenants.clone(),
                dry_run: false,
                idempotency_key: idempotency_key.clone(),
            };
            let (out, id) = drill_cmd::start(&client, &declaration, *json).await?;
            print!("{out}");
            if !*watch {
                return Ok(ExitCode::SUCCESS);
            }
            let stdout = std::io::stdout();
            let tty = stdout.is_terminal();
            let mut out = stdout.lock();
            let succeeded =
                restore_cmd::watch(&client, &id, Duration::from_millis(500), &mut out, tty).await?;
            Ok(if succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DrillCommand::List { limit, json, api } => {
            let out =
                drill_cmd::list(&AdminClient::from_args(&config, api)?, *limit, *json).await?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `pilotlight restore …`: exit 0, or 1 when a watched run did not succeed.
async fn restore(config: Config, cmd: &RestoreCommand) -> anyhow::Result<ExitCode> {
    let out = match cmd {
        RestoreCommand::Declare {
            mode,
            tiers,
            tenants,
            dry_run,
            idempotency_key,
            json,
            api,
        } => {
            let declaration = restore_cmd::Declaration {
                mode: *mode,
                tiers: tiers.clone(),
                tenants: tenants.clone(),
                dry_run: *dry_run,
                idempotency_key: idempotency_key.clone(),
            };
            let client = AdminClient::from_args(&config, api)?;
            restore_cmd::declare(&client, &declaration, *json).await?
        }
        RestoreCommand::Approve { id, api } => {
            restore_cmd::approve(&AdminClient::from_args(&config, api)?, id).await?
        }
        RestoreCommand::Cancel { id, api } => {
            restore_cmd::cancel(&AdminClient::from_args(&config, api)?, id).await?
        }
        RestoreCommand::Status { id, json, api } => {
            restore_cmd::status(&AdminClient::from_args(&config, api)?, id, *json).await?
        }
        RestoreCommand::List { limit, json, api } => {
            restore_cmd::list(&AdminClient::from_args(&config, api)?, *limit, *json).await?
        }
        RestoreCommand::Watch {
            id,
            interval_ms,
            api,
        } => {
            let client = AdminClient::from_args(&config, api)?;
            let stdout = std::io::stdout();
            let tty = stdout.is_terminal();
            let mut out = stdout.lock();
            let succeeded = restore_cmd::watch(
                &client,
                id,
                Duration::from_millis(*interval_ms),
                &mut out,
                tty,
            )
            .await?;
            return Ok(if succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn runtime(fut: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    runtime_exit(async move { fut.await.map(|()| ExitCode::SUCCESS) })
}

/// Runs `fut` on a new runtime; its exit code, or 1 after printing its error.
fn runtime_exit(fut: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            tracing::error!(error = format!("{e:#}"), "pilotlight failed");
            ExitCode::FAILURE
        }
    }
}

/// First SIGTERM/SIGINT: graceful shutdown. Second: exit now.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("signal received: shutting down (send again to exit at once)");
    shutdown.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::warn!("second signal: exiting without waiting");
    std::process::exit(130);
}
