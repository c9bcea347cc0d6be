//! `pilotlight plan`: asks the daemon's admin API for the plan (`GET /v1/plan`) and prints it
//! as a table for people or, with `--json`, as the API's JSON.

use std::fmt::Write as _;

use anyhow::Context as _;
use pilotlight_core::capacity::CapacityPlan;
use pilotlight_core::config::Config;
use pilotlight_core::plan::RestorePlan;
use serde::Deserialize;

use crate::admin_client::AdminClient;
use crate::cli::ApiArgs;

/// The parts of `GET /v1/plan` the table shows.
#[derive(Debug, Deserialize)]
struct PlanAnswer {
    inventory_version: i64,
    captured_at_ms: i64,
    capacity: CapacityPlan,
    restore: RestorePlan,
}

/// Fetches the plan and renders it.
///
/// # Errors
///
/// The token file cannot be read, the daemon cannot be reached, or it answers with an error
/// (its reason is in the message).
pub async fn run(
    config: &Config,
    tenants: &[String],
    tiers: &[u8],
    json: bool,
    api: &ApiArgs,
) -> anyhow::Result<String> {
    let base = api
        .api
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.api.listen));
    let token = match &api.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let client = AdminClient::new(&base, token)?;
    let mut query = Vec::new();
    if !tenants.is_empty() {
        query.push(format!("tenants={}", tenants.join(",")));
    }
    if !tiers.is_empty() {
        let tiers: Vec<String> = tiers.iter().map(u8::to_string).collect();
        query.push(format!("tiers={}", tiers.join(",")));
    }
    let path = if query.is_empty() {
        "/v1/plan".to_owned()
    } else {
        format!("/v1/plan?{}", query.join("&"))
    };
    let value = client.get_json(&path).await?;
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value)?));
    }
    let answer: PlanAnswer =
        serde_json::from_value(value).context("the daemon's plan has an unexpected shape")?;
    Ok(render(&answer))
}

fn secs(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

fn render(a: &PlanAnswer) -> String {
    let r = &a.restore;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Restore plan from inventory version {} (captured at {} ms since the epoch)",
        a.inventory_version, a.captured_at_ms
    );
    let _ = writeln!(
        out,
        "Estimated restore time: {}   lower bound from AWS's API limits: {}{}",
        secs(r.schedule.total_secs),
        secs(r.schedule.lower_bound.secs),
        r.schedule
            .lower_bound
            .binding
            .as_deref()
            .map(|b| format!(" (bound by {b})"))
            .unwrap_or_default()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<6} {:>9} {:>7} {:>8} {:>8} {:>10} {:>10}  binding",
        "TIER", "INSTANCES", "GROUPS", "VOLUMES", "DBS", "START", "UP AT"
    );
    for t in &r.tiers {
        let sched = r.schedule.tiers.iter().find(|s| s.tier == t.tier);
        let _ = writeln!(
            out,
            "{:<6} {:>9} {:>7} {:>8} {:>8} {:>10} {:>10}  {}",
            t.tier,
            t.instances,
            t.groups.len(),
            t.data_volumes.len(),
            // DB instances: the tier's own and its Aurora clusters' members.
            t.databases.len() + t.clusters.iter().map(|c| c.members.len()).sum::<usize>(),
            sched.map(|s| secs(s.start_secs)).unwrap_or_default(),
            sched.map(|s| secs(s.end_secs)).unwrap_or_default(),
            sched.and_then(|s| s.binding.as_deref()).unwrap_or("-"),
        );
    }
    for (name, span) in [
        ("load balancers", &r.schedule.load_balancers),
        ("DNS", &r.schedule.dns),
        ("databases", &r.schedule.databases),
    ] {
        if let Some(span) = span {
            let _ = writeln!(
                out,
                "{name:<15} {} → {}",
                secs(span.start_secs),
                secs(span.end_secs)
            );
        }
    }
    let _ = writeln!(
        out,
        "\nData volumes: {:?} ({} volumes)",
        r.volumes.chosen, r.volumes.data_volumes
    );
    let _ = writeln!(
        out,
        "Load balancers: {}   DNS records to change: {} in {} zones",
        r.load_balancers.len(),
        r.dns.records,
        r.dns.zones.len()
    );
    let _ = writeln!(out, "\nAPI calls by operation:");
    for (op, n) in &r.calls {
        let _ = writeln!(out, "  {op:<45} {n:>8}");
    }
    let c = &a.capacity;
    let _ = writeln!(out, "\nCapacity against the DR quotas:");
    for s in &c.shortfalls {
        let _ = writeln!(
            out,
            "  SHORTFALL {:<40} needs {:>8}, quota {:>8}",
            s.quota, s.required, s.available
        );
    }
    if c.shortfalls.is_empty() {
        let _ = writeln!(out, "  every quota covers the plan");
    }
    if !r.problems.is_empty() {
        let _ = writeln!(out, "\nProblems ({}):", r.problems.len());
        for p in &r.problems {
            let _ = writeln!(out, "  {:?} {}: {}", p.kind, p.resource_id, p.reason);
        }
    }
    out
}
