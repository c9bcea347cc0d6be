//! `pilotlight restore declare|approve|cancel|status|watch|list`: restore runs through the
//! daemon's admin API (`/v1/restores…`), printed for people (or, with `--json`, as the API's
//! JSON).
//!
//! `watch` polls `GET /v1/restores/{id}` and draws one progress bar per tier
//! (`tier 1 [#####-----] 12/30 running`), redrawn in place on a terminal and written as plain
//! lines — only the ones that changed — otherwise, until the run ends. A daemon that stops
//! answering for a while (a restart, a leader change) is waited for up to [`UNREACHABLE_LIMIT`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http::Method;
use pilotlight::admin_client::AdminClient;
use pilotlight::cli::RestoreModeArg;
use pilotlight_engine::restore::progress::RestoreReport;
use pilotlight_store::RunState;
use serde::Deserialize;
use serde_json::{Value, json};

/// How long `watch` keeps trying while the daemon does not answer.
pub const UNREACHABLE_LIMIT: Duration = Duration::from_secs(300);

/// Width of a progress bar, in characters.
const BAR: usize = 20;

/// What `pilotlight restore declare` asks for.
#[derive(Debug, Clone)]
pub struct Declaration {
    pub mode: RestoreModeArg,
    pub tiers: Vec<u8>,
    pub tenants: Vec<String>,
    pub dry_run: bool,
    pub idempotency_key: Option<String>,
}

/// A run as the API answers it (the fields the CLI prints).
#[derive(Debug, Deserialize)]
struct RunAnswer {
    id: String,
    mode: String,
    state: RunState,
    #[serde(default)]
    tiers: Vec<u8>,
    requested_by: String,
    approved_by: Option<String>,
    error: Option<String>,
}

/// An answer about one run: `{"run": {…}, …}`; a declaration adds `created` and `problems`.
#[derive(Debug, Deserialize)]
struct OneRun {
    run: RunAnswer,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    problems: Option<u64>,
}

/// `GET /v1/restores/{id}`: the run and its report.
#[derive(Debug, Deserialize)]
struct StatusAnswer {
    report: RestoreReport,
}

fn tiers_text(tiers: &[u8]) -> String {
    if tiers.is_empty() {
        "all".to_owned()
    } else {
        tiers
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Declares a run (or shows a dry run's plan in brief).
///
/// # Errors
/// The daemon cannot be reached or refuses (409 when a disaster run is active, 403 without the
/// operator role, …): the API's reason is in the message.
pub async fn declare(client: &AdminClient, d: &Declaration, json: bool) -> anyhow::Result<String> {
    let body = json!({
        "mode": d.mode.as_str(),
        "tiers": d.tiers,
        "tenants": d.tenants,
        "dry_run": d.dry_run,
    });
    let headers: Vec<(&str, &str)> = d
        .idempotency_key
        .as_deref()
        .map(|k| ("Idempotency-Key", k))
        .into_iter()
        .collect();
    let answer = client
        .post_json("/v1/restores", Some(&body), &headers)
        .await?;
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&answer.body)?));
    }
    if d.dry_run {
        return Ok(dry_run_text(&answer.body));
    }
    let one: OneRun = serde_json::from_value(answer.body)
        .context("the daemon's answer has an unexpected shape")?;
    let run = &one.run;
    let mut out = format!("{} {}\n", run.id, run.state);
    let _ = writeln!(
        out,
        "{} {} run, tiers {}, requested by {}",
        if one.created == Some(false) {
            "already declared with this idempotency key:"
        } else {
            "declared"
        },
        run.mode,
        tiers_text(&run.tiers),
        run.requested_by
    );
    if let Some(n) = one.problems.filter(|n| *n > 0) {
        let _ = writeln!(
            out,
            "warning: the plan has {n} problems (resources without a DR counterpart); see `pilotlight plan`"
        );
    }
    if run.state == RunState::AwaitingApproval {
        let _ = writeln!(
            out,
            "waiting for approval by another principal: pilotlight restore approve {}",
            run.id
        );
    } else {
        let _ = writeln!(out, "follow it: pilotlight restore watch {}", run.id);
    }
    Ok(out)
}

fn dry_run_text(body: &Value) -> String {
    let plan = &body["plan"];
    let restore = &plan["restore"];
    let instances: u64 = restore["tiers"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["instances"].as_u64()).sum())
        .unwrap_or(0);
    let tiers = restore["tiers"].as_array().map_or(0, Vec::len);
    let problems = restore["problems"].as_array().map_or(0, Vec::len);
    let total = restore["schedule"]["total_secs"].as_f64().unwrap_or(0.0);
    let bound = restore["schedule"]["lower_bound"]["secs"]
        .as_f64()
        .unwrap_or(0.0);
    format!(
        "dry run ({}): nothing declared\n{instances} instances in {tiers} tiers, estimated {} (lower bound {}), {problems} problems\nthe full plan: pilotlight plan\n",
        body["mode"].as_str().unwrap_or("?"),
        secs_text(total),
        secs_text(bound),
    )
}

/// Approves a run.
///
/// # Errors
/// The daemon cannot be reached or refuses (403 for the declaring principal or without the
/// approver role, 409 when the run is not awaiting approval).
pub async fn approve(client: &AdminClient, id: &str) -> anyhow::Result<String> {
    let answer = client
        .post_json(&format!("/v1/restores/{id}/approve"), None, &[])
        .await?;
    let OneRun { run, .. } = serde_json::from_value(answer.body)
        .context("the daemon's answer has an unexpected shape")?;
    Ok(format!(
        "{} {}\napproved by {}; the leader starts it now\n",
        run.id,
        run.state,
        run.approved_by.as_deref().unwrap_or("?")
    ))
}

/// Cancels a run.
///
/// # Errors
/// The daemon cannot be reached or refuses (409 when the run has finished).
pub async fn cancel(client: &AdminClient, id: &str) -> anyhow::Result<String> {
    let answer = client
        .post_json(&format!("/v1/restores/{id}/cancel"), None, &[])
        .await?;
    let OneRun { run, .. } = serde_json::from_value(answer.body)
        .context("the daemon's answer has an unexpected shape")?;
    Ok(format!(
        "{} {}\n{}; no new work starts, what was created stays (see pilotlight restore status {})\n",
        run.id,
        run.state,
        run.error.as_deref().unwrap_or("cancelled"),
        run.id
    ))
}

/// Lists recent runs.
///
/// # Errors
/// The daemon cannot be reached or refuses.
pub async fn list(client: &AdminClient, limit: u32, json: bool) -> anyhow::Result<String> {
    let body = client
        .get_json(&format!("/v1/restores?limit={limit}"))
        .await?;
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&body)?));
    }
    let runs: Vec<RunAnswer> = serde_json::from_value(body["runs"].clone())
        .context("the daemon's answer has an unexpected shape")?;
    let mut out = format!(
        "{:<26} {:<9} {:<18} {:<8} {:<12} {}\n",
        "RUN", "MODE", "STATE", "TIERS", "REQUESTED", "APPROVED"
    );
    for r in &runs {
        let _ = writeln!(
            out,
            "{:<26} {:<9} {:<18} {:<8} {:<12} {}",
            r.id,
            r.mode,
            r.state.as_str(),
            tiers_text(&r.tiers),
            r.requested_by,
            r.approved_by.as_deref().unwrap_or("-")
        );
    }
    Ok(out)
}

/// Shows a run and its progress report.
///
/// # Errors
/// The daemon cannot be reached or refuses (404 for an unknown run).
pub async fn status(client: &AdminClient, id: &str, json: bool) -> anyhow::Result<String> {
    let body = client.get_json(&format!("/v1/restores/{id}")).await?;
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&body)?));
    }
    let answer: StatusAnswer =
        serde_json::from_value(body).context("the daemon's answer has an unexpected shape")?;
    Ok(render_status(&answer.report))
}

/// Follows a run until it ends, drawing to `out` (in place when `tty`). Returns whether it
/// succeeded.
///
/// # Errors
/// The daemon refuses (404 unknown run, 401/403) or stays unreachable for
/// [`UNREACHABLE_LIMIT`]; writing to `out` fails.
pub async fn watch(
    client: &AdminClient,
    id: &str,
    interval: Duration,
    out: &mut dyn Write,
    tty: bool,
) -> anyhow::Result<bool> {
    let path = format!("/v1/restores/{id}");
    let mut drawn = 0usize;
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let answer = match client.send(Method::GET, &path, None, &[]).await {
            Ok(a) => {
                unreachable_since = None;
                a
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= UNREACHABLE_LIMIT {
                    return Err(e.context(format!(
                        "the daemon did not answer for {}",
                        secs_text(UNREACHABLE_LIMIT.as_secs_f64())
                    )));
                }
                if since.elapsed() < interval {
                    // Once per outage; the next frame is drawn below it.
                    writeln!(out, "daemon unreachable ({e:#}); retrying")?;
                    drawn = 0;
                }
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        if !answer.status.is_success() {
            bail!("GET {path}: {}: {}", answer.status, answer.reason());
        }
        let status: StatusAnswer = serde_json::from_value(answer.body)
            .context("the daemon's answer has an unexpected shape")?;
        let report = status.report;
        let lines = frame(&report);
        if tty {
            if drawn > 0 {
                // Back to the first line of the previous frame, and clear it all.
                write!(out, "\x1b[{drawn}A\r\x1b[J")?;
            }
            for (_, line) in &lines {
                writeln!(out, "{line}")?;
            }
            drawn = lines.len();
        } else {
            // The header carries the elapsed time: printed (first) when anything else changed.
            let changed: Vec<&String> = lines
                .iter()
                .filter(|(k, l)| k != "run" && shown.get(k) != Some(l))
                .map(|(_, l)| l)
                .collect();
            if !changed.is_empty() {
                if let Some((_, header)) = lines.iter().find(|(k, _)| k == "run") {
                    writeln!(out, "{header}")?;
                }
                for line in changed {
                    writeln!(out, "{line}")?;
                }
            }
            shown = lines.into_iter().collect();
        }
        out.flush()?;
        if !report.run.state.is_active() {
            let rto = report.rto_secs.map(secs_text).unwrap_or_default();
            writeln!(
                out,
                "run {} {}{}{}",
                report.run.id,
                report.run.state,
                if rto.is_empty() {
                    String::new()
                } else {
                    format!(" after {rto} (measured RTO)")
                },
                report
                    .run
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )?;
            out.flush()?;
            return Ok(report.run.state == RunState::Succeeded);
        }
        tokio::time::sleep(interval).await;
    }
}

/// `[#####-----]` for `done` of `total`.
fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        let f = (done.min(total) as u128 * width as u128 / total as u128) as usize;
        f.min(width)
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// The lines of one `watch` frame, each with a stable key (plain output prints a line again
/// only when it changed).
fn frame(r: &RestoreReport) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let elapsed = r
        .rto_secs
        .map(|s| format!("  T+{}", secs_text(s)))
        .unwrap_or_default();
    let estimate = r
        .estimated_secs
        .map(|s| format!(" (estimate {})", secs_text(s)))
        .unwrap_or_default();
    lines.push((
        "run".to_owned(),
        format!(
            "run {} {} {}{elapsed}{estimate}",
            r.run.id, r.run.mode, r.run.state
        ),
    ));
    let width = r
        .tiers
        .iter()
        .map(|t| t.instances_planned.to_string().len())
        .max()
        .unwrap_or(1);
    for t in &r.tiers {
        let total = t.instances_planned.max(t.instances_launched);
        let failed = if t.instances_failed > 0 {
            format!(", {} failed", t.instances_failed)
        } else {
            String::new()
        };
        lines.push((
            format!("tier {}", t.tier),
            format!(
                "tier {} {} {:>width$}/{:<width$} {}{failed}",
                t.tier,
                bar(t.instances_running, total, BAR),
                t.instances_running,
                total,
                t.state
            ),
        ));
    }
    for s in r.steps.iter().filter(|s| s.tier == 0) {
        lines.push((
            format!("step {}", s.step_id),
            format!("{:<6} {}", s.step_id, s.state),
        ));
    }
    let failed = r.counts.by_state.get("failed").copied().unwrap_or(0);
    let done = r.counts.by_state.get("done").copied().unwrap_or(0);
    let items: u64 = r.counts.by_state.values().sum();
    lines.push((
        "totals".to_owned(),
        format!(
            "items {done}/{items} done, {failed} failed; {} substitutions; {} calls, {} throttled, {} retried",
            r.substitutions.len(),
            r.api_calls,
            r.throttled,
            r.sdk_retries
        ),
    ));
    lines
}

fn secs_text(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `+2m10s` from the run's start (or declaration), for a timeline.
fn offset(at_ms: Option<i64>, base_ms: i64) -> String {
    at_ms
        .map(|t| format!("+{}", secs_text((t - base_ms) as f64 / 1000.0)))
        .unwrap_or_else(|| "-".to_owned())
}

fn took(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => secs_text((e - s) as f64 / 1000.0),
        _ => "-".to_owned(),
    }
}

fn render_status(r: &RestoreReport) -> String {
    let run = &r.run;
    let base = run.started_at_ms.unwrap_or(run.created_at_ms);
    let mut out = String::new();
    let _ = writeln!(out, "Run {}  {}  {}", run.id, run.mode, run.state);
    let _ = writeln!(
        out,
        "Requested by {}{}",
        run.requested_by,
        run.approved_by
            .as_deref()
            .map(|a| format!(", approved by {a}"))
            .unwrap_or_default()
    );
    let rto = match (r.rto_secs, r.rto_final) {
        (Some(s), true) => format!("RTO {} (measured)", secs_text(s)),
        (Some(s), false) => format!("RTO so far {}", secs_text(s)),
        (None, _) => "not started".to_owned(),
    };
    let _ = writeln!(
        out,
        "{rto}{}",
        r.estimated_secs
            .map(|s| format!("; plan estimate {}", secs_text(s)))
            .unwrap_or_default()
    );
    if let Some(e) = &run.error {
        let _ = writeln!(out, "Error: {e}");
    }
    if let Some(d) = &r.drill {
        let teardown = match (d.teardown_secs, run.state) {
            (Some(s), _) => format!("torn down in {}", secs_text(s)),
            (None, RunState::TearingDown) => "tearing down".to_owned(),
            (None, _) => "not torn down yet".to_owned(),
        };
        let _ = writeln!(
            out,
            "Drill: production DNS untouched; {teardown}; {} resources deleted; {} left behind",
            d.deleted,
            d.left_behind.len()
        );
        for l in &d.left_behind {
            let _ = writeln!(out, "  left: {} {}", l.kind, l.id);
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<5} {:<9} {:>8} {:>9} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "TIER", "STATE", "PLANNED", "LAUNCHED", "RUNNING", "FAILED", "START", "END", "TOOK"
    );
    for t in &r.tiers {
        let _ = writeln!(
            out,
            "{:<5} {:<9} {:>8} {:>9} {:>8} {:>7} {:>9} {:>9} {:>9}",
            t.tier,
            t.state.as_str(),
            t.instances_planned,
            t.instances_launched,
            t.instances_running,
            t.instances_failed,
            offset(t.started_at_ms, base),
            offset(t.finished_at_ms, base),
            took(t.started_at_ms, t.finished_at_ms),
        );
    }
    let others: Vec<_> = r.steps.iter().filter(|s| s.tier == 0).collect();
    if !others.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<24} {:<9} {:>9} {:>9}",
            "STEP", "STATE", "START", "TOOK"
        );
        for s in others {
            let _ = writeln!(
                out,
                "{:<24} {:<9} {:>9} {:>9}",
                s.step_id,
                s.state.as_str(),
                offset(s.started_at_ms, base),
                took(s.started_at_ms, s.finished_at_ms),
            );
        }
    }
    let _ = writeln!(out);
    let states: Vec<String> = r
        .counts
        .by_state
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let _ = writeln!(out, "Items: {}", states.join(", "));
    for (kind, states) in &r.counts.by_kind {
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let _ = writeln!(out, "  {kind:<22} {}", states.join(", "));
    }
    if !r.substitutions.is_empty() {
        let _ = writeln!(out, "\nPlan-B substitutions ({}):", r.substitutions.len());
        for s in &r.substitutions {
            let _ = writeln!(
                out,
                "  {} {} → {}: {}",
                s.kind,
                s.primary_id,
                s.dr_id.as_deref().unwrap_or("-"),
                s.substitution
            );
        }
    }
    if !r.failed_items.is_empty() {
        let _ = writeln!(out, "\nFailed items ({}):", r.failed_items.len());
        for f in &r.failed_items {
            let _ = writeln!(
                out,
                "  {} ({} {}): {}",
                f.item_key,
                f.kind,
                f.primary_id,
                f.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    let _ = writeln!(
        out,
        "\nAPI calls: {} ({} throttled after the SDK's retries; {} attempts retried)",
        r.api_calls, r.throttled, r.sdk_retries
    );
    for (op, t) in &r.calls {
        let mut notes = Vec::new();
        if t.throttled > 0 {
            notes.push(format!("{} throttled", t.throttled));
        }
        if t.retries() > 0 {
            notes.push(format!("{} retried", t.retries()));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join(", "))
        };
        let _ = writeln!(out, "  {op:<45} {:>8}{notes}", t.calls);
    }
    out
}

#[cfg(test)]
mod tests {
    use pilotlight_engine::restore::progress::{
        FailedItem, ItemCounts, RunSummary, StepProgress, Substitution, TierProgress,
    };
    use pilotlight_store::{RunMode, StepState};

    use super::*;

    fn report(state: RunState) -> RestoreReport {
        let tier = |tier: u8, state: StepState, planned: u64, running: u64| TierProgress {
            tier,
            state,
            started_at_ms: Some(1_000),
            finished_at_ms: (state == StepState::Done).then_some(131_000),
            instances_planned: planned,
            instances_launched: running,
            instances_running: running,
            instances_failed: 0,
            up_after_ms: (state == StepState::Done).then_some(130_000),
        };
        RestoreReport {
            run: RunSummary {
                id: "r-20260101T000000-abcdef".into(),
                mode: RunMode::Disaster,
                state,
                dry_run: false,
                requested_by: "otto".into(),
                approved_by: Some("anna".into()),
                created_at_ms: 0,
                started_at_ms: Some(1_000),
                finished_at_ms: None,
                error: None,
            },
            tiers: vec![
                tier(1, StepState::Done, 30, 30),
                tier(2, StepState::Running, 40, 12),
                tier(3, StepState::Pending, 50, 0),
            ],
            steps: vec![StepProgress {
                step_id: "lb".into(),
                tier: 0,
                kind: "lb".into(),
                state: StepState::Running,
                started_at_ms: Some(1_000),
                finished_at_ms: None,
                duration_ms: None,
                detail: json!({}),
            }],
            counts: ItemCounts {
                by_state: BTreeMap::from([("done".into(), 42), ("failed".into(), 1)]),
                by_kind: BTreeMap::new(),
            },
            substitutions: vec![Substitution {
                item_key: "instance_launch/t2/g1".into(),
                kind: "instance_launch".into(),
                primary_id: "i-1".into(),
                dr_id: Some("i-9".into()),
                substitution: json!({"from": "r5.2xlarge", "to": "r5.xlarge", "count": 2}),
            }],
            calls: BTreeMap::new(),
            throttled: 3,
            sdk_retries: 7,
            api_calls: 120,
            rto_secs: Some(130.0),
            rto_final: false,
            estimated_secs: Some(3600.0),
            failed_items: vec![FailedItem {
                item_key: "volume/vol-1".into(),
                kind: "volume".into(),
                primary_id: "vol-1".into(),
                last_error: Some("InvalidSnapshot.NotFound".into()),
            }],
            drill: None,
        }
    }

    #[test]
    fn bars_fill_in_proportion() {
        assert_eq!(bar(0, 30, 10), "[----------]");
        assert_eq!(bar(12, 30, 10), "[####------]");
        assert_eq!(bar(30, 30, 10), "[##########]");
        assert_eq!(bar(40, 30, 10), "[##########]", "plan B may launch more");
        assert_eq!(bar(0, 0, 4), "[----]");
    }

    #[test]
    fn a_frame_has_a_bar_per_tier() {
        let lines = frame(&report(RunState::Running));
        let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert!(text[0].starts_with("run r-20260101T000000-abcdef disaster running  T+2m10s"));
        assert_eq!(text[1], "tier 1 [####################] 30/30 done");
        assert_eq!(text[2], "tier 2 [######--------------] 12/40 running");
        assert_eq!(text[3], "tier 3 [--------------------]  0/50 pending");
        assert_eq!(text[4], "lb     running");
        assert!(
            text[5].contains(
                "42/43 done, 1 failed; 1 substitutions; 120 calls, 3 throttled, 7 retried"
            )
        );
    }

    #[test]
    fn status_shows_the_timeline_and_the_rest() {
        let text = render_status(&report(RunState::Running));
        assert!(
            text.contains("Requested by otto, approved by anna"),
            "{text}"
        );
        assert!(
            text.contains("RTO so far 2m10s; plan estimate 1h00m00s"),
            "{text}"
        );
        assert!(text.contains("+0s"), "{text}");
        assert!(text.contains("2m10s"), "{text}");
        assert!(text.contains("r5.xlarge"), "{text}");
        assert!(text.contains("InvalidSnapshot.NotFound"), "{text}");
        assert!(
            text.contains(
                "API calls: 120 (3 throttled after the SDK's retries; 7 attempts retried)"
            ),
            "{text}"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(secs_text(0.4), "0s");
        assert_eq!(secs_text(59.0), "59s");
        assert_eq!(secs_text(130.0), "2m10s");
        assert_eq!(secs_text(3725.0), "1h02m05s");
        assert_eq!(offset(Some(61_000), 1_000), "+1m00s");
        assert_eq!(offset(None, 0), "-");
    }
}
