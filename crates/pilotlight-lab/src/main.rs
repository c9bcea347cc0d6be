//! The `pilotlight-lab` command: start the lab, read its counters (calls and copies in
//! flight), inject faults, seed estates. A thin wrapper over the `pilotlight_lab` library; errors go to stderr with their
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
    /// Benchmarks; each prints JSON (record results in docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        bench: BenchCommand,
    },
    /// Start moto and the realism proxy; print the endpoint as JSON; run until Ctrl-C/SIGTERM.
    Up(UpArgs),
    /// Print a proxy's call counters and copy counters as tables.
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
    /// GiB per second a snapshot/image copy moves (before --time-scale).
    #[arg(long, default_value_t = 1.0)]
    copy_gib_per_sec: f64,
    /// Shortest copy in seconds (before --time-scale).
    #[arg(long, default_value_t = 2.0)]
    copy_min_secs: f64,
    /// Replace AWS's in-flight copy limit of a kind, `KIND=N` with KIND ebs, rds, aurora or
    /// ami (repeatable).
    #[arg(long = "copy-limit", value_parser = parse_copy_limit)]
    copy_limits: Vec<(String, u32)>,
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
    /// Seed a benchmark estate of N volumes with one snapshot each instead (see --scaled-seed).
    #[arg(long, conflicts_with = "spec")]
    scaled: Option<usize>,
    /// The generator seed for --scaled.
    #[arg(long, default_value_t = 1)]
    scaled_seed: u64,
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Steady state: a daemon tracking N already-copied snapshots — calls per no-change copy
    /// cycle, daemon RSS, and time from a new snapshot to its copy request. JSON.
    Steady {
        #[arg(long, default_value_t = 10_000)]
        snapshots: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The daemon's copy cycle in seconds.
        #[arg(long, default_value_t = 20)]
        cycle_secs: u64,
        /// The pilotlight binary (default: next to this one).
        #[arg(long)]
        daemon: Option<std::path::PathBuf>,
    },
    /// Copy-scheduler quality: worst RPO lag over a simulated day, pilotlight vs EDF vs FIFO,
    /// on synthetic estates with the in-flight limit saturated. One JSON line per estate size.
    Copy {
        /// Estate sizes (volumes), comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 3000])]
        volumes: Vec<usize>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Offered load the copy throughput is sized for (above 1: slots saturated).
        #[arg(long, default_value_t = 1.2)]
        load: f64,
        #[arg(long, default_value_t = 86_400)]
        horizon_secs: u64,
        /// Concurrent copies (AWS's EBS limit is 20).
        #[arg(long, default_value_t = 20)]
        in_flight: u32,
    },
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected K=V, got {text:?}"))
}

fn parse_copy_limit(text: &str) -> Result<(String, u32), String> {
    let (kind, n) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KIND=N, got {text:?}"))?;
    if pilotlight_lab::CopyKind::parse(kind).is_none() {
        return Err(format!(
            "unknown copy kind {kind:?}; use ebs, rds, aurora or ami"
        ));
    }
    let n = n
        .parse::<u32>()
        .map_err(|_| format!("invalid limit {n:?} in {text:?}"))?;
    Ok((kind.to_owned(), n))
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
            let spec = match (&args.spec, args.scaled) {
                (Some(path), _) => EstateSpec::load(path)?,
                (None, Some(volumes)) => EstateSpec::scaled(volumes, args.scaled_seed),
                (None, None) => EstateSpec::sample(),
            };
            let estate = seed_through(&args.endpoint, &args.region, &spec).await?;
            println!("{}", serde_json::to_string_pretty(&estate)?);
            Ok(())
        }
        Command::Bench {
            bench:
                BenchCommand::Steady {
                    snapshots,
                    seed,
                    cycle_secs,
                    daemon,
                },
        } => {
            let daemon = match daemon {
                Some(d) => d,
                None => std::env::current_exe()?
                    .parent()
                    .map(|d| d.join("pilotlight"))
                    .context("no directory for the pilotlight binary")?,
            };
            let out = pilotlight_lab::bench::steady_state(&pilotlight_lab::bench::SteadyBench {
                snapshots,
                seed,
                cycle_secs,
                daemon,
            })
            .await?;
            println!("{out}");
            Ok(())
        }
        Command::Bench {
            bench:
                BenchCommand::Copy {
                    volumes,
                    seed,
                    load,
                    horizon_secs,
                    in_flight,
                },
        } => {
            for n in volumes {
                let out =
                    pilotlight_lab::bench::copy_scheduler(&pilotlight_lab::bench::CopyBench {
                        volumes: n,
                        seed,
                        load,
                        horizon_secs,
                        in_flight,
                    });
                println!("{out}");
            }
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
    let rds = aws_sdk_rds::Client::new(&config);
    pilotlight_lab::seed_with_rds(&ec2, &rds, region, spec)
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
            copy_gib_per_sec: args.copy_gib_per_sec,
            copy_min_secs: args.copy_min_secs,
            copy_limits: args.copy_limits.into_iter().collect(),
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
            "copy_gib_per_sec": proxy.options().copy_gib_per_sec,
            "copy_min_secs": proxy.options().copy_min_secs,
            "copy_limits": proxy.options().copy_limits,
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
    if !counts.copies.is_empty() {
        out.push('\n');
        out.push_str(&copies_table(counts));
    }
    out
}

/// The copy counters: one line per (kind, destination region).
fn copies_table(counts: &CallCounts) -> String {
    let header = [
        "copies",
        "region",
        "in_flight",
        "max",
        "limit",
        "started",
        "refused",
    ];
    let rows: Vec<[String; 7]> = counts
        .copies
        .iter()
        .map(|c| {
            [
                c.kind.clone(),
                c.region.clone(),
                c.in_flight.to_string(),
                c.max_in_flight.to_string(),
                c.limit.to_string(),
                c.started.to_string(),
                c.refused.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i >= 2 {
                line.push_str(&format!("{cell:>w$}"));
            } else {
                line.push_str(&format!("{cell:<w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
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
            copies: Vec::new(),
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

        let mut with_copies = counts.clone();
        with_copies.copies.push(pilotlight_lab::CopyCount {
            kind: "ebs".into(),
            region: "us-west-2".into(),
            in_flight: 7,
            max_in_flight: 20,
            limit: 20,
            started: 31,
            refused: 4,
        });
        let table = counters_table(&with_copies);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert_eq!(lines[3], "");
        assert_eq!(
            lines[4],
            "copies  region     in_flight  max  limit  started  refused"
        );
        assert_eq!(
            lines[5],
            "ebs     us-west-2          7   20     20       31        4"
        );
    }

    #[test]
    fn up_and_seed_options() {
        let cli = Cli::try_parse_from([
            "pilotlight-lab",
            "up",
            "--copy-limit",
            "ebs=3",
            "--copy-limit",
            "aurora=1",
            "--copy-min-secs",
            "0.5",
        ])
        .expect("parse");
        let Command::Up(args) = cli.command else {
            panic!("expected up");
        };
        assert_eq!(
            args.copy_limits,
            vec![("ebs".to_owned(), 3), ("aurora".to_owned(), 1)]
        );
        assert_eq!((args.copy_min_secs, args.copy_gib_per_sec), (0.5, 1.0));
        assert!(Cli::try_parse_from(["pilotlight-lab", "up", "--copy-limit", "efs=3"]).is_err());
        assert!(Cli::try_parse_from(["pilotlight-lab", "up", "--copy-limit", "ebs"]).is_err());
        let cli = Cli::try_parse_from([
            "pilotlight-lab",
            "seed",
            "--endpoint",
            "http://127.0.0.1:1",
            "--scaled",
            "2000",
            "--scaled-seed",
            "9",
        ])
        .expect("parse");
        let Command::Seed(args) = cli.command else {
            panic!("expected seed");
        };
        assert_eq!((args.scaled, args.scaled_seed), (Some(2000), 9));
    }
}
