//! `[[restore.hooks]]` (SPEC D13): webhooks a restore or drill calls after its stages — each
//! EC2 tier at its gate, the load balancers with their instances registered, the databases
//! available, the DNS cutover — so application steps (deploy a build, warm a cache, run smoke
//! tests) are part of the run and of its measured RTO. The types here are the configuration
//! and the stage names; delivery lives in the engine (`restore::hooks`).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::load::{Loader, Seg, child, path};

/// A stage of a run that hooks can follow. Its [`fmt::Display`] form (`tier:1`,
/// `load_balancers`, `databases`, `dns`) names it in `after`, in the payload, in the journal
/// item `hook/<hook>/<stage>` and in the delivery id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookStage {
    /// An EC2 tier, once it passed its gate (before the next tier launches).
    Tier(u8),
    /// Load balancers, target groups and listeners recreated, instances registered.
    LoadBalancers,
    /// DB instances and Aurora clusters available.
    Databases,
    /// The DNS cutover in sync (disasters only: a drill never touches production DNS).
    Dns,
}

impl HookStage {
    /// The tier of a tier stage.
    pub fn tier(self) -> Option<u8> {
        match self {
            HookStage::Tier(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for HookStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookStage::Tier(t) => write!(f, "tier:{t}"),
            HookStage::LoadBalancers => f.write_str("load_balancers"),
            HookStage::Databases => f.write_str("databases"),
            HookStage::Dns => f.write_str("dns"),
        }
    }
}

/// One entry of a hook's `after`: a stage, or `tier:*` for every EC2 tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HookAfter {
    /// `tier:*`.
    EveryTier,
    /// One stage (`tier:2`, `load_balancers`, `databases`, `dns`).
    Stage(HookStage),
}

impl HookAfter {
    /// Whether `stage` is one this entry names.
    pub fn covers(self, stage: HookStage) -> bool {
        match self {
            HookAfter::EveryTier => matches!(stage, HookStage::Tier(_)),
            HookAfter::Stage(s) => s == stage,
        }
    }
}

impl TryFrom<String> for HookAfter {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let stage = match text.as_str() {
            "tier:*" => return Ok(HookAfter::EveryTier),
            "load_balancers" => HookStage::LoadBalancers,
            "databases" => HookStage::Databases,
            "dns" => HookStage::Dns,
            other => match other.strip_prefix("tier:").and_then(super::parse_tier) {
                Some(t) => HookStage::Tier(t),
                None => {
                    return Err(format!(
                        "`{text}` is not a stage: expected \"tier:*\", \"tier:1\" to \"tier:9\", \
                         \"load_balancers\", \"databases\" or \"dns\""
                    ));
                }
            },
        };
        Ok(HookAfter::Stage(stage))
    }
}

impl From<HookAfter> for String {
    fn from(after: HookAfter) -> String {
        match after {
            HookAfter::EveryTier => "tier:*".to_owned(),
            HookAfter::Stage(s) => s.to_string(),
        }
    }
}

/// The runs a hook fires for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookMode {
    /// A declared disaster.
    Disaster,
    /// A drill.
    Drill,
}

/// What a waited-for hook's failure does to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookFailure {
    /// The run starts no further stage and fails, the hook's error as its reason.
    #[default]
    Fail,
    /// The failure is journalled and reported; the run goes on.
    Continue,
}

/// One `[[restore.hooks]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Unique name: 1 to 64 ASCII letters, digits, `-`, `_` or `.` (it is part of the delivery
    /// id and of the journal item).
    pub name: String,
    /// Where the delivery is POSTed: an `http://` or `https://` URL without credentials.
    pub url: String,
    /// File holding the shared secret the deliveries are signed with (HMAC-SHA256).
    pub secret_file: PathBuf,
    /// Stages after which the hook fires: `"tier:*"` (every EC2 tier), `"tier:1"` to
    /// `"tier:9"`, `"load_balancers"`, `"databases"`, `"dns"`.
    #[serde(default = "every_stage")]
    pub after: Vec<HookAfter>,
    /// Whether the run waits for the hook's 2xx answer before the next stage starts.
    #[serde(default)]
    pub wait: bool,
    /// How long one delivery may take, connection and answer, in seconds (1 to 3600).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// The runs the hook fires for: `"disaster"`, `"drill"`.
    #[serde(default = "every_mode")]
    pub modes: Vec<HookMode>,
    /// What the failure of a waited-for hook does: `"fail"` the run or `"continue"` it.
    #[serde(default)]
    pub on_failure: HookFailure,
}

/// The default `after`: every stage.
pub fn every_stage() -> Vec<HookAfter> {
    vec![
        HookAfter::EveryTier,
        HookAfter::Stage(HookStage::LoadBalancers),
        HookAfter::Stage(HookStage::Databases),
        HookAfter::Stage(HookStage::Dns),
    ]
}

fn default_timeout_secs() -> u64 {
    30
}

fn every_mode() -> Vec<HookMode> {
    vec![HookMode::Disaster, HookMode::Drill]
}

impl HookConfig {
    /// Whether the hook fires after `stage` of a run in `mode`.
    pub fn fires(&self, mode: HookMode, stage: HookStage) -> bool {
        self.modes.contains(&mode) && self.after.iter().any(|a| a.covers(stage))
    }

    /// Whether a failure of this hook fails the run.
    pub fn blocks_on_failure(&self) -> bool {
        self.wait && self.on_failure == HookFailure::Fail
    }
}

/// Longest hook name.
const MAX_NAME: usize = 64;

/// Why `url` cannot be a hook's URL, if it cannot.
pub fn url_problem(url: &str) -> Option<&'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some("must start with http:// or https://");
    };
    if !matches!(scheme, "http" | "https") {
        return Some("must start with http:// or https://");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain spaces or control characters");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Some("must not hold credentials (the secret_file signs deliveries)");
    }
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => {
            if port.parse::<u16>().is_err() {
                return Some("has a port that is not a number from 0 to 65535");
            }
            host
        }
        _ => authority,
    };
    if host.is_empty() || host == "[]" {
        return Some("has no host");
    }
    None
}

/// Checks every `[[restore.hooks]]` entry; problems are reported at `restore.hooks[i].<key>`.
pub(super) fn validate(hooks: &[HookConfig], l: &mut Loader) {
    let list = path(&["restore", "hooks"]);
    for (index, hook) in hooks.iter().enumerate() {
        let mut at = list.clone();
        at.push(Seg::Index(index));
        let name_ok = !hook.name.is_empty()
            && hook.name.len() <= MAX_NAME
            && hook
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            l.invalid(
                &child(&at, "name"),
                format!(
                    "must be 1 to {MAX_NAME} ASCII letters, digits, `-`, `_` or `.`, got `{}`",
                    hook.name
                ),
            );
        } else if let Some(first) = hooks[..index].iter().position(|h| h.name == hook.name) {
            l.cross(
                &child(&at, "name"),
                format!(
                    "`{}` is already the name of restore.hooks[{first}]; names must be unique",
                    hook.name
                ),
            );
        }
        if let Some(problem) = url_problem(&hook.url) {
            l.invalid(&child(&at, "url"), problem.to_owned());
        }
        if hook.secret_file.as_os_str().is_empty() {
            l.invalid(&child(&at, "secret_file"), "must not be empty".to_owned());
        }
        if hook.after.is_empty() {
            l.invalid(
                &child(&at, "after"),
                "must name at least one stage (leave it out for every stage)".to_owned(),
            );
        }
        if hook.modes.is_empty() {
            l.invalid(
                &child(&at, "modes"),
                "must name at least one of \"disaster\", \"drill\"".to_owned(),
            );
        }
        if !(1..=3600).contains(&hook.timeout_secs) {
            l.invalid(
                &child(&at, "timeout_secs"),
                format!("must be between 1 and 3600, got {}", hook.timeout_secs),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_entries_parse_and_cover_their_stages() {
        let parse = |s: &str| HookAfter::try_from(s.to_owned());
        assert_eq!(parse("tier:*"), Ok(HookAfter::EveryTier));
        assert_eq!(parse("tier:3"), Ok(HookAfter::Stage(HookStage::Tier(3))));
        assert_eq!(parse("dns"), Ok(HookAfter::Stage(HookStage::Dns)));
        for bad in ["tier:0", "tier:10", "tier", "lb", "DNS", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for stage in [
            HookStage::Tier(1),
            HookStage::Tier(9),
            HookStage::LoadBalancers,
            HookStage::Databases,
            HookStage::Dns,
        ] {
            let round = parse(&stage.to_string());
            assert_eq!(round, Ok(HookAfter::Stage(stage)));
            assert_eq!(
                HookAfter::EveryTier.covers(stage),
                stage.tier().is_some(),
                "{stage}"
            );
        }
        assert!(!HookAfter::Stage(HookStage::Tier(1)).covers(HookStage::Tier(2)));
    }

    #[test]
    fn fires_follows_after_and_modes() {
        let hook = HookConfig {
            name: "smoke".into(),
            url: "https://hooks.example.com/x".into(),
            secret_file: "/run/s".into(),
            after: vec![
                HookAfter::Stage(HookStage::Tier(2)),
                HookAfter::Stage(HookStage::Dns),
            ],
            wait: true,
            timeout_secs: 30,
            modes: vec![HookMode::Drill],
            on_failure: HookFailure::Fail,
        };
        assert!(hook.fires(HookMode::Drill, HookStage::Tier(2)));
        assert!(!hook.fires(HookMode::Drill, HookStage::Tier(1)));
        assert!(!hook.fires(HookMode::Disaster, HookStage::Tier(2)));
        assert!(hook.fires(HookMode::Drill, HookStage::Dns));
        assert!(hook.blocks_on_failure());
        let every = HookConfig {
            after: every_stage(),
            modes: every_mode(),
            ..hook
        };
        assert!(every.fires(HookMode::Disaster, HookStage::Tier(7)));
        assert!(every.fires(HookMode::Disaster, HookStage::LoadBalancers));
    }

    #[test]
    fn urls() {
        for ok in [
            "http://127.0.0.1:8080/hook",
            "https://hooks.example.com",
            "https://hooks.example.com/a?b=c",
            "http://[::1]:9000/x",
            "http://[::1]/x",
        ] {
            assert_eq!(url_problem(ok), None, "{ok}");
        }
        for bad in [
            "ftp://x",
            "hooks.example.com",
            "https://",
            "https://user:pw@hooks.example.com/",
            "http://host:port/",
            "http://host:70000/",
            "http://ho st/",
        ] {
            assert!(url_problem(bad).is_some(), "{bad}");
        }
    }
}
