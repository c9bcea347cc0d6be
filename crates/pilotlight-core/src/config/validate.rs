//! Semantic validation of a loaded `Config`: ranges, formats and the rules that relate several
//! keys. Every failed rule is reported (none stops the others). A value that failed to load is a
//! stand-in default here, so rules relating it to other keys are skipped for it.

use std::path::Path as FsPath;

use super::Config;
use super::load::{Loader, Path, Seg, child, path};

pub(super) fn validate(config: &Config, l: &mut Loader) {
    regions(config, l);
    aws(config, l);
    store(config, l);
    api(config, l);
    reconcile(config, l);
    network(config, l);
    tiers(config, l);
    throttle(config, l);
    log(config, l);
    daemon(config, l);
}

/// Reports `message` at `keys` unless the value there failed to load.
fn check(l: &mut Loader, keys: &[&str], ok: bool, message: impl FnOnce() -> String) {
    let at = path(keys);
    if !ok && !l.failed(&at) {
        l.invalid(&at, message());
    }
}

fn at_least_one(l: &mut Loader, keys: &[&str], value: u64) {
    check(l, keys, value >= 1, || {
        format!("must be at least 1, got {value}")
    });
}

fn in_range(l: &mut Loader, keys: &[&str], value: u64, min: u64, max: u64) {
    check(l, keys, (min..=max).contains(&value), || {
        format!("must be between {min} and {max}, got {value}")
    });
}

fn not_empty_path(l: &mut Loader, keys: &[&str], value: &FsPath) {
    check(l, keys, !value.as_os_str().is_empty(), || {
        "must not be empty".to_owned()
    });
}

/// AWS region name shape: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `us-isob-east-1`.
pub(super) fn is_region_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let lower = |part: &&str| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase());
    match parts.as_slice() {
        [area, middle @ .., number] => {
            area.len() == 2
                && lower(area)
                && (1..=2).contains(&middle.len())
                && middle.iter().all(lower)
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

fn regions(config: &Config, l: &mut Loader) {
    let regions = &config.regions;
    for (key, value) in [("primary", &regions.primary), ("dr", &regions.dr)] {
        check(l, &["regions", key], is_region_name(value), || {
            format!("`{value}` is not an AWS region name (like `us-east-1`)")
        });
    }
    let primary_ok = !l.failed(&path(&["regions", "primary"])) && is_region_name(&regions.primary);
    let dr_ok = !l.failed(&path(&["regions", "dr"])) && is_region_name(&regions.dr);
    if primary_ok && dr_ok && regions.primary == regions.dr {
        l.cross(
            &path(&["regions", "dr"]),
            format!(
                "must differ from regions.primary (both are `{}`)",
                regions.primary
            ),
        );
    }
    let in_region = |zone: &str, region: &str| {
        zone.strip_prefix(region)
            .is_some_and(|suffix| !suffix.is_empty())
    };
    for (from, to) in &regions.az_map {
        let entry: Path = child(&path(&["regions", "az_map"]), from);
        if l.failed(&entry) {
            continue;
        }
        if primary_ok && !in_region(from, &regions.primary) {
            l.invalid(
                &entry,
                format!(
                    "`{from}` is not an availability zone of the primary region `{}`",
                    regions.primary
                ),
            );
        } else if dr_ok && !in_region(to, &regions.dr) {
            l.invalid(
                &entry,
                format!(
                    "`{to}` is not an availability zone of the DR region `{}`",
                    regions.dr
                ),
            );
        }
    }
}

fn aws(config: &Config, l: &mut Loader) {
    let aws = &config.aws;
    if let Some(url) = &aws.endpoint_url {
        let ok = ["http://", "https://"].iter().any(|scheme| {
            url.strip_prefix(scheme)
                .is_some_and(|rest| !rest.is_empty())
        });
        check(l, &["aws", "endpoint_url"], ok, || {
            "must be an http:// or https:// URL".to_owned()
        });
    }
    let id = path(&["aws", "access_key_id_file"]);
    let secret = path(&["aws", "secret_access_key_file"]);
    if !l.failed(&id) && !l.failed(&secret) {
        match (&aws.access_key_id_file, &aws.secret_access_key_file) {
            (Some(_), None) => l.cross(
                &secret,
                "must be set together with aws.access_key_id_file".to_owned(),
            ),
            (None, Some(_)) => l.cross(
                &id,
                "must be set together with aws.secret_access_key_file".to_owned(),
            ),
            _ => {}
        }
    }
    if let Some(file) = &aws.access_key_id_file {
        not_empty_path(l, &["aws", "access_key_id_file"], file);
    }
    if let Some(file) = &aws.secret_access_key_file {
        not_empty_path(l, &["aws", "secret_access_key_file"], file);
    }
    in_range(
        l,
        &["aws", "max_attempts"],
        u64::from(aws.max_attempts),
        1,
        10,
    );
    at_least_one(
        l,
        &["aws", "connect_timeout_secs"],
        aws.connect_timeout_secs,
    );
    at_least_one(
        l,
        &["aws", "operation_timeout_secs"],
        aws.operation_timeout_secs,
    );
}

/// True if `url` names a store back-end pilotlight supports.
fn store_scheme_ok(url: &str) -> bool {
    ["sqlite:", "postgres:", "postgresql:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

fn store(config: &Config, l: &mut Loader) {
    let store = &config.store;
    if let Some(url) = &store.url {
        // The message never repeats the URL: it may carry a password.
        check(l, &["store", "url"], store_scheme_ok(url), || {
            "unsupported URL scheme; expected sqlite:, postgres: or postgresql:".to_owned()
        });
    }
    if let Some(file) = &store.url_file {
        not_empty_path(l, &["store", "url_file"], file);
    }
    let url = path(&["store", "url"]);
    let url_file = path(&["store", "url_file"]);
    if store.url.is_some() && store.url_file.is_some() && !l.failed(&url) && !l.failed(&url_file) {
        l.cross(
            &url_file,
            "set store.url or store.url_file, not both".to_owned(),
        );
    }
    at_least_one(
        l,
        &["store", "max_connections"],
        u64::from(store.max_connections),
    );
}

fn api(config: &Config, l: &mut Loader) {
    let api = &config.api;
    let listen = path(&["api", "listen"]);
    let metrics = path(&["api", "metrics_listen"]);
    if api.listen == api.metrics_listen
        && api.listen.port() != 0
        && !l.failed(&listen)
        && !l.failed(&metrics)
    {
        l.cross(
            &metrics,
            format!("must differ from api.listen (both are {})", api.listen),
        );
    }
    at_least_one(l, &["api", "max_body_bytes"], api.max_body_bytes);
    at_least_one(
        l,
        &["api", "request_timeout_secs"],
        api.request_timeout_secs,
    );
    let tokens = path(&["api", "tokens"]);
    for (index, token) in api.tokens.iter().enumerate() {
        let mut at = tokens.clone();
        at.push(Seg::Index(index));
        if token.name.is_empty() {
            l.invalid(&child(&at, "name"), "must not be empty".to_owned());
        } else if let Some(first) = api.tokens[..index]
            .iter()
            .position(|earlier| earlier.name == token.name)
        {
            l.cross(
                &child(&at, "name"),
                format!(
                    "`{}` is already the name of api.tokens[{first}]; names must be unique",
                    token.name
                ),
            );
        }
        if token.token_file.as_os_str().is_empty() {
            l.invalid(&child(&at, "token_file"), "must not be empty".to_owned());
        }
    }
}

fn reconcile(config: &Config, l: &mut Loader) {
    let reconcile = &config.reconcile;
    at_least_one(l, &["reconcile", "cycle_secs"], reconcile.cycle_secs);
    let concurrency = u64::try_from(reconcile.concurrency).unwrap_or(u64::MAX);
    in_range(l, &["reconcile", "concurrency"], concurrency, 1, 64);
    at_least_one(
        l,
        &["reconcile", "max_backoff_secs"],
        reconcile.max_backoff_secs,
    );
}

fn network(config: &Config, l: &mut Loader) {
    if let Some(selector) = &config.network.vpc_tag_selector {
        let ok = selector
            .split_once('=')
            .is_some_and(|(key, _)| !key.is_empty());
        check(l, &["network", "vpc_tag_selector"], ok, || {
            format!("`{selector}` is not of the form \"key=value\"")
        });
    }
}

fn tiers(config: &Config, l: &mut Loader) {
    let tiers = &config.tiers;
    check(l, &["tiers", "tag_key"], !tiers.tag_key.is_empty(), || {
        "must not be empty".to_owned()
    });
    let default_tier = u64::from(tiers.default_tier);
    in_range(l, &["tiers", "default_tier"], default_tier, 1, 9);
    let rpo = path(&["tiers", "rpo_secs"]);
    for (tier, secs) in &tiers.rpo_secs {
        let entry = child(&rpo, &tier.to_string());
        if *secs == 0 && !l.failed(&entry) {
            l.invalid(&entry, "must be at least 1 second".to_owned());
        }
    }
    let default_path = path(&["tiers", "default_tier"]);
    if (1..=9).contains(&tiers.default_tier)
        && !tiers.rpo_secs.contains_key(&tiers.default_tier)
        && !l.failed(&default_path)
    {
        l.cross(
            &default_path,
            format!(
                "tier {} has no RPO target in tiers.rpo_secs",
                tiers.default_tier
            ),
        );
    }
}

fn throttle(config: &Config, l: &mut Loader) {
    let throttle = &config.throttle;
    let scale = throttle.time_scale;
    check(
        l,
        &["throttle", "time_scale"],
        scale.is_finite() && scale > 0.0,
        || format!("must be a finite number greater than 0, got {scale}"),
    );
    let overrides = path(&["throttle", "overrides"]);
    for (key, bucket) in &throttle.overrides {
        let entry = child(&overrides, key);
        let burst = child(&entry, "burst");
        if bucket.burst < 1 && !l.failed(&burst) {
            l.invalid(&burst, format!("must be at least 1, got {}", bucket.burst));
        }
        let refill = child(&entry, "refill_per_sec");
        let rate = bucket.refill_per_sec;
        let rate_ok = rate.is_finite() && rate > 0.0;
        if !rate_ok && !l.failed(&refill) {
            l.invalid(
                &refill,
                format!("must be a finite number greater than 0, got {rate}"),
            );
        }
    }
}

/// True if `level` is a level name or number `tracing` accepts.
fn is_level(level: &str) -> bool {
    ["trace", "debug", "info", "warn", "error", "off"]
        .iter()
        .any(|name| level.eq_ignore_ascii_case(name))
        || matches!(level, "0" | "1" | "2" | "3" | "4" | "5")
}

/// A light check of EnvFilter syntax: non-empty comma-separated directives whose level part,
/// when present (`target=level`, `target[span]=level`), is a level. The binary's EnvFilter
/// parse remains the final word.
fn level_problem(filter: &str) -> Option<String> {
    if filter.trim().is_empty() {
        return Some("must not be empty".to_owned());
    }
    for directive in filter.split(',').map(str::trim) {
        if directive.is_empty() {
            return Some("has an empty directive (stray comma)".to_owned());
        }
        let after_span = directive
            .rfind(']')
            .map_or(directive, |end| &directive[end..]);
        if let Some((_, level)) = after_span.rsplit_once('=')
            && !is_level(level)
        {
            return Some(format!(
                "`{level}` in directive `{directive}` is not a level \
                 (trace, debug, info, warn, error, off)"
            ));
        }
    }
    None
}

fn log(config: &Config, l: &mut Loader) {
    let level = &config.log.level;
    if let Some(problem) = level_problem(level) {
        check(l, &["log", "level"], false, || problem);
    }
}

fn daemon(config: &Config, l: &mut Loader) {
    let daemon = &config.daemon;
    not_empty_path(l, &["daemon", "data_dir"], &daemon.data_dir);
    at_least_one(
        l,
        &["daemon", "shutdown_grace_secs"],
        daemon.shutdown_grace_secs,
    );
    at_least_one(l, &["daemon", "lease_ttl_secs"], daemon.lease_ttl_secs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        for good in [
            "us-east-1",
            "us-west-2",
            "eu-central-2",
            "ap-southeast-5",
            "us-gov-west-1",
            "us-isob-east-1",
            "il-central-1",
        ] {
            assert!(is_region_name(good), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "us-east-1a",
            "US-EAST-1",
            "useast1",
            "usa-east-1",
            "us--1",
            "us-east-1-",
            "us-a-b-c-1",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    #[test]
    fn log_levels() {
        for good in [
            "info",
            "INFO",
            "warn,pilotlight_aws=debug",
            "pilotlight",
            "h2=off,hyper=error",
            "pilotlight[restore{tier=1}]=trace",
            "pilotlight[restore{tier=1}]",
            "3",
        ] {
            assert_eq!(level_problem(good), None, "{good}");
        }
        for bad in ["", "  ", "info,", "pilotlight=loud", "a=b=c"] {
            assert!(level_problem(bad).is_some(), "{bad}");
        }
    }
}
