//! `pilotlight`: parses flags, loads the config (exit 64 on a bad one), starts telemetry and
//! hands over to [`pilotlight::run`]. A first SIGTERM/SIGINT starts a graceful shutdown; a
//! second one exits at once.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use pilotlight::cli::{Cli, Command, ConfigCommand};
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

fn runtime(fut: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
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
        Ok(()) => ExitCode::SUCCESS,
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
