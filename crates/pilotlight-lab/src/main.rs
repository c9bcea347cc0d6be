//! The `pilotlight-lab` command: start the lab (with its S3 replicator), read its counters
//! (calls and copies in flight), inject faults, schedule capacity shortages, take regions down
//! and bring them back, seed estates, pause and resume replication. A thin wrapper over the
//! `pilotlight_lab` library; errors go to stderr with their causes and exit code 1 (bad usage:
//! clap's exit code 2).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use pilotlight_lab::clients::AwsClients;
use pilotlight_lab::proxy::CapacityRule;
use pilotlight_lab::proxy::DEFAULT_ACCOUNT;
use pilotlight_lab::replicator::{Replicator, ReplicatorOptions};
use pilotlight_lab::{
    CallCounts, EstateSpec, FaultAction, FaultRule, MotoServer, ProxyClient, ProxyOptions,
    RealismProxy,
};
use tokio_util::sync::CancellationToken;

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
    /// Manage capacity rules: InsufficientInstanceCapacity for an instance type in an AZ or
    /// region after a number of launches.
    Capacity {
        #[command(subcommand)]
        command: CapacityCommand,
    },
    /// Take a whole region down (every call to it gets its connection closed) or bring it
    /// back; prints the regions down as JSON.
    Region {
        #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
        endpoint: String,
        #[command(subcommand)]
        command: RegionCommand,
    },
    /// Seed an estate into a region through a proxy.
    Seed(SeedArgs),
    /// Control the S3 replicator of a running `up` (prints its status as JSON).
    Replicator {
        #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
        endpoint: String,
        #[command(subcommand)]
        command: ReplicatorCommand,
    },
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
    /// Seed an estate once up: `sample`, `case-study` (see --seed-scale) or a TOML/JSON spec
    /// file.
    #[arg(long)]
    seed: Option<String>,
    /// The scale of `--seed case-study` (1.0: 3,000 instances, 100 load balancers, …).
    #[arg(long, default_value_t = 0.01)]
    seed_scale: f64,
    /// The region to seed into.
    #[arg(long, default_value = "us-east-1")]
    seed_region: String,
    /// The DR region to seed (certificate counterparts and always-on services).
    #[arg(long, default_value = "us-west-2")]
    seed_dr_region: String,
    /// Do not run the S3 replicator (moto never replicates by itself).
    #[arg(long)]
    no_replicator: bool,
    /// Seconds an object must age before the S3 replicator copies it.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    replicator_delay_secs: Duration,
    /// The region whose buckets the S3 replicator watches.
    #[arg(long, default_value = "us-east-1")]
    replicator_primary_region: String,
    /// The region the S3 replicator signs its copies for.
    #[arg(long, default_value = "us-west-2")]
    replicator_dr_region: String,
    /// RunInstances launches MaxCount instances (capacity permitting), as AWS does, instead of
    /// moto's MinCount.
    #[arg(long)]
    launch_max_count: bool,
    /// Seconds (before --time-scale) a new instance shows `pending` before `running`; 0: off.
    #[arg(long, default_value_t = 0.0)]
    instance_pending_secs: f64,
    /// Seconds (before --time-scale) a new DB instance shows `creating`; 0: off.
    #[arg(long, default_value_t = 0.0)]
    db_creating_secs: f64,
    /// Seconds (before --time-scale) a new ELBv2 load balancer shows `provisioning`; 0: off.
    #[arg(long, default_value_t = 0.0)]
    lb_provisioning_secs: f64,
    /// Seconds (before --time-scale) a Route 53 change shows `PENDING`; 0: off.
    #[arg(long, default_value_t = 0.0)]
    dns_pending_secs: f64,
}

#[derive(Debug, Subcommand)]
enum CapacityCommand {
    /// Add a rule; prints its id.
    Add(CapacityAddArgs),
    /// Remove every rule.
    Clear {
        #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
        endpoint: String,
    },
    /// List the rules with their launches and refusals (JSON).
    List {
        #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
        endpoint: String,
    },
}

#[derive(Debug, Args)]
struct CapacityAddArgs {
    #[arg(long, env = "PILOTLIGHT_LAB_ENDPOINT")]
    endpoint: String,
    /// The instance type, e.g. r5.2xlarge.
    #[arg(long)]
    instance_type: String,
    /// The AZ, e.g. us-west-2a.
    #[arg(long = "az", required_unless_present = "region")]
    availability_zone: Option<String>,
    /// A whole region instead of one AZ.
    #[arg(long)]
    region: Option<String>,
    /// Instances that still launch before the shortage.
    #[arg(long, default_value_t = 0)]
    after_launches: u32,
    /// Instances that launch during the shortage (default none).
    #[arg(long)]
    available: Option<u32>,
    /// The shortage ends after this many refused launches (default: never by count).
    #[arg(long)]
    times: Option<u32>,
    /// The shortage ends this many seconds (before --time-scale) after it began.
    #[arg(long)]
    duration_secs: Option<f64>,
}

#[derive(Debug, Subcommand)]
enum RegionCommand {
    /// Take the region down.
    Down { region: String },
    /// Bring the region back.
    Up { region: String },
    /// List the regions down.
    List,
}

#[derive(Debug, Subcommand)]
enum ReplicatorCommand {
    /// Print the status: paused, delay, objects replicated, pending per bucket.
    Status,
    /// Stop copying (pending counts keep rising).
    Pause,
    /// Copy again.
    Resume,
    /// Set how old an object must be before it is copied.
    Delay {
        /// Seconds (fractions allowed).
        #[arg(value_parser = parse_secs)]
        secs: Duration,
    },
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
    /// A built-in estate instead: `sample` or `case-study` (see --scale).
    #[arg(long, conflicts_with_all = ["spec", "scaled"], value_parser = ESTATES)]
    estate: Option<String>,
    /// The scale of `--estate case-study` (1.0: 3,000 instances, 100 load balancers, …).
    #[arg(long, default_value_t = 0.01)]
    scale: f64,
    /// Seed a benchmark estate of N volumes with one snapshot each instead (see --scaled-seed).
    #[arg(long, conflicts_with = "spec")]
    scaled: Option<usize>,
    /// The generator seed for --scaled.
    #[arg(long, default_value_t = 1)]
    scaled_seed: u64,
    /// The primary region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The DR region (certificate counterparts and always-on services).
    #[arg(long, default_value = "us-west-2")]
    dr_region: String,
}

/// The built-in estates, by name.
const ESTATES: [&str; 2] = ["sample", "case-study"];

/// A built-in estate by name (`case-study` scaled by `scale`).
fn named_estate(name: &str, scale: f64) -> Option<EstateSpec> {
    match name {
        "sample" => Some(EstateSpec::sample()),
        "case-study" => Some(EstateSpec::case_study(scale)),
        _ => None,
    }
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
    /// A declared disaster restored by the daemon: makespan vs the API lower bound, calls per
    /// operation vs the plan's minimum and a one-call-per-resource restore, throttling,
    /// plan-B substitutions, failed items. JSON (defaults: the case study).
    Restore(RestoreArgs),
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

#[derive(Debug, Args)]
struct RestoreArgs {
    /// Instances over tiers 1/2/3 (20/30/50 %), families m5, r5, c5.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..))]
    instances: u32,
    /// Data volumes per instance (each snapshotted; DR copies pre-created).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=10))]
    volumes_per_instance: u32,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    load_balancers: u32,
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..))]
    records: u32,
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    zones: u32,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    databases: u32,
    /// AWS's refill rates and the pending times below run this many times faster.
    #[arg(long, default_value_t = 10.0)]
    time_scale: f64,
    /// Instance types short in the DR region after half their planned launches,
    /// comma-separated (default: the two with the most planned instances).
    #[arg(long, value_delimiter = ',')]
    shortage: Vec<String>,
    /// Seconds (AWS time) a new instance stays pending.
    #[arg(long, default_value_t = 90.0)]
    instance_pending_secs: f64,
    /// Seconds (AWS time) a restored DB instance stays creating.
    #[arg(long, default_value_t = 900.0)]
    db_creating_secs: f64,
    /// Seconds (AWS time) a new load balancer stays provisioning.
    #[arg(long, default_value_t = 120.0)]
    lb_provisioning_secs: f64,
    /// Seconds (AWS time) a Route 53 change stays PENDING.
    #[arg(long, default_value_t = 60.0)]
    dns_pending_secs: f64,
    /// The daemon's `restore.poll_interval_ms` (default: 5,000 divided by the time scale).
    #[arg(long)]
    poll_interval_ms: Option<u64>,
    /// Longest wait for the daemon's plan to have no problems.
    #[arg(long, default_value = "7200", value_parser = parse_secs)]
    ready_timeout_secs: Duration,
    /// Longest wait for the restore to end.
    #[arg(long, default_value = "14400", value_parser = parse_secs)]
    restore_timeout_secs: Duration,
    /// The pilotlight binary (default: next to this one).
    #[arg(long)]
    daemon: Option<std::path::PathBuf>,
}

impl RestoreArgs {
    fn bench(self, daemon: PathBuf) -> pilotlight_lab::bench::restore::RestoreBench {
        use pilotlight_lab::bench::restore::{EstateShape, PendingTimes, RestoreBench};
        let n = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        RestoreBench {
            estate: EstateShape {
                instances: n(self.instances),
                volumes_per_instance: n(self.volumes_per_instance),
                load_balancers: n(self.load_balancers),
                records: n(self.records),
                zones: n(self.zones),
                databases: n(self.databases),
            },
            time_scale: self.time_scale,
            shortage: self.shortage,
            pending: PendingTimes {
                instance_secs: self.instance_pending_secs,
                db_secs: self.db_creating_secs,
                load_balancer_secs: self.lb_provisioning_secs,
                dns_secs: self.dns_pending_secs,
            },
            poll_interval_ms: self.poll_interval_ms.unwrap_or_else(|| {
                pilotlight_lab::bench::restore::scaled_poll_interval_ms(self.time_scale)
            }),
            daemon,
            ready_timeout: self.ready_timeout_secs,
            restore_timeout: self.restore_timeout_secs,
        }
    }
}

/// The `pilotlight` binary: `given`, else the one next to this binary.
fn daemon_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("pilotlight"))
            .context("no directory for the pilotlight binary"),
    }
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

fn parse_secs(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("expected a number of seconds >= 0, got {text:?}"))
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
        Command::Capacity { command } => match command {
            CapacityCommand::Add(args) => {
                let rule = CapacityRule {
                    instance_type: args.instance_type,
                    availability_zone: args.availability_zone,
                    region: args.region,
                    after_launches: args.after_launches,
                    available: args.available,
                    times: args.times,
                    duration_secs: args.duration_secs,
                };
                let id = ProxyClient::new(&args.endpoint)?
                    .add_capacity_rule(&rule)
                    .await?;
                println!("{id}");
                Ok(())
            }
            CapacityCommand::Clear { endpoint } => {
                ProxyClient::new(&endpoint)?.clear_capacity_rules().await?;
                Ok(())
            }
            CapacityCommand::List { endpoint } => {
                let rules = ProxyClient::new(&endpoint)?.capacity_rules().await?;
                println!("{}", serde_json::to_string_pretty(&rules)?);
                Ok(())
            }
        },
        Command::Region { endpoint, command } => {
            let client = ProxyClient::new(&endpoint)?;
            let regions = match command {
                RegionCommand::Down { region } => client.region_down(&region).await?,
                RegionCommand::Up { region } => client.region_up(&region).await?,
                RegionCommand::List => client.regions_down().await?,
            };
            println!("{}", serde_json::to_string_pretty(&regions)?);
            Ok(())
        }
        Command::Replicator { endpoint, command } => {
            let client = ProxyClient::new(&endpoint)?;
            let status = match command {
                ReplicatorCommand::Status => client.replicator_status().await?,
                ReplicatorCommand::Pause => client.pause_replicator().await?,
                ReplicatorCommand::Resume => client.resume_replicator().await?,
                ReplicatorCommand::Delay { secs } => client.set_replicator_delay(secs).await?,
            };
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
        Command::Seed(args) => {
            let spec = match (&args.spec, args.scaled, args.estate.as_deref()) {
                (Some(path), _, _) => EstateSpec::load(path)?,
                (None, Some(volumes), _) => EstateSpec::scaled(volumes, args.scaled_seed),
                (None, None, Some(name)) => named_estate(name, args.scale)
                    .with_context(|| format!("unknown estate {name:?}"))?,
                (None, None, None) => EstateSpec::sample(),
            };
            let estate = seed_through(&args.endpoint, &args.region, &args.dr_region, &spec).await?;
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
            let daemon = daemon_binary(daemon)?;
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
            bench: BenchCommand::Restore(args),
        } => {
            let daemon = daemon_binary(args.daemon.clone())?;
            let out = pilotlight_lab::bench::restore::restore(&args.bench(daemon)).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
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

/// Seeds all of `spec` ([`pilotlight_lab::seed::seed_estate`]): `region` is the primary,
/// `dr_region` gets the certificate counterparts and the always-on services.
async fn seed_through(
    endpoint: &str,
    region: &str,
    dr_region: &str,
    spec: &EstateSpec,
) -> anyhow::Result<pilotlight_lab::SeededEstate> {
    let primary = AwsClients::for_endpoint(endpoint, region).await;
    let dr = AwsClients::for_endpoint(endpoint, dr_region).await;
    let estate = pilotlight_lab::seed::seed_estate(&primary, &dr, spec)
        .await
        .with_context(|| format!("seeding {region} (DR {dr_region}) through {endpoint}"))?;
    // Two weeks of hourly utilisation for every fleet instance (memory for every other one),
    // so plan B has history to read.
    use pilotlight_lab::seed::metrics::{Profile, UtilisationSeries, put_utilisation};
    let series: Vec<UtilisationSeries> = estate
        .fleets
        .values()
        .flatten()
        .enumerate()
        .map(|(i, inst)| {
            let n = u64::try_from(i).unwrap_or(0);
            let spread = f64::from(u32::try_from(i % 7).unwrap_or(0));
            UtilisationSeries {
                instance_id: inst.id.clone(),
                days: 14,
                period_secs: 3600,
                cpu: Profile {
                    base_pct: 5.0 + spread,
                    peak_pct: 35.0 + 8.0 * spread,
                    seed: n,
                },
                memory: (i % 2 == 0).then_some(Profile {
                    base_pct: 30.0,
                    peak_pct: 55.0 + 4.0 * spread,
                    seed: n + 1000,
                }),
            }
        })
        .collect();
    if !series.is_empty() {
        put_utilisation(&primary.cloudwatch, &series, std::time::SystemTime::now())
            .await
            .with_context(|| format!("writing utilisation history in {region}"))?;
    }
    Ok(estate)
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let spec = match args.seed.as_deref() {
        None => None,
        Some(name) => match named_estate(name, args.seed_scale) {
            Some(spec) => Some(spec),
            None => Some(EstateSpec::load(std::path::Path::new(name))?),
        },
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
            launch_max_count: args.launch_max_count,
            instance_pending_secs: args.instance_pending_secs,
            db_creating_secs: args.db_creating_secs,
            lb_provisioning_secs: args.lb_provisioning_secs,
            dns_pending_secs: args.dns_pending_secs,
        },
    )
    .await?;
    let replicator = if args.no_replicator {
        None
    } else {
        let replicator = Replicator::start_uncounted(
            moto.addr(),
            None,
            &args.replicator_primary_region,
            &args.replicator_dr_region,
            ReplicatorOptions {
                delay: args.replicator_delay_secs,
                ..ReplicatorOptions::default()
            },
            &CancellationToken::new(),
        )
        .await?;
        proxy.set_replicator(Some(replicator.control()));
        Some(replicator)
    };
    let seeded = match &spec {
        Some(spec) => Some(
            seed_through(
                &proxy.endpoint(),
                &args.seed_region,
                &args.seed_dr_region,
                spec,
            )
            .await?,
        ),
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
            "launch_max_count": proxy.options().launch_max_count,
            "instance_pending_secs": proxy.options().instance_pending_secs,
            "db_creating_secs": proxy.options().db_creating_secs,
            "lb_provisioning_secs": proxy.options().lb_provisioning_secs,
            "dns_pending_secs": proxy.options().dns_pending_secs,
            "replicator": replicator.as_ref().map(|_| serde_json::json!({
                "delay_secs": args.replicator_delay_secs.as_secs_f64(),
                "primary_region": args.replicator_primary_region,
                "dr_region": args.replicator_dr_region,
            })),
            "seeded": seeded,
        })
    );
    wait_for_shutdown_signal().await?;
    if let Some(replicator) = replicator {
        replicator.shutdown().await;
    }
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

    #[test]
    fn seed_takes_built_in_estates_by_name() {
        let parse = |extra: &[&str]| {
            let mut all = vec!["pilotlight-lab", "seed", "--endpoint", "http://127.0.0.1:1"];
            all.extend_from_slice(extra);
            Cli::try_parse_from(all)
        };
        let Command::Seed(args) = parse(&[
            "--estate",
            "case-study",
            "--scale",
            "0.05",
            "--dr-region",
            "eu-west-1",
        ])
        .expect("parse")
        .command
        else {
            panic!("expected seed");
        };
        assert_eq!(args.estate.as_deref(), Some("case-study"));
        assert_eq!((args.scale, args.dr_region.as_str()), (0.05, "eu-west-1"));
        let Command::Seed(args) = parse(&[]).expect("parse").command else {
            panic!("expected seed");
        };
        assert_eq!((args.scale, args.dr_region.as_str()), (0.01, "us-west-2"));
        assert!(parse(&["--estate", "everything"]).is_err());
        assert!(parse(&["--estate", "sample", "--spec", "x.toml"]).is_err());
        assert!(parse(&["--estate", "sample", "--scaled", "10"]).is_err());
        for name in ESTATES {
            let spec = named_estate(name, 0.01).expect("built in");
            spec.validate().expect("valid");
            assert!(!spec.fleets.is_empty(), "{name}");
        }
        assert_eq!(named_estate("sample", 5.0), Some(EstateSpec::sample()));
        assert!(named_estate("estate.toml", 1.0).is_none());
        let Command::Up(args) = Cli::try_parse_from([
            "pilotlight-lab",
            "up",
            "--seed",
            "case-study",
            "--seed-scale",
            "0.02",
        ])
        .expect("parse")
        .command
        else {
            panic!("expected up");
        };
        assert_eq!(args.seed.as_deref(), Some("case-study"));
        assert_eq!(
            (args.seed_scale, args.seed_dr_region.as_str()),
            (0.02, "us-west-2")
        );
    }

    #[test]
    fn capacity_and_region_command_lines() {
        let cli = Cli::try_parse_from([
            "pilotlight-lab",
            "capacity",
            "add",
            "--endpoint",
            "http://127.0.0.1:1",
            "--instance-type",
            "r5.2xlarge",
            "--az",
            "us-west-2a",
            "--after-launches",
            "3",
            "--available",
            "2",
            "--duration-secs",
            "600",
        ])
        .expect("parse");
        let Command::Capacity {
            command: CapacityCommand::Add(args),
        } = cli.command
        else {
            panic!("expected capacity add");
        };
        assert_eq!(args.instance_type, "r5.2xlarge");
        assert_eq!(args.availability_zone.as_deref(), Some("us-west-2a"));
        assert_eq!(
            (
                args.after_launches,
                args.available,
                args.times,
                args.duration_secs
            ),
            (3, Some(2), None, Some(600.0))
        );
        // A region instead of an AZ; one of them is required.
        let cli = Cli::try_parse_from([
            "pilotlight-lab",
            "capacity",
            "add",
            "--endpoint",
            "x",
            "--instance-type",
            "m5.large",
            "--region",
            "us-west-2",
        ])
        .expect("parse");
        let Command::Capacity {
            command: CapacityCommand::Add(args),
        } = cli.command
        else {
            panic!("expected capacity add");
        };
        assert_eq!(
            (
                args.availability_zone,
                args.region.as_deref(),
                args.after_launches
            ),
            (None, Some("us-west-2"), 0)
        );
        assert!(
            Cli::try_parse_from([
                "pilotlight-lab",
                "capacity",
                "add",
                "--endpoint",
                "x",
                "--instance-type",
                "m5.large"
            ])
            .is_err()
        );
        for (words, want) in [
            (vec!["down", "us-east-1"], "Down { region: \"us-east-1\" }"),
            (vec!["up", "us-east-1"], "Up { region: \"us-east-1\" }"),
            (vec!["list"], "List"),
        ] {
            let mut all = vec![
                "pilotlight-lab",
                "region",
                "--endpoint",
                "http://127.0.0.1:1",
            ];
            all.extend(words);
            let Command::Region { command, .. } = Cli::try_parse_from(all).expect("parse").command
            else {
                panic!("expected region");
            };
            assert_eq!(format!("{command:?}"), want);
        }
        assert!(
            Cli::try_parse_from(["pilotlight-lab", "region", "--endpoint", "x", "down"]).is_err()
        );
        let Command::Up(args) = Cli::try_parse_from([
            "pilotlight-lab",
            "up",
            "--launch-max-count",
            "--instance-pending-secs",
            "30",
            "--dns-pending-secs",
            "60",
        ])
        .expect("parse")
        .command
        else {
            panic!("expected up");
        };
        assert!(args.launch_max_count);
        assert_eq!(
            (
                args.instance_pending_secs,
                args.db_creating_secs,
                args.lb_provisioning_secs,
                args.dns_pending_secs
            ),
            (30.0, 0.0, 0.0, 60.0)
        );
    }

    #[test]
    fn bench_restore_command_line() {
        let cli = Cli::try_parse_from([
            "pilotlight-lab",
            "bench",
            "restore",
            "--instances",
            "60",
            "--load-balancers",
            "4",
            "--records",
            "100",
            "--databases",
            "3",
            "--shortage",
            "r5.2xlarge,m5.xlarge",
            "--time-scale",
            "20",
        ])
        .expect("parse");
        let Command::Bench {
            bench: BenchCommand::Restore(args),
        } = cli.command
        else {
            panic!("expected bench restore");
        };
        let b = args.bench(PathBuf::from("/bin/pilotlight"));
        assert_eq!(
            (
                b.estate.instances,
                b.estate.volumes_per_instance,
                b.estate.zones
            ),
            (60, 2, 4)
        );
        assert_eq!(b.shortage, ["r5.2xlarge", "m5.xlarge"]);
        assert_eq!((b.time_scale, b.pending.db_secs), (20.0, 900.0));
        assert_eq!(b.poll_interval_ms, 250);
        assert_eq!(b.restore_timeout, Duration::from_secs(14_400));
        let Command::Bench {
            bench: BenchCommand::Restore(args),
        } = Cli::try_parse_from(["pilotlight-lab", "bench", "restore"])
            .expect("parse")
            .command
        else {
            panic!("expected bench restore");
        };
        assert_eq!(
            args.bench(PathBuf::new()).estate,
            pilotlight_lab::bench::restore::EstateShape::CASE_STUDY
        );
        for bad in [
            ["--instances", "0"],
            ["--volumes-per-instance", "11"],
            ["--zones", "0"],
        ] {
            let mut all = vec!["pilotlight-lab", "bench", "restore"];
            all.extend(bad);
            assert!(Cli::try_parse_from(all).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replicator_command_lines() {
        let parse = |args: &[&str]| {
            let mut all = vec![
                "pilotlight-lab",
                "replicator",
                "--endpoint",
                "http://127.0.0.1:1",
            ];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
        };
        let Command::Replicator { endpoint, command } =
            parse(&["delay", "2.5"]).expect("parse").command
        else {
            panic!("expected replicator");
        };
        assert_eq!(endpoint, "http://127.0.0.1:1");
        assert!(
            matches!(command, ReplicatorCommand::Delay { secs } if secs == Duration::from_millis(2500))
        );
        for (words, want) in [
            ("status", "Status"),
            ("pause", "Pause"),
            ("resume", "Resume"),
        ] {
            let Command::Replicator { command, .. } = parse(&[words]).expect("parse").command
            else {
                panic!("expected replicator");
            };
            assert_eq!(format!("{command:?}"), want);
        }
        assert!(parse(&["delay", "-1"]).is_err());
        assert!(parse(&["delay", "soon"]).is_err());
        assert!(parse(&["explode"]).is_err());

        let Command::Up(args) = Cli::try_parse_from(["pilotlight-lab", "up"])
            .expect("parse")
            .command
        else {
            panic!("expected up");
        };
        assert!(!args.no_replicator);
        assert_eq!(args.replicator_delay_secs, Duration::from_secs(5));
        assert_eq!(
            (
                args.replicator_primary_region.as_str(),
                args.replicator_dr_region.as_str()
            ),
            ("us-east-1", "us-west-2")
        );
        let Command::Up(args) = Cli::try_parse_from([
            "pilotlight-lab",
            "up",
            "--no-replicator",
            "--replicator-delay-secs",
            "0.25",
        ])
        .expect("parse")
        .command
        else {
            panic!("expected up");
        };
        assert!(args.no_replicator);
        assert_eq!(args.replicator_delay_secs, Duration::from_millis(250));
    }
}
