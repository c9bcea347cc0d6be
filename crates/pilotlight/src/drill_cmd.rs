//! `pilotlight drill start|list` (SPEC D12, P6): the operator's side of drills, through the
//! admin API. `start` declares a drill like `pilotlight restore declare --mode drill` (and can
//! follow it with the same live view as `restore watch`); `list` shows `GET /v1/drills`.

use std::fmt::Write as _;

use anyhow::Context as _;
use pilotlight::admin_client::AdminClient;
use pilotlight_engine::drill::DrillSummary;
use serde_json::Value;

use crate::restore_cmd::{self, Declaration};

/// Declares the drill; answers what to print and the run id.
///
/// # Errors
/// The daemon cannot be reached or refuses (403 without the operator role, 409 while a
/// disaster run is active, …).
pub async fn start(
    client: &AdminClient,
    declaration: &Declaration,
    json: bool,
) -> anyhow::Result<(String, String)> {
    let out = restore_cmd::declare(client, declaration, json).await?;
    let id = if json {
        let body: Value = serde_json::from_str(&out).context("the daemon's answer is not JSON")?;
        body["run"]["id"].as_str().unwrap_or_default().to_owned()
    } else {
        out.split_whitespace().next().unwrap_or_default().to_owned()
    };
    anyhow::ensure!(!id.is_empty(), "the daemon's answer names no run");
    Ok((out, id))
}

fn secs(s: Option<f64>) -> String {
    match s {
        None => "-".to_owned(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
    }
}

/// The drills as a table, newest first, and the schedule.
///
/// # Errors
/// The daemon cannot be reached or refuses.
pub async fn list(client: &AdminClient, limit: u32, json: bool) -> anyhow::Result<String> {
    let body = client
        .get_json(&format!("/v1/drills?limit={limit}"))
        .await?;
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&body)?));
    }
    let drills: Vec<DrillSummary> = serde_json::from_value(body["drills"].clone())
        .context("the daemon's answer has an unexpected shape")?;
    Ok(render(&drills, &body["schedule"]))
}

fn render(drills: &[DrillSummary], schedule: &Value) -> String {
    let mut out = format!(
        "{:<26} {:<13} {:>7} {:<28} {:>8} {:>4}  {}\n",
        "DRILL", "STATE", "RTO", "TIERS UP AFTER", "TEARDOWN", "LEFT", "BY"
    );
    for d in drills {
        let tiers = d
            .tiers
            .iter()
            .map(|t| format!("t{} {}", t.tier, secs(t.up_after_secs)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "{:<26} {:<13} {:>7} {:<28} {:>8} {:>4}  {}",
            d.id,
            d.state.as_str(),
            secs(d.rto_secs),
            if tiers.is_empty() {
                "-".to_owned()
            } else {
                tiers
            },
            secs(d.teardown_secs),
            d.left_behind.len(),
            d.requested_by
        );
        if let Some(e) = &d.error {
            let _ = writeln!(out, "  error: {e}");
        }
    }
    match schedule["cron"].as_str() {
        Some(cron) => {
            let next = schedule["next_at_ms"]
                .as_i64()
                .map_or("never".to_owned(), |ms| {
                    format!(
                        "{} s from now",
                        (ms - pilotlight_engine::now_ms()).max(0) / 1000
                    )
                });
            let _ = writeln!(out, "schedule: {cron} (UTC), next drill {next}");
        }
        None => out.push_str("schedule: none (drill.schedule is empty)\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use pilotlight_engine::drill::TierRto;
    use pilotlight_store::RunState;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_drill_row_shows_rto_per_tier_and_leftovers() {
        let d = DrillSummary {
            id: "r-20261125T030000-abcdef".into(),
            state: RunState::Succeeded,
            requested_by: "scheduler:drill".into(),
            scheduled: true,
            created_at_ms: 0,
            started_at_ms: Some(0),
            finished_at_ms: Some(1),
            rto_secs: Some(754.0),
            tiers: vec![
                TierRto {
                    tier: 1,
                    up_after_secs: Some(62.4),
                },
                TierRto {
                    tier: 2,
                    up_after_secs: None,
                },
            ],
            teardown_secs: Some(90.0),
            deleted: 12,
            left_behind: vec![],
            failed_items: 0,
            error: None,
        };
        let text = render(&[d], &json!({"cron": null}));
        assert!(text.contains("12m34s"), "{text}");
        assert!(text.contains("t1 62s, t2 -"), "{text}");
        assert!(text.contains("scheduler:drill"), "{text}");
        assert!(text.contains("schedule: none"), "{text}");
    }
}
