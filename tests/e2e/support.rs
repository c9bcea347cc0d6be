//! Shared fixtures of the end-to-end tests.
//!
//! A [`World`] is one lab session (its own proxy and AWS account on the process's shared moto)
//! plus a second proxy for the *same* account through which tests seed and inspect the estate.
//! The daemon only ever talks to the session's proxy, so that proxy's counters are exactly the
//! daemon's calls: "zero mutating calls to the primary" is asserted on them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use pilotlight::{Daemon, Listeners};
use pilotlight_core::config::Config;
use pilotlight_lab::{Lab, LabSession, ProxyHandle, ProxyOptions, RealismProxy};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub const PRIMARY: &str = "us-east-1";
pub const DR: &str = "us-west-2";
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789";
pub const OPERATOR_TOKEN: &str = "operator-token-0123456789";

/// Polls `check` until it returns `Some`, or fails after `deadline`.
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A lab session plus an uncounted door into the same account.
pub struct World {
    pub session: LabSession,
    seeder: ProxyHandle,
    pub dir: tempfile::TempDir,
    /// The daemon's store when not the SQLite file under `dir` (see [`World::use_store`]).
    store_url: Option<String>,
}

impl World {
    /// A fresh account; the daemon's proxy enforces AWS's limits at `time_scale`.
    pub async fn new(time_scale: f64) -> Result<World> {
        let session = Lab::session_with(ProxyOptions {
            time_scale,
            ..ProxyOptions::default()
        })
        .await?;
        let lab = Lab::shared().await?;
        let seeder = RealismProxy::start(
            lab.moto().addr(),
            ProxyOptions {
                enforce_limits: false,
                account_id: Some(session.account_id().to_owned()),
                ..ProxyOptions::default()
            },
        )
        .await?;
        Ok(World {
            session,
            seeder,
            dir: tempfile::tempdir()?,
            store_url: None,
        })
    }

    /// Makes the daemons of this world use the store at `url` (e.g. a PostgreSQL database that
    /// several replicas share) instead of the SQLite file under the world's directory.
    pub fn use_store(&mut self, url: String) {
        self.store_url = Some(url);
    }

    /// The daemon's store URL: the one given to [`World::use_store`], else the SQLite file.
    pub fn store_url(&self) -> String {
        self.store_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.dir.path().join("data").join("pilotlight.db").display()
            )
        })
    }

    /// The daemon's proxy (counted).
    pub fn proxy(&self) -> &ProxyHandle {
        self.session.proxy()
    }

    /// An EC2 client for seeding or inspecting, through the uncounted door.
    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(
            &pilotlight_aws::sdk::static_sdk_config(&self.seeder.endpoint(), region).await,
        )
    }

    /// An RDS client for seeding or inspecting, through the uncounted door.
    pub async fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(
            &pilotlight_aws::sdk::static_sdk_config(&self.seeder.endpoint(), region).await,
        )
    }

    /// Every service's client for `region`, through the uncounted door.
    pub async fn clients(&self, region: &str) -> pilotlight_lab::clients::AwsClients {
        pilotlight_lab::clients::AwsClients::for_endpoint(&self.seeder.endpoint(), region).await
    }

    /// The uncounted door's endpoint (`http://host:port`), for raw requests to services the
    /// tests have no SDK for.
    pub fn door_endpoint(&self) -> String {
        self.seeder.endpoint()
    }

    /// Writes a token file and returns its path.
    fn token_file(&self, name: &str, token: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(format!("{name}.token"));
        std::fs::write(&p, format!("{token}\n"))?;
        Ok(p)
    }

    /// A daemon config for this world: the session's endpoint, [`World::store_url`],
    /// port-0 listeners, a long cycle (tests trigger runs), plus `extra` overrides.
    ///
    /// Copies and the inventory are off unless `extra` configures `[copy]` / `[inventory]`,
    /// so tests of other reconcilers count only their own calls.
    pub fn config_toml(&self, extra: &str) -> Result<String> {
        let mut copies_off = String::new();
        if !extra.contains("[copy]") {
            copies_off.push_str("[copy]\nenabled = false\n");
        }
        if !extra.contains("[inventory]") {
            copies_off.push_str("[inventory]\nenabled = false\n");
        }
        let data_dir = self.dir.path().join("data");
        let keys = self.dir.path().join("aws-key");
        std::fs::write(&keys, "testing\n")?;
        let viewer = self.token_file("viewer", VIEWER_TOKEN)?;
        let operator = self.token_file("operator", OPERATOR_TOKEN)?;
        Ok(format!(
            r#"
[aws]
endpoint_url = "{endpoint}"
s3_force_path_style = true
access_key_id_file = "{keys}"
secret_access_key_file = "{keys}"
max_attempts = 3

[store]
url = "{store}"

[api]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"

[[api.tokens]]
name = "vera"
role = "viewer"
token_file = "{viewer}"

[[api.tokens]]
name = "otto"
role = "operator"
token_file = "{operator}"

[daemon]
data_dir = "{data}"
shutdown_grace_secs = 20
lease_ttl_secs = 15

[log]
level = "warn,pilotlight=info"

{copies_off}
{extra}
"#,
            endpoint = self.session.endpoint(),
            keys = keys.display(),
            store = self.store_url(),
            data = data_dir.display(),
            viewer = viewer.display(),
            operator = operator.display(),
        ))
    }

    /// Loads a config the way the binary does (file text, no env, no flags).
    pub fn config(&self, extra: &str) -> Result<Config> {
        let text = self.config_toml(extra)?;
        Config::from_sources(Some(&text), &BTreeMap::new(), &[])
            .map_err(|e| anyhow!("test config invalid:\n{e}"))
    }

    /// Starts the daemon in-process and waits until it leads.
    pub async fn start_daemon(&self, extra: &str) -> Result<RunningDaemon> {
        let daemon = self.start_follower(extra).await?;
        daemon.wait_leading().await?;
        Ok(daemon)
    }

    /// Starts the daemon without waiting for it to lead (a second replica).
    pub async fn start_follower(&self, extra: &str) -> Result<RunningDaemon> {
        let config = self.config(extra)?;
        let secrets = pilotlight::secrets::load(&config).map_err(|e| anyhow!("{e}"))?;
        let listeners = Listeners::bind(&config).await?;
        let (api, metrics) = listeners.addrs();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(pilotlight::run(
            Daemon { config, secrets },
            listeners,
            shutdown.clone(),
        ));
        Ok(RunningDaemon {
            api,
            metrics,
            shutdown,
            task: Some(task),
        })
    }
}

/// A daemon running in this process.
pub struct RunningDaemon {
    pub api: SocketAddr,
    pub metrics: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

impl RunningDaemon {
    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
        let (status, body) = http(self.api, "GET", path, token, None).await?;
        Ok((
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &str) -> Result<(u16, Value)> {
        let (status, body) = http(self.api, "POST", path, token, Some(body)).await?;
        Ok((
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ))
    }

    pub async fn http_put(
        &self,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Result<(u16, Value)> {
        let (status, body) = http(self.api, "PUT", path, token, Some(body)).await?;
        Ok((
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ))
    }

    pub async fn http_delete(&self, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
        let (status, body) = http(self.api, "DELETE", path, token, Some("")).await?;
        Ok((
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ))
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        Ok(http(self.metrics, "GET", "/metrics", None, None).await?.1)
    }

    /// The value of one sample line (exact name and labels as printed).
    pub async fn metric(&self, series: &str) -> Result<f64> {
        let text = self.metrics().await?;
        Ok(sum_metric(&text, series))
    }

    pub async fn wait_leading(&self) -> Result<()> {
        poll("the daemon to lead", Duration::from_secs(30), || async {
            let (status, body) = self.get("/v1/status", Some(VIEWER_TOKEN)).await?;
            Ok((status == 200 && body["leader"]["is_leader"] == Value::Bool(true)).then_some(()))
        })
        .await
    }

    /// The network reconciler's status entry.
    pub async fn network_status(&self) -> Result<Value> {
        let (status, body) = self.get("/v1/status", Some(VIEWER_TOKEN)).await?;
        anyhow::ensure!(status == 200, "status returned {status}: {body}");
        body["reconcilers"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == "network").cloned())
            .ok_or_else(|| anyhow!("no network reconciler in {body}"))
    }

    /// Waits until the network reconciler has finished `runs` runs and returns its status.
    pub async fn wait_network_runs(&self, runs: u64) -> Result<Value> {
        poll(
            &format!("{runs} network runs"),
            Duration::from_secs(120),
            || async {
                let st = self.network_status().await?;
                let done = st["runs"].as_u64().unwrap_or(0) >= runs && st["state"] == "idle";
                Ok(done.then_some(st))
            },
        )
        .await
    }

    /// Triggers a network cycle and waits for it; returns the status after it.
    pub async fn cycle(&self) -> Result<Value> {
        let before = self.network_status().await?["runs"].as_u64().unwrap_or(0);
        let (status, body) = self
            .post(
                "/v1/reconcilers/network/run",
                Some(OPERATOR_TOKEN),
                r#"{"reason":"test"}"#,
            )
            .await?;
        anyhow::ensure!(status == 202, "trigger returned {status}: {body}");
        self.wait_network_runs(before + 1).await
    }

    /// A reconciler's status entry (`network`, `inventory`, `readiness`, …).
    pub async fn reconciler_status(&self, name: &str) -> Result<Value> {
        let (status, body) = self.get("/v1/status", Some(VIEWER_TOKEN)).await?;
        anyhow::ensure!(status == 200, "status returned {status}: {body}");
        body["reconcilers"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == name).cloned())
            .ok_or_else(|| anyhow!("no {name} reconciler in {body}"))
    }

    /// Triggers one run of reconciler `name` and waits until it has finished successfully
    /// (every key ran once more and the reconciler is idle); returns its status.
    pub async fn run(&self, name: &str) -> Result<Value> {
        let before = self.reconciler_status(name).await?["runs"]
            .as_u64()
            .unwrap_or(0);
        let (status, body) = self
            .post(
                &format!("/v1/reconcilers/{name}/run"),
                Some(OPERATOR_TOKEN),
                r#"{"reason":"test"}"#,
            )
            .await?;
        anyhow::ensure!(status == 202, "trigger returned {status}: {body}");
        poll(
            &format!("a {name} run"),
            Duration::from_secs(120),
            || async {
                let st = self.reconciler_status(name).await?;
                let done = st["runs"].as_u64().unwrap_or(0) > before && st["state"] == "idle";
                Ok(done.then_some(st))
            },
        )
        .await
    }

    /// Waits until `resources` protected resources of copy `kind` (`ebs_snapshot`, `ami`, …)
    /// each have a completed DR copy of their newest source; returns their `/v1/rpo` rows.
    pub async fn wait_all_copied(&self, kind: &str, resources: usize) -> Result<Vec<Value>> {
        poll(
            &format!("every {kind} resource copied"),
            Duration::from_secs(120),
            || async {
                let (code, body) = self
                    .get(&format!("/v1/rpo?kind={kind}"), Some(VIEWER_TOKEN))
                    .await?;
                anyhow::ensure!(code == 200, "{body}");
                let items = body["items"].as_array().cloned().unwrap_or_default();
                let done = items.len() == resources
                    && items.iter().all(|r| {
                        r["lag_secs"].is_u64() && r["copied_source_ms"] == r["newest_source_ms"]
                    });
                Ok(done.then_some(items))
            },
        )
        .await
    }

    /// Graceful shutdown; fails if `run` returned an error.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.context("daemon task panicked")??;
        }
        Ok(())
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Sums every sample of `series` (a metric name, optionally with a `{` label prefix).
pub fn sum_metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(series))
        .filter(|l| {
            series.contains('{') || matches!(l.as_bytes().get(series.len()), Some(b' ' | b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A minimal HTTP/1.1 client for loopback tests (`Connection: close`).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if method != "GET" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed response: {text}"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The `pilotlight` binary next to this test binary (`cargo build --workspace --bins`).
pub fn pilotlight_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test binary path {}", exe.display()))?;
    let bin = dir.join("pilotlight");
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        bin.display()
    );
    Ok(bin)
}

/// pilotlight's AWS call context for tests that use `pilotlight-aws` directly: a throttle at
/// 100× AWS's rates and metrics registered nowhere.
pub fn aws_ctx() -> pilotlight_aws::AwsCtx {
    pilotlight_aws::AwsCtx::new(
        std::sync::Arc::new(pilotlight_aws::throttle::Throttle::new(
            pilotlight_aws::throttle::ThrottleSettings {
                time_scale: 100.0,
                ..Default::default()
            },
        )),
        pilotlight_aws::metrics::AwsMetrics::unregistered(),
    )
}

/// Fails if the daemon made any mutating call to the primary region (read from the daemon's
/// own proxy, which only the daemon talks to).
pub async fn assert_primary_untouched(world: &World) -> Result<()> {
    let counts = world.proxy().counters();
    anyhow::ensure!(
        counts.mutating_calls_in(PRIMARY) == 0,
        "pilotlight made mutating calls to the primary region: {counts:?}"
    );
    Ok(())
}

impl World {
    /// A fresh account whose daemon proxy runs with `opts` (pending times, `MaxCount`, …);
    /// the seeding door is the same as [`World::new`]'s.
    pub async fn with_options(opts: ProxyOptions) -> Result<World> {
        let session = Lab::session_with(opts).await?;
        let lab = Lab::shared().await?;
        let seeder = RealismProxy::start(
            lab.moto().addr(),
            ProxyOptions {
                enforce_limits: false,
                account_id: Some(session.account_id().to_owned()),
                ..ProxyOptions::default()
            },
        )
        .await?;
        Ok(World {
            session,
            seeder,
            dir: tempfile::tempdir()?,
            store_url: None,
        })
    }
}

/// [`http`] with extra request headers (`Idempotency-Key`, …).
pub async fn http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed response: {text}"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok((
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}
