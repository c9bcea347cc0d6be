//! The `pilotlight-lab` command: start the lab, read its counters, inject faults, seed
//! estates. A thin wrapper over the `pilotlight_lab` library; errors go to stderr with their
//! causes and exit code 1 (bad usage: clap's exit code 2).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use pilotlight_lab::proxy::DEFAULT_ACCOUNT;
use pilotlight_lab::{
    CallCounts, EstateSpec, FaultAction, FaultRule, MotoServer, ProxyClient, ProxyOptions,
    RealismProxy,
};

#[derive(Debug, Parser)]
#[command(
    name = "pilotlight-lab",
    version,
    about = "pilotlight's AWS lab: moto behind a realism proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start moto and the realism proxy; print the endpoint as JSON; run until Ctrl-C/SIGTERM.
    Up(UpArgs),
    /// Print a proxy's call counters as a table.
    Counters {
        #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
        endpoint: String,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Manage fault rules.
    Fault {
        #[command(subcommand)]
        command: FaultCommand,
    },
    /// Seed an estate into a region through a proxy.
    Seed(SeedArgs),
    /// Add one subnet to an existing VPC (for showing the mirror pick up a change).
    AddSubnet {
        /// A proxy or moto endpoint.
        #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
        endpoint: String,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        #[arg(long)]
        vpc_id: String,
        #[arg(long)]
        cidr: String,
        /// Full AZ name, e.g. us-east-1b.
        #[arg(long)]
        az: String,
    },
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Multiply every rate-limit refill by this factor.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Do not enforce AWS's rate limits.
    #[arg(long)]
    no_limits: bool,
    /// Seed an estate once up: `sample` or a TOML/JSON spec file.
    #[arg(long)]
    seed: Option<String>,
    /// The region to seed into.
    #[arg(long, default_value = "us-east-1")]
    seed_region: String,
}

#[derive(Debug, Subcommand)]
enum FaultCommand {
    /// Add a rule; prints its id.
    Add(FaultAddArgs),
    /// Remove every rule.
    Clear {
        #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
        endpoint: String,
    },
    /// List the rules with their hit counts (JSON).
    List {
        #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
        endpoint: String,
    },
}

#[derive(Debug, Args)]
struct FaultAddArgs {
    #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
    endpoint: String,
    #[arg(long)]
    service: Option<String>,
    #[arg(long)]
    operation: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// A parameter that must match, `K=V` (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// throttle | capacity | 5xx[:STATUS] | latency:MS | drop | error:STATUS:CODE[:MESSAGE]
    #[arg(long)]
    action: FaultAction,
    /// Fire at most N times (default: forever).
    #[arg(long)]
    times: Option<u32>,
}

#[derive(Debug, Args)]
struct SeedArgs {
    #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
    endpoint: String,
    /// A TOML/JSON estate spec (default: the built-in sample).
    #[arg(long)]
    spec: Option<PathBuf>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected K=V, got {text:?}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,pilotlight_lab=info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up(args).await,
        Command::Counters { endpoint, json } => {
            let counts = ProxyClient::new(&endpoint)?.counters().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&counts)?);
            } else {
                print!("{}", counters_table(&counts));
            }
            Ok(())
        }
        Command::Fault { command } => match command {
            FaultCommand::Add(args) => {
                let rule = FaultRule {
                    service: args.service,
                    operation: args.operation,
                    region: args.region,
                    params: args.params,
                    action: args.action,
                    times: args.times,
                };
                let id = ProxyClient::new(&args.endpoint)?.add_fault(&rule).await?;
                println!("{id}");
                Ok(())
            }
            FaultCommand::Clear { endpoint } => {
                ProxyClient::new(&endpoint)?.clear_faults().await?;
                Ok(())
            }
            FaultCommand::List { endpoint } => {
                let faults = ProxyClient::new(&endpoint)?.faults().await?;
                println!("{}", serde_json::to_string_pretty(&faults)?);
                Ok(())
            }
        },
        Command::Seed(args) => {
            let spec = match &args.spec {
                Some(path) => EstateSpec::load(path)?,
                None => EstateSpec::sample(),
            };
            let estate = seed_through(&args.endpoint, &args.region, &spec).await?;
            println!("{}", serde_json::to_string_pretty(&estate)?);
            Ok(())
        }
        Command::AddSubnet {
            endpoint,
            region,
            vpc_id,
            cidr,
            az,
        } => {
            let config = pilotlight_aws::sdk::static_sdk_config(&endpoint, &region).await;
            let ec2 = aws_sdk_ec2::Client::new(&config);
            let id = pilotlight_lab::add_subnet(&ec2, &vpc_id, &cidr, &az)
                .await
                .with_context(|| format!("adding {cidr} to {vpc_id} in {region}"))?;
            println!("{id}");
            Ok(())
        }
    }
}

async fn seed_through(
    endpoint: &str,
    region: &str,
    spec: &EstateSpec,
) -> anyhow::Result<pilotlight_lab::SeededEstate> {
    let config = pilotlight_aws::sdk::static_sdk_config(endpoint, region).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    pilotlight_lab::seed(&ec2, region, spec)
        .await
        .with_context(|| format!("seeding {region} through {endpoint}"))
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let spec = match args.seed.as_deref() {
        None => None,
        Some("sample") => Some(EstateSpec::sample()),
        Some(path) => Some(EstateSpec::load(std::path::Path::new(path))?),
    };
    let mut moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .context("moto start-up thread")??;
    let proxy = RealismProxy::start(
        moto.addr(),
        ProxyOptions {
            time_scale: args.time_scale,
            enforce_limits: !args.no_limits,
            account_id: None,
        },
    )
    .await?;
    let seeded = match &spec {
        Some(spec) => Some(seed_through(&proxy.endpoint(), &args.seed_region, spec).await?),
        None => None,
    };
    println!(
        "{}",
        serde_json::json!({
            "endpoint": proxy.endpoint(),
            "moto_pid": moto.pid(),
            "moto_endpoint": moto.endpoint(),
            "account_id": DEFAULT_ACCOUNT,
            "time_scale": args.time_scale,
            "enforce_limits": !args.no_limits,
            "seeded": seeded,
        })
    );
    wait_for_shutdown_signal().await?;
    proxy.shutdown().await;
    moto.stop()?;
    Ok(())
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn counters_table(counts: &CallCounts) -> String {
    let header = [
        "service",
        "operation",
        "region",
        "mutating",
        "calls",
        "throttled",
        "faulted",
    ];
    let rows: Vec<[String; 7]> = counts
        .rows
        .iter()
        .map(|r| {
            [
                r.service.clone(),
                r.operation.clone(),
                r.region.clone(),
                if r.mutating { "yes" } else { "no" }.to_owned(),
                r.calls.to_string(),
                r.throttled.to_string(),
                r.faulted.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            // Numbers right-aligned, text left-aligned.
            if i >= 4 {
                out.push_str(&format!("{cell:>w$}"));
            } else {
                out.push_str(&format!("{cell:<w$}"));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header.map(str::to_owned));
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str(&format!(
        "total {} calls, {} throttled\n",
        counts.total(),
        counts.throttled_total()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilotlight_lab::CallCount;

    #[test]
    fn params_parse() {
        assert_eq!(
            parse_param("InstanceType=r5.2xlarge"),
            Ok(("InstanceType".into(), "r5.2xlarge".into()))
        );
        assert_eq!(parse_param("K=a=b"), Ok(("K".into(), "a=b".into())));
        assert!(parse_param("nokey").is_err());
        assert!(parse_param("=v").is_err());
    }

    #[test]
    fn fault_add_command_line() {
        let cli = Cli::try_parse_from([
            "pilotlight-lab",
            "fault",
            "add",
            "--endpoint",
            "http://127.0.0.1:1",
            "--service",
            "ec2",
            "--operation",
            "RunInstances",
            "--param",
            "InstanceType=r5.2xlarge",
            "--action",
            "latency:250",
            "--times",
            "3",
        ])
        .expect("parse");
        let Command::Fault {
            command: FaultCommand::Add(args),
        } = cli.command
        else {
            panic!("expected fault add");
        };
        assert_eq!(args.action, FaultAction::Latency { ms: 250 });
        assert_eq!(
            args.params,
            vec![("InstanceType".to_owned(), "r5.2xlarge".to_owned())]
        );
        assert_eq!(args.times, Some(3));
        assert!(
            Cli::try_parse_from([
                "pilotlight-lab",
                "fault",
                "add",
                "--endpoint",
                "x",
                "--action",
                "boom"
            ])
            .is_err()
        );
    }

    #[test]
    fn table_lists_rows_and_totals() {
        let counts = CallCounts {
            rows: vec![CallCount {
                service: "ec2".into(),
                operation: "RunInstances".into(),
                region: "us-west-2".into(),
                mutating: true,
                calls: 12,
                throttled: 2,
                faulted: 0,
            }],
        };
        let table = counters_table(&counts);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("service  operation"));
        assert!(lines[1].starts_with("ec2      RunInstances  us-west-2  yes"));
        assert_eq!(lines[2], "total 12 calls, 2 throttled");
    }
}
