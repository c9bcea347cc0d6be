//! The deployment artefacts in `deploy/` agree with the daemon: the container image, the systemd
//! unit, the Helm chart, the Prometheus rules and the Grafana dashboard (SPEC P4, P7).
//!
//! Tools are used when installed and their absence is printed, never hidden: `systemd-analyze`
//! (verify and an exposure threshold), `promtool` (check and unit-test the rules), `helm` (lint,
//! render, and the rendered config fed to the daemon's own config loader). `PILOTLIGHT_HELM` and
//! `PILOTLIGHT_PROMTOOL` name the binaries when they are not on `PATH`. The checks that need no
//! tool always run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use pilotlight_core::config::Config;
use serde_json::Value as Json;
use yaml_rust2::{Yaml, YamlLoader};

/// Sections of docs/runbook.md the alerts link to.
const RUNBOOK_ANCHORS: &[&str] = &[
    "declare-a-disaster",
    "approve",
    "watch-a-restore",
    "cancel",
    "drills",
    "daemon-failover",
    "rpo-and-copies",
];
const RUNBOOK_URL: &str = "https://github.com/pilotlight-dr/pilotlight/blob/main/docs/runbook.md#";

/// Metric names the rules and the dashboard may use before docs/metrics.md lists them, each
/// with a comment saying who documents it; none today (the drill gauges are documented).
const NOT_YET_DOCUMENTED: &[&str] = &[];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(rel: &str) -> Yaml {
    let mut docs =
        YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.remove(0)
}

/// A tool's path: the environment variable `var` if set, else `name` when it runs from `PATH`.
fn tool(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let found = Command::new(name)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty());
    found.then(|| PathBuf::from(name))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every `pilotlight_…` metric name docs/metrics.md lists (in backticks).
fn documented_metrics() -> BTreeSet<String> {
    let docs = read("docs/metrics.md");
    docs.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with("pilotlight_")
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// The metric names a PromQL expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("pilotlight_") {
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if boundary {
            out.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    out
}

/// Names of `used` that docs/metrics.md does not list (a histogram's `_bucket`, `_sum` and
/// `_count` series count as its documented name).
fn undocumented(used: &BTreeSet<String>) -> Vec<String> {
    let documented = documented_metrics();
    assert!(
        documented.contains("pilotlight_leader"),
        "docs/metrics.md lists no metric?"
    );
    used.iter()
        .filter(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            !documented.contains(*name)
                && !documented.contains(base)
                && !NOT_YET_DOCUMENTED.contains(&name.as_str())
        })
        .cloned()
        .collect()
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn s<'a>(y: &'a Yaml, key: &str) -> Option<&'a str> {
    y[key].as_str()
}

#[test]
fn prometheus_rules_are_complete_and_use_documented_metrics() {
    let rules = yaml("deploy/prometheus/pilotlight-rules.yml");
    let runbook_anchors: Option<BTreeSet<String>> =
        std::fs::read_to_string(repo().join("docs/runbook.md"))
            .ok()
            .map(|text| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("## "))
                    .map(anchor)
                    .collect()
            });
    let mut problems = Vec::new();
    let mut alerts = BTreeSet::new();
    let mut used = BTreeSet::new();
    let groups = rules["groups"].as_vec().expect("groups");
    assert!(!groups.is_empty());
    for group in groups {
        let group_name = s(group, "name").expect("group name");
        for rule in group["rules"].as_vec().expect("rules") {
            let Some(alert) = s(rule, "alert") else {
                problems.push(format!("{group_name}: a rule without `alert`"));
                continue;
            };
            if !alert.starts_with("Pilotlight") || !alerts.insert(alert.to_owned()) {
                problems.push(format!(
                    "{alert}: names start with Pilotlight and are unique"
                ));
            }
            let expr = s(rule, "expr").unwrap_or_default();
            if expr.trim().is_empty() {
                problems.push(format!("{alert}: no expr"));
            }
            used.extend(metric_names(expr));
            if s(rule, "for").is_none() {
                problems.push(format!("{alert}: no `for:` duration"));
            }
            let severity = s(&rule["labels"], "severity").unwrap_or_default();
            if !["critical", "warning", "info"].contains(&severity) {
                problems.push(format!("{alert}: severity {severity:?}"));
            }
            let annotations = &rule["annotations"];
            for key in ["summary", "description"] {
                if s(annotations, key).is_none_or(|v| v.trim().is_empty()) {
                    problems.push(format!("{alert}: no {key} annotation"));
                }
            }
            let url = s(annotations, "runbook_url").unwrap_or_default();
            match url.strip_prefix(RUNBOOK_URL) {
                Some(a) if RUNBOOK_ANCHORS.contains(&a) => {
                    if let Some(headings) = &runbook_anchors
                        && !headings.contains(a)
                    {
                        problems.push(format!(
                            "{alert}: docs/runbook.md has no section #{a} (its sections: {headings:?})"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "{alert}: runbook_url {url:?} is not {RUNBOOK_URL}<one of {RUNBOOK_ANCHORS:?}>"
                )),
            }
        }
    }
    // What an SRE expects to be paged or warned about (issue 6 "Packaging").
    for required in [
        "PilotlightNoLeader",
        "PilotlightSeveralLeaders",
        "PilotlightRpoPastTarget",
        "PilotlightCopiesFailing",
        "PilotlightDrNotReady",
        "PilotlightDrillStale",
        "PilotlightRestoreActive",
        "PilotlightRestoreItemsFailed",
    ] {
        if !alerts.contains(required) {
            problems.push(format!("no alert {required}"));
        }
    }
    for name in undocumented(&used) {
        problems.push(format!(
            "the rules use {name}, which docs/metrics.md does not list"
        ));
    }
    assert!(used.contains("pilotlight_drill_last_success_timestamp_seconds"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let Some(promtool) = tool("PILOTLIGHT_PROMTOOL", "promtool") else {
        eprintln!(
            "note: promtool is not installed (nor PILOTLIGHT_PROMTOOL set): `promtool check rules` \
             and `promtool test rules` skipped; the YAML and metric-name checks ran"
        );
        return;
    };
    let dir = repo().join("deploy/prometheus");
    let (ok, out) = run(Command::new(&promtool)
        .args(["check", "rules", "pilotlight-rules.yml"])
        .current_dir(&dir));
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run(Command::new(&promtool)
        .args(["test", "rules", "pilotlight-rules.test.yml"])
        .current_dir(&dir));
    assert!(ok, "promtool test rules:\n{out}");
}

#[test]
fn grafana_dashboard_covers_the_daemon_with_documented_metrics() {
    let dash: Json =
        serde_json::from_str(&read("deploy/grafana/pilotlight-dashboard.json")).expect("JSON");
    assert_eq!(dash["uid"], "pilotlight");
    let variables = dash["templating"]["list"].as_array().expect("templating");
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
        "the dashboard selects its Prometheus with a ${{datasource}} variable"
    );
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for panel in dash["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id ({title})"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: empty query");
            used.extend(metric_names(expr));
        }
    }
    let missing = undocumented(&used);
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics docs/metrics.md does not list: {missing:?}"
    );
    // RPO lag, copies, reconciles, AWS calls and throttles, restore per tier, RTO, leader,
    // drills.
    for needed in [
        "pilotlight_rpo_worst_lag_seconds",
        "pilotlight_copy_in_flight",
        "pilotlight_copy_events_total",
        "pilotlight_reconcile_runs_total",
        "pilotlight_aws_calls_total",
        "pilotlight_aws_throttled_responses_total",
        "pilotlight_restore_tier_instances",
        "pilotlight_restore_elapsed_seconds",
        "pilotlight_plan_rto_estimate_seconds",
        "pilotlight_leader",
        "pilotlight_drill_last_success_timestamp_seconds",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}

/// `[section] key=value` lines of a unit file (repeated keys keep every value).
fn unit_directives(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        out.entry((section.clone(), key.trim().to_owned()))
            .or_default()
            .push(value.trim().to_owned());
    }
    out
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let text = read("deploy/systemd/pilotlight.service");
    let unit = unit_directives(&text);
    let get = |key: &str| -> Vec<String> {
        unit.get(&("Service".to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or_default()
    };
    let one = |key: &str| -> String {
        let v = get(key);
        assert_eq!(v.len(), 1, "[Service] {key}= once: {v:?}");
        v[0].clone()
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("User", "pilotlight"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("StateDirectory", "pilotlight"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(key), value, "[Service] {key}=");
    }
    assert!(get("SystemCallFilter").contains(&"@system-service".to_owned()));
    let credential = one("LoadCredential");
    assert!(
        credential.starts_with("secret:/etc/pilotlight/"),
        "{credential}"
    );
    // The state directory is the default data_dir, where the embedded SQLite store lives.
    let defaults = Config::default();
    assert_eq!(
        defaults.daemon.data_dir,
        Path::new("/var/lib").join(one("StateDirectory"))
    );
    // Stopping waits for the daemon's shutdown grace and some more to release the lease.
    let stop: u64 = one("TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop >= defaults.daemon.shutdown_grace_secs + 10,
        "TimeoutStopSec={stop} leaves too little beyond shutdown_grace_secs={}",
        defaults.daemon.shutdown_grace_secs
    );
    // ExecStart's command line is one the binary accepts.
    let exec = one("ExecStart");
    let mut words = exec.split_whitespace();
    let program = words.next().expect("program");
    assert_eq!(program, "/usr/local/bin/pilotlight");
    let args: Vec<&str> = words.collect();
    assert_eq!(args.last(), Some(&"run"), "{exec}");
    let bin = env!("CARGO_BIN_EXE_pilotlight");
    let (ok, out) = run(Command::new(bin).args(&args).arg("--help"));
    assert!(ok, "{bin} {args:?} --help:\n{out}");

    let Some(analyze) = tool("PILOTLIGHT_SYSTEMD_ANALYZE", "systemd-analyze") else {
        eprintln!(
            "note: systemd-analyze is not installed: `systemd-analyze verify` and the exposure \
             threshold skipped; the directive checks ran"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("pilotlight-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("pilotlight.service");
    std::fs::write(&file, text.replace(program, bin)).expect("unit copy");
    let (ok, out) = run(Command::new(&analyze).arg("verify").arg(&file));
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
    // Exposure 2.0 of 10 at most (`systemd-analyze security` counts in tenths).
    let (ok, out) = run(Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&file));
    assert!(ok, "systemd-analyze security --threshold=20:\n{out}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn container_image_matches_the_daemon() {
    let text = read("deploy/container/Dockerfile");
    let instructions: Vec<(String, String)> = text
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (i, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (i.to_uppercase(), rest.trim().to_owned())
        })
        .collect();
    let all = |name: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(i, _)| i == name)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    let stages = all("FROM");
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let build = all("RUN").join(" ");
    for needed in [
        "cargo build --release --locked -p pilotlight",
        "--mount=type=cache,target=/usr/local/cargo/registry",
        "--mount=type=cache,target=/src/target",
    ] {
        assert!(build.contains(needed), "the build step lacks {needed}");
    }
    let user = all("USER");
    let user = user.last().expect("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert_ne!(uid, 0, "runs as root");

    // The listeners: the default ports, on every interface, exposed.
    let defaults = Config::default();
    let (api, metrics) = (
        defaults.api.listen.port(),
        defaults.api.metrics_listen.port(),
    );
    let exposed: BTreeSet<u16> = all("EXPOSE")
        .iter()
        .flat_map(|r| r.split_whitespace())
        .map(|p| p.parse().expect("port"))
        .collect();
    assert_eq!(exposed, BTreeSet::from([api, metrics]));
    let env = all("ENV").join(" ");
    assert!(
        env.contains(&format!("PILOTLIGHT_API__LISTEN=0.0.0.0:{api}")),
        "{env}"
    );
    assert!(
        env.contains(&format!("PILOTLIGHT_API__METRICS_LISTEN=0.0.0.0:{metrics}")),
        "{env}"
    );
    let volumes = all("VOLUME").join(" ");
    let data_dir = defaults.daemon.data_dir.display().to_string();
    assert!(volumes.contains(&format!("\"{data_dir}\"")), "{volumes}");
    assert!(volumes.contains("\"/etc/pilotlight\""), "{volumes}");
    assert!(env.contains("PILOTLIGHT_CONFIG=/etc/pilotlight/"), "{env}");
    assert_eq!(
        all("ENTRYPOINT"),
        ["[\"/usr/local/bin/pilotlight\"]"],
        "entrypoint"
    );
    assert_eq!(all("CMD"), ["[\"run\"]"]);

    // The build context keeps what the build reads: the workspace, the migrations compiled in by
    // sqlx::migrate! and docs/openapi.json compiled in by the API.
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "crates",
        "tests",
        "migrations",
        "docs/openapi.json",
    ] {
        for p in &patterns {
            let p = p.trim_end_matches('/');
            assert!(
                !(needed == p || needed.starts_with(&format!("{p}/")) || p == "*"),
                ".dockerignore pattern {p:?} drops {needed}, which the build needs"
            );
        }
    }
}

/// Every `.Values.a.b` path a template reads.
fn value_paths(template: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for (at, _) in template.match_indices(".Values.") {
        let path: String = template[at + ".Values.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        out.insert(
            path.trim_end_matches('.')
                .split('.')
                .map(str::to_owned)
                .collect(),
        );
    }
    out
}

#[test]
fn helm_chart_reads_only_defined_values() {
    let chart = "deploy/helm/pilotlight";
    let values = yaml(&format!("{chart}/values.yaml"));
    let meta = yaml(&format!("{chart}/Chart.yaml"));
    assert_eq!(s(&meta, "appVersion"), Some(env!("CARGO_PKG_VERSION")));

    let dir = repo().join(chart).join("templates");
    let mut templates: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("templates")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).expect("template"),
            )
        })
        .collect();
    templates.sort();
    let mut undefined = Vec::new();
    for (name, text) in &templates {
        for path in value_paths(text) {
            let mut node = &values;
            for key in &path {
                node = &node[key.as_str()];
            }
            if node.is_badvalue() {
                undefined.push(format!("{name}: .Values.{}", path.join(".")));
            }
        }
    }
    assert!(
        undefined.is_empty(),
        "templates read values that values.yaml does not define:\n{}",
        undefined.join("\n")
    );
    let names: BTreeSet<&str> = templates.iter().map(|(n, _)| n.as_str()).collect();
    for needed in [
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
        "servicemonitor.yaml",
        "configmap.yaml",
        "secret.yaml",
        "serviceaccount.yaml",
    ] {
        assert!(names.contains(needed), "no templates/{needed}");
    }

    // Two replicas, always one available, non-root with a read-only root filesystem.
    let defaults = Config::default();
    assert_eq!(values["replicaCount"].as_i64(), Some(2));
    assert_eq!(
        values["podDisruptionBudget"]["minAvailable"].as_i64(),
        Some(1)
    );
    assert_eq!(
        values["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        values["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    assert_eq!(
        values["podSecurityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert_eq!(
        values["securityContext"]["capabilities"]["drop"][0].as_str(),
        Some("ALL")
    );
    assert_eq!(
        values["service"]["adminPort"].as_i64(),
        Some(i64::from(defaults.api.listen.port()))
    );
    assert_eq!(
        values["service"]["metricsPort"].as_i64(),
        Some(i64::from(defaults.api.metrics_listen.port()))
    );
    assert_eq!(
        values["shutdownGraceSecs"].as_i64(),
        i64::try_from(defaults.daemon.shutdown_grace_secs).ok()
    );
    assert_eq!(values["serviceMonitor"]["enabled"].as_bool(), Some(false));
    assert!(values["serviceAccount"]["roleArn"].as_str().is_some());
}

/// The rendered objects of `helm template`, by kind.
fn render(helm: &Path, sets: &[&str]) -> Result<BTreeMap<String, Vec<Yaml>>, String> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "pl"])
        .arg(repo().join("deploy/helm/pilotlight"));
    for set in sets {
        cmd.args(["--set", set]);
    }
    let (ok, out) = run(&mut cmd);
    if !ok {
        return Err(out);
    }
    let mut by_kind: BTreeMap<String, Vec<Yaml>> = BTreeMap::new();
    for doc in YamlLoader::load_from_str(&out).map_err(|e| format!("{e}\n{out}"))? {
        if let Some(kind) = s(&doc, "kind") {
            by_kind.entry(kind.to_owned()).or_default().push(doc);
        }
    }
    Ok(by_kind)
}

#[test]
fn helm_renders_a_deployment_the_daemon_accepts() {
    let Some(helm) = tool("PILOTLIGHT_HELM", "helm") else {
        eprintln!(
            "note: helm is not installed (nor PILOTLIGHT_HELM set): `helm lint` and `helm \
             template` skipped; the values check ran"
        );
        return;
    };
    let chart = repo().join("deploy/helm/pilotlight");
    let sets = [
        "secrets.storeUrl=postgres://pilotlight:pw@db:5432/pilotlight",
        "secrets.tokens.oncall=t0ken",
        "serviceAccount.roleArn=arn:aws:iam::123456789012:role/pilotlight",
        "serviceMonitor.enabled=true",
    ];
    let mut lint = Command::new(&helm);
    lint.arg("lint").arg(&chart);
    for set in sets {
        lint.args(["--set", set]);
    }
    let (ok, out) = run(&mut lint);
    assert!(ok, "helm lint:\n{out}");

    // Without a PostgreSQL store the chart refuses to render.
    let err = render(&helm, &["secrets.tokens.oncall=t0ken"]).expect_err("no store URL");
    assert!(err.contains("secrets.storeUrl"), "{err}");

    let objects = render(&helm, &sets).unwrap_or_else(|e| panic!("helm template:\n{e}"));
    for kind in [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
    ] {
        assert!(objects.contains_key(kind), "no {kind} rendered");
    }
    let sa = &objects["ServiceAccount"][0];
    assert_eq!(
        s(&sa["metadata"]["annotations"], "eks.amazonaws.com/role-arn"),
        Some("arn:aws:iam::123456789012:role/pilotlight")
    );
    assert_eq!(
        objects["PodDisruptionBudget"][0]["spec"]["minAvailable"].as_i64(),
        Some(1)
    );
    let deployment = &objects["Deployment"][0];
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(2));
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    // The config the pod gets: the ConfigMap's file plus the container's PILOTLIGHT_* variables,
    // loaded by the daemon's own loader.
    let toml = s(&objects["ConfigMap"][0]["data"], "pilotlight.toml").expect("pilotlight.toml");
    let env: BTreeMap<String, String> = container["env"]
        .as_vec()
        .expect("env")
        .iter()
        .map(|e| {
            (
                s(e, "name").unwrap().to_owned(),
                s(e, "value").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let config_path = env["PILOTLIGHT_CONFIG"].clone();
    let loader_env: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k != "PILOTLIGHT_CONFIG")
        .collect();
    let config = Config::from_sources(Some(toml), &loader_env, &[])
        .unwrap_or_else(|e| panic!("the chart's config does not load: {e:?}\n{toml}"));
    assert_eq!(config.api.tokens.len(), 1);

    // Paths: config and secrets where the volumes are mounted.
    let mounts: BTreeMap<&str, &str> = container["volumeMounts"]
        .as_vec()
        .expect("mounts")
        .iter()
        .map(|m| (s(m, "name").unwrap(), s(m, "mountPath").unwrap()))
        .collect();
    assert!(config_path.starts_with(mounts["config"]), "{config_path}");
    let url_file = config.store.url_file.as_ref().expect("store.url_file");
    assert!(url_file.starts_with(mounts["secrets"]), "{url_file:?}");
    let secret_keys: BTreeSet<&str> = objects["Secret"][0]["stringData"]
        .as_hash()
        .expect("stringData")
        .keys()
        .filter_map(Yaml::as_str)
        .collect();
    for file in std::iter::once(url_file.as_path())
        .chain(config.api.tokens.iter().map(|t| t.token_file.as_path()))
    {
        let key = file.file_name().unwrap().to_str().unwrap();
        assert!(secret_keys.contains(key), "the Secret has no key {key}");
    }
    assert!(
        mounts
            .values()
            .any(|m| Path::new(m) == config.daemon.data_dir)
    );

    // Ports, probes and the shutdown grace agree with the loaded config.
    let ports: BTreeMap<&str, i64> = container["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .map(|p| (s(p, "name").unwrap(), p["containerPort"].as_i64().unwrap()))
        .collect();
    assert_eq!(ports["admin"], i64::from(config.api.listen.port()));
    assert_eq!(
        ports["metrics"],
        i64::from(config.api.metrics_listen.port())
    );
    assert!(config.api.listen.ip().is_unspecified());
    assert_eq!(
        s(&container["livenessProbe"]["httpGet"], "path"),
        Some("/healthz")
    );
    assert_eq!(
        s(&container["readinessProbe"]["httpGet"], "path"),
        Some("/readyz")
    );
    assert_eq!(
        pod["terminationGracePeriodSeconds"].as_i64(),
        i64::try_from(config.daemon.shutdown_grace_secs + 15).ok()
    );
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        s(
            &objects["ServiceMonitor"][0]["spec"]["endpoints"][0],
            "port"
        ),
        Some("metrics")
    );
}
