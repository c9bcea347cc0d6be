//! Benchmarks (`pilotlight-lab bench …`). Each prints one JSON document per measurement so
//! results can be recorded in `docs/benchmarks.md` and compared across versions.
//!
//! `bench copy` measures the copy scheduler's quality: on a synthetic estate (mixed tiers and
//! sizes, snapshots four times per RPO period), with the EBS in-flight limit saturated, the worst
//! RPO lag over a simulated day under pilotlight's production scheduler
//! ([`pilotlight_core::copy::pick`]) versus an earliest-deadline-first reference and FIFO. The
//! copy throughput is chosen so the offered load (copy work per slot-second) is `load`.
//!
//! `bench steady` measures a daemon tracking already-copied snapshots ([`steady_state`]), and
//! `bench restore` a declared disaster restored by the daemon against the lab
//! ([`restore::restore`]).

pub mod restore;

use std::time::Instant;

use pilotlight_core::copy::sim::{Policy, SimConfig, offered_load, simulate, synthetic};
use serde_json::{Value, json};

/// The SPEC's target: worst lag within 1.1× of the EDF reference.
pub const COPY_TARGET_RATIO: f64 = 1.1;

/// Parameters of one copy-scheduler run.
#[derive(Debug, Clone)]
pub struct CopyBench {
    pub volumes: usize,
    pub seed: u64,
    /// Offered load to size the copy throughput for (1.0 = slots busy all the time on average).
    pub load: f64,
    pub horizon_secs: u64,
    pub in_flight: u32,
}

/// Runs the three policies on one synthetic estate and reports the ratios.
pub fn copy_scheduler(b: &CopyBench) -> Value {
    let start = Instant::now();
    let estate = synthetic(b.seed, b.volumes);
    let mut cfg = SimConfig {
        horizon_secs: b.horizon_secs,
        in_flight: b.in_flight,
        gib_per_sec_per_copy: 1.0,
        ..SimConfig::default()
    };
    // Offered load is inversely proportional to the throughput: solve for the target load.
    let at_one = offered_load(&estate, &cfg);
    if b.load > 0.0 && at_one.is_finite() && at_one > 0.0 {
        cfg.gib_per_sec_per_copy = at_one / b.load;
    }
    let results: Vec<_> = Policy::ALL
        .iter()
        .map(|p| simulate(&estate, &cfg, *p))
        .collect();
    let worst = |name: &str| {
        results
            .iter()
            .find(|r| r.policy == name)
            .map_or(0, |r| r.worst_lag_secs)
    };
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            if a == 0 { 1.0 } else { f64::INFINITY }
        } else {
            a as f64 / b as f64
        }
    };
    let edf = worst("edf");
    let pilotlight_vs_edf = ratio(worst("pilotlight"), edf);
    json!({
        "bench": "copy_scheduler",
        "volumes": b.volumes,
        "seed": b.seed,
        "in_flight": b.in_flight,
        "horizon_secs": b.horizon_secs,
        "offered_load": offered_load(&estate, &cfg),
        "gib_per_sec_per_copy": cfg.gib_per_sec_per_copy,
        "results": results,
        "pilotlight_vs_edf": pilotlight_vs_edf,
        "fifo_vs_edf": ratio(worst("fifo"), edf),
        "target_ratio": COPY_TARGET_RATIO,
        "target_met": pilotlight_vs_edf <= COPY_TARGET_RATIO,
        "elapsed_ms": start.elapsed().as_millis() as u64,
    })
}

/// Parameters of the steady-state run.
#[derive(Debug, Clone)]
pub struct SteadyBench {
    /// Protected volumes, one snapshot each, each already copied to the DR region.
    pub snapshots: usize,
    pub seed: u64,
    /// The daemon's copy cycle, seconds (the new-snapshot latency is bounded by it).
    pub cycle_secs: u64,
    /// The `pilotlight` binary to run.
    pub daemon: std::path::PathBuf,
}

/// `bench steady`: a daemon tracking `snapshots` already-copied snapshots. Measures the calls a
/// no-change copy cycle makes (SPEC: list pages only, no per-resource calls), the daemon's RSS
/// (SPEC: under 150 MiB at 10,000), and the time from a new primary snapshot to its DR copy
/// being requested.
///
/// # Errors
/// Lab, seeding or daemon failures, with context.
pub async fn steady_state(b: &SteadyBench) -> anyhow::Result<Value> {
    use std::collections::BTreeMap;

    use anyhow::Context as _;
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    use futures::stream::{self, TryStreamExt};

    use crate::{EstateSpec, Lab, ProxyOptions, RealismProxy};

    const PRIMARY: &str = "us-east-1";
    const DR: &str = "us-west-2";
    let lab = Lab::shared().await?;
    let session = lab
        .new_session(ProxyOptions {
            copy_min_secs: 0.5,
            ..ProxyOptions::default()
        })
        .await?;
    let door = RealismProxy::start(
        lab.moto().addr(),
        ProxyOptions {
            enforce_limits: false,
            account_id: Some(session.account_id().to_owned()),
            ..ProxyOptions::default()
        },
    )
    .await?;
    // Listing 10,000 snapshots costs moto tens of seconds: generous timeouts, no retries.
    let mut settings = pilotlight_aws::AwsSettings::lab(&door.endpoint());
    settings.max_attempts = 1;
    settings.operation_timeout = std::time::Duration::from_secs(600);
    let ec2 = |region: &'static str| {
        let settings = settings.clone();
        async move {
            aws_sdk_ec2::Client::new(&pilotlight_aws::sdk::sdk_config(&settings, region).await)
        }
    };
    let primary = ec2(PRIMARY).await;
    let dr = ec2(DR).await;

    // 1. The estate: N volumes with one snapshot each, and their DR copies already made.
    let t = Instant::now();
    let estate = crate::seed(&primary, PRIMARY, &EstateSpec::scaled(b.snapshots, b.seed))
        .await
        .context("seeding the primary")?;
    let listed = primary.describe_snapshots().send().await?;
    let created: BTreeMap<String, (String, i64)> = listed
        .snapshots()
        .iter()
        .filter_map(|s| {
            Some((
                s.snapshot_id()?.to_owned(),
                (s.volume_id()?.to_owned(), s.start_time()?.to_millis().ok()?),
            ))
        })
        .collect();
    let dr_volume = dr
        .create_volume()
        .availability_zone("us-west-2a")
        .size(8)
        .send()
        .await?
        .volume_id()
        .unwrap_or_default()
        .to_owned();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    stream::iter(created.iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(8, |(snap, (volume, ms))| {
            let dr = dr.clone();
            let dr_volume = dr_volume.clone();
            let spec = TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(tag("pilotlight:managed", "true"))
                .tags(tag("pilotlight:source", snap))
                .tags(tag("pilotlight:resource", volume))
                .tags(tag("pilotlight:source-created-ms", &ms.to_string()))
                .build();
            async move {
                dr.create_snapshot()
                    .volume_id(dr_volume)
                    .tag_specifications(spec)
                    .send()
                    .await?;
                Ok(())
            }
        })
        .await
        .context("pre-creating the DR copies")?;
    let seed_secs = t.elapsed().as_secs_f64();

    // 2. The daemon, as a separate process so its RSS is its own.
    let dir = tempfile_dir()?;
    let port = |()| -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (api_port, metrics_port) = (port(())?, port(())?);
    std::fs::write(dir.join("key"), "testing\n")?;
    std::fs::write(dir.join("token"), "bench-token\n")?;
    let config = format!(
        r#"[aws]
endpoint_url = "{endpoint}"
access_key_id_file = "{dir}/key"
secret_access_key_file = "{dir}/key"
operation_timeout_secs = 600
[store]
url = "sqlite://{dir}/pilotlight.db"
[api]
listen = "127.0.0.1:{api_port}"
metrics_listen = "127.0.0.1:{metrics_port}"
[[api.tokens]]
name = "bench"
role = "operator"
token_file = "{dir}/token"
[reconcile]
cycle_secs = 3600
[copy]
cycle_secs = {cycle}
rds = false
rds_clusters = false
amis = false
# The benchmark measures the copy reconciler's steady state alone.
[inventory]
enabled = false
[log]
level = "warn"
"#,
        endpoint = session.endpoint(),
        dir = dir.display(),
        cycle = b.cycle_secs,
    );
    std::fs::write(dir.join("pilotlight.toml"), config)?;
    let mut child = tokio::process::Command::new(&b.daemon)
        .arg("--config")
        .arg(dir.join("pilotlight.toml"))
        .arg("run")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", b.daemon.display()))?;
    let pid = child.id().unwrap_or_default();
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], api_port));
    let runs = || async move {
        let (_, body) = http(api, "GET", "/v1/status", None)
            .await
            .unwrap_or_default();
        let status: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        status["reconcilers"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == "ebs_snapshot").cloned())
            .filter(|r| r["state"] == "idle")
            .and_then(|r| Some((r["runs"].as_u64()?, r)))
    };
    let wait_runs = |n: u64, secs: u64| async move {
        let deadline = Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some((r, st)) = runs().await
                && r >= n
            {
                return Ok::<Value, anyhow::Error>(st);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "ebs_snapshot run {n} not done in {secs} s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    let t = Instant::now();
    let first = wait_runs(1, 3600).await?;
    let first_cycle_secs = t.elapsed().as_secs_f64();

    // 3. A cycle with nothing new.
    session.proxy().reset_counters();
    let steady = wait_runs(2, b.cycle_secs * 3 + 600).await?;
    let counts = session.proxy().counters();
    let by_operation: BTreeMap<String, u64> = counts
        .rows
        .iter()
        .filter(|r| r.service == "ec2")
        .map(|r| (format!("{} {}", r.operation, r.region), r.calls))
        .collect();
    let mutating: u64 = counts
        .rows
        .iter()
        .filter(|r| r.mutating)
        .map(|r| r.calls)
        .sum();
    let (rss, hwm) = rss_mib(pid);

    // 4. A new snapshot: time until its copy is requested.
    let (volume, _) = estate
        .volumes
        .values()
        .next()
        .map(|v| (v.id.clone(), ()))
        .context("no volume seeded")?;
    let before = session.proxy().counters().count("ec2", "CopySnapshot", DR);
    let t = Instant::now();
    crate::add_snapshot(&primary, &volume, &BTreeMap::new()).await?;
    let deadline = Instant::now() + std::time::Duration::from_secs(b.cycle_secs * 3 + 120);
    while session.proxy().counters().count("ec2", "CopySnapshot", DR) == before {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the new snapshot's copy never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let latency = t.elapsed().as_secs_f64();
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "bench": "steady_state",
        "snapshots": b.snapshots,
        "copy_cycle_secs": b.cycle_secs,
        "seed_secs": seed_secs,
        "first_cycle": {"secs": first_cycle_secs, "report": first["last_report"]},
        "steady_cycle": {
            "calls_total": counts.total(),
            "mutating_calls": mutating,
            "calls_by_operation": by_operation,
            "report": steady["last_report"],
        },
        "daemon_rss_mib": rss,
        "daemon_peak_rss_mib": hwm,
        "rss_target_mib": 150,
        "new_snapshot_to_copy_requested_secs": latency,
    }))
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("pilotlight-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// VmRSS and VmHWM of a process, in MiB (0 when unreadable).
fn rss_mib(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A minimal HTTP/1.1 exchange on loopback (`Connection: close`, the bench's operator
/// token): status and body (de-chunked when the answer is chunked).
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer bench-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = find(&raw, b"\r\n\r\n");
    let (head, rest) = match split {
        Some(at) => (&raw[..at], &raw[at + 4..]),
        None => (&raw[..], &[][..]),
    };
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The body of a `Transfer-Encoding: chunked` answer (sizes in hex, extensions ignored).
fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(s, b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_every_policy_and_meets_the_target() {
        let out = copy_scheduler(&CopyBench {
            volumes: 60,
            seed: 7,
            load: 0.9,
            horizon_secs: 6 * 3600,
            in_flight: 5,
        });
        let results = out["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(results.len(), 3);
        let load = out["offered_load"].as_f64().unwrap_or_default();
        assert!((load - 0.9).abs() < 0.01, "load {load}");
        assert_eq!(out["target_met"], true, "{out}");
        assert!(
            out["fifo_vs_edf"].as_f64().is_some_and(f64::is_finite),
            "{out}"
        );
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n"),
            b"Wikipedia "
        );
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }
}
