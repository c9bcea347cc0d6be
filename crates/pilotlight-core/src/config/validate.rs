//! Semantic validation of a loaded `Config`: ranges, formats and the rules that relate several
//! keys. Every failed rule is reported (none stops the others). A value that failed to load is a
//! stand-in default here, so rules relating it to other keys are skipped for it.

use std::net::Ipv4Addr;
use std::path::Path as FsPath;

use super::load::{Loader, Path, Seg, child, path, render};
use super::{Config, CopyConfig, VCPU_QUOTA_GROUPS};
use crate::fallback::FallbackPolicy;

/// Days CloudWatch keeps data points of periods under 300 s; older ones can be asked only
/// with a period that is a multiple of 300 (up to 63 days ago).
const CLOUDWATCH_FINE_RETENTION_DAYS: u64 = 15;

pub(super) fn validate(config: &Config, l: &mut Loader) {
    regions(config, l);
    aws(config, l);
    store(config, l);
    api(config, l);
    reconcile(config, l);
    network(config, l);
    copy(config, l);
    tiers(config, l);
    inventory(config, l);
    s3(config, l);
    tenants(config, l);
    quotas(config, l);
    readiness(config, l);
    restore(config, l);
    drill(config, l);
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

/// True if `id` is an EBS volume id: `vol-` and 8 or 17 lowercase hex digits.
pub(super) fn is_volume_id(id: &str) -> bool {
    id.strip_prefix("vol-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// What is wrong with an RDS DB instance or cluster identifier, if anything: AWS requires 1
/// to 63 letters, digits or hyphens, a letter first, no hyphen last and no two in a row.
pub(super) fn db_identifier_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() || id.len() > 63 {
        Some("must be 1 to 63 characters long")
    } else if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Some("may contain only letters, digits and hyphens")
    } else if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("must start with a letter")
    } else if id.ends_with('-') || id.contains("--") {
        Some("must not end with a hyphen or contain two hyphens in a row")
    } else {
        None
    }
}

/// What a KMS ARN names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KmsResource {
    /// `key/<id>`.
    Key,
    /// `alias/<name>`.
    Alias,
}

/// Splits a KMS ARN `arn:<partition>:kms:<region>:<account>:key/<id>` (or `alias/<name>`)
/// into its region and what it names; `None` if `arn` is not of that shape.
pub(super) fn parse_kms_arn(arn: &str) -> Option<(&str, KmsResource)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("kms"), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let partition_ok = partition.starts_with("aws")
        && partition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-');
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    if !partition_ok || !account_ok || !is_region_name(region) {
        return None;
    }
    let named = |prefix: &str| {
        resource
            .strip_prefix(prefix)
            .is_some_and(|name| !name.is_empty())
    };
    if named("key/") {
        Some((region, KmsResource::Key))
    } else if named("alias/") {
        Some((region, KmsResource::Alias))
    } else {
        None
    }
}

/// The first problem of a selector tag, if any (AWS's tag limits: keys 1 to 128 characters,
/// values up to 256; a selector value must not be empty).
fn tag_problem(key: &str, value: &str) -> Option<String> {
    let key_len = key.chars().count();
    let value_len = value.chars().count();
    if !(1..=128).contains(&key_len) {
        Some(format!(
            "tag key must be 1 to 128 characters, got {key_len}"
        ))
    } else if !(1..=256).contains(&value_len) {
        Some(format!(
            "tag value must be 1 to 256 characters, got {value_len}"
        ))
    } else {
        None
    }
}

/// Checks every element of an id list with `problem`, reporting each at `keys[index]`.
fn id_list(
    l: &mut Loader,
    keys: &[&str],
    ids: &[String],
    problem: impl Fn(&str) -> Option<String>,
) {
    let list = path(keys);
    if l.failed(&list) {
        return;
    }
    for (index, id) in ids.iter().enumerate() {
        if let Some(message) = problem(id) {
            let mut at = list.clone();
            at.push(Seg::Index(index));
            l.invalid(&at, message);
        }
    }
}

/// Checks a KMS key reference at `at` (`label` names it in messages: "key", "value") that must
/// be an ARN naming one of `allowed` and, when `region` = (`name`, `key`) is given (the region
/// is valid), lie in that region. A bad shape is the value's own problem; a wrong region is a
/// rule relating it to the region key.
fn kms_arn_in_region(
    l: &mut Loader,
    at: &Path,
    label: &str,
    value: &str,
    allowed: &[KmsResource],
    region: Option<(&str, &str)>,
) {
    match parse_kms_arn(value) {
        Some((arn_region, kind)) if allowed.contains(&kind) => {
            if let Some((name, key)) = region
                && arn_region != name
            {
                l.cross(
                    at,
                    format!("{label} `{value}` is in `{arn_region}`, not in {key} `{name}`"),
                );
            }
        }
        _ => {
            let expected = if allowed.contains(&KmsResource::Alias) {
                "a KMS key or alias ARN (arn:aws:kms:<region>:<account>:key/<id> or \
                 …:alias/<name>)"
            } else {
                "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
            };
            l.invalid(at, format!("{label} `{value}` is not {expected}"));
        }
    }
}

fn copy(config: &Config, l: &mut Loader) {
    let copy = &config.copy;
    at_least_one(l, &["copy", "cycle_secs"], copy.cycle_secs);

    let tags = path(&["copy", "selector_tags"]);
    for (key, value) in &copy.selector_tags {
        let entry = child(&tags, key);
        if let Some(problem) = tag_problem(key, value)
            && !l.failed(&entry)
        {
            l.invalid(&entry, problem);
        }
    }

    id_list(l, &["copy", "volume_ids"], &copy.volume_ids, |id| {
        (!is_volume_id(id)).then(|| {
            format!("`{id}` is not an EBS volume id (`vol-` and 8 or 17 lowercase hex digits)")
        })
    });
    for (key, ids) in [
        ("db_instance_ids", &copy.db_instance_ids),
        ("db_cluster_ids", &copy.db_cluster_ids),
    ] {
        id_list(l, &["copy", key], ids, |id| {
            db_identifier_problem(id)
                .map(|problem| format!("`{id}` is not a DB identifier: {problem}"))
        });
    }

    for (key, value, max) in [
        (
            "ebs_max_in_flight",
            copy.ebs_max_in_flight,
            CopyConfig::AWS_EBS_MAX_IN_FLIGHT,
        ),
        (
            "rds_max_in_flight",
            copy.rds_max_in_flight,
            CopyConfig::AWS_RDS_MAX_IN_FLIGHT,
        ),
        (
            "rds_cluster_max_in_flight",
            copy.rds_cluster_max_in_flight,
            CopyConfig::AWS_RDS_CLUSTER_MAX_IN_FLIGHT,
        ),
        (
            "ami_max_in_flight",
            copy.ami_max_in_flight,
            CopyConfig::AWS_AMI_MAX_IN_FLIGHT,
        ),
    ] {
        check(l, &["copy", key], (1..=max).contains(&value), || {
            format!("must be between 1 and {max} (AWS refuses more copies in flight), got {value}")
        });
    }
    for (key, value) in [
        ("keep_per_volume", copy.keep_per_volume),
        ("keep_per_db", copy.keep_per_db),
        ("keep_per_image", copy.keep_per_image),
        ("rds_manual_snapshot_quota", copy.rds_manual_snapshot_quota),
    ] {
        at_least_one(l, &["copy", key], u64::from(value));
    }
    let timeout = copy.copy_timeout_secs;
    let min = CopyConfig::MIN_COPY_TIMEOUT_SECS;
    check(l, &["copy", "copy_timeout_secs"], timeout >= min, || {
        format!("must be at least {min}, got {timeout}")
    });

    // A region that is itself invalid (or failed to load) cannot judge the keys' regions.
    let region_ok =
        |key: &str, name: &str| !l.failed(&path(&["regions", key])) && is_region_name(name);
    let primary = region_ok("primary", &config.regions.primary)
        .then_some((config.regions.primary.as_str(), "regions.primary"));
    let dr =
        region_ok("dr", &config.regions.dr).then_some((config.regions.dr.as_str(), "regions.dr"));

    let map = path(&["copy", "kms_key_map"]);
    for (from, to) in &copy.kms_key_map {
        let entry = child(&map, from);
        if l.failed(&entry) {
            continue;
        }
        let key_kinds = [KmsResource::Key];
        kms_arn_in_region(l, &entry, "key", from, &key_kinds, primary);
        let value_kinds = [KmsResource::Key, KmsResource::Alias];
        kms_arn_in_region(l, &entry, "value", to, &value_kinds, dr);
    }

    if let Some(key) = &copy.dr_default_kms_key {
        let at = path(&["copy", "dr_default_kms_key"]);
        let alias_name = key
            .strip_prefix("alias/")
            .is_some_and(|name| !name.is_empty());
        // An alias name needs no check of its region: AWS resolves it in the DR region.
        if !alias_name && !l.failed(&at) {
            if parse_kms_arn(key).is_some() {
                let kinds = [KmsResource::Key, KmsResource::Alias];
                kms_arn_in_region(l, &at, "key", key, &kinds, dr);
            } else {
                l.invalid(
                    &at,
                    format!(
                        "`{key}` is neither a KMS key or alias ARN \
                         (arn:aws:kms:<region>:<account>:key/<id>) nor an alias name \
                         (alias/<name>)"
                    ),
                );
            }
        }
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

/// Prefixes AWS reserves and refuses in general purpose bucket names.
const RESERVED_BUCKET_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
/// Suffixes AWS reserves and refuses in general purpose bucket names.
const RESERVED_BUCKET_SUFFIXES: [&str; 5] =
    ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// What is wrong with an S3 general purpose bucket name, if anything: AWS requires 3 to 63
/// lowercase letters, digits, `-` and `.`, a letter or digit first and last, no `..`, not the
/// form of an IPv4 address and none of the reserved prefixes and suffixes.
pub(super) fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !(3..=63).contains(&name.chars().count()) {
        Some("must be 3 to 63 characters long")
    } else if !name.chars().all(|c| alnum(c) || c == '-' || c == '.') {
        Some("may contain only lowercase letters, digits, `-` and `.`")
    } else if !name.starts_with(alnum) || !name.ends_with(alnum) {
        Some("must start and end with a lowercase letter or digit")
    } else if name.contains("..") {
        Some("must not contain two periods in a row")
    } else if name.parse::<Ipv4Addr>().is_ok() {
        Some("must not be formatted as an IP address")
    } else if RESERVED_BUCKET_PREFIXES
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || RESERVED_BUCKET_SUFFIXES
            .iter()
            .any(|suffix| name.ends_with(suffix))
    {
        Some(
            "uses a prefix or suffix AWS reserves (`xn--`, `sthree-`, `amzn-s3-demo-`, \
             `-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`)",
        )
    } else {
        None
    }
}

/// True if `name` is a tenant name: 1 to 128 ASCII letters, digits, `-`, `_` and `.` (the
/// admin API's rule for the tenants it manages).
pub(super) fn is_tenant_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// True if `arn` has the shape of an ARN: `arn:<partition>:<service>:<region>:<account>:
/// <resource>` with partition, service and resource not empty (region and account may be,
/// as in IAM server certificate ARNs).
pub(super) fn looks_like_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, service, _, _, resource]
            if !partition.is_empty() && !service.is_empty() && !resource.is_empty()
    )
}

/// Reports at `keys[index]` every element of `items` equal to an earlier one (a rule on the
/// list as a whole).
fn no_duplicates(l: &mut Loader, keys: &[&str], items: &[String]) {
    let list = path(keys);
    if l.failed(&list) {
        return;
    }
    let name = keys.join(".");
    for (index, item) in items.iter().enumerate() {
        if let Some(first) = items[..index].iter().position(|earlier| earlier == item) {
            let mut at = list.clone();
            at.push(Seg::Index(index));
            l.cross(
                &at,
                format!("`{item}` is already {name}[{first}]; entries must be unique"),
            );
        }
    }
}

/// A tag key: 1 to 128 characters (AWS's limit).
fn tag_key(l: &mut Loader, keys: &[&str], key: &str) {
    let len = key.chars().count();
    check(l, keys, (1..=128).contains(&len), || {
        format!("must be a tag key of 1 to 128 characters, got {len}")
    });
}

fn inventory(config: &Config, l: &mut Loader) {
    let inventory = &config.inventory;
    at_least_one(l, &["inventory", "cycle_secs"], inventory.cycle_secs);
    let bucket = &inventory.bucket;
    if let Some(problem) = bucket_name_problem(bucket) {
        check(l, &["inventory", "bucket"], false, || {
            format!("`{bucket}` is not a valid S3 bucket name: {problem}")
        });
    }
    let prefix = &inventory.prefix;
    check(
        l,
        &["inventory", "prefix"],
        !prefix.starts_with('/'),
        || format!("`{prefix}` must not start with `/` (S3 keys have no leading slash)"),
    );
    tag_key(l, &["inventory", "cluster_tag"], &inventory.cluster_tag);
    let window = u64::from(inventory.utilisation_window_days);
    in_range(l, &["inventory", "utilisation_window_days"], window, 1, 63);
    let refresh = inventory.utilisation_refresh_secs;
    check(
        l,
        &["inventory", "utilisation_refresh_secs"],
        refresh >= 60,
        || format!("must be at least 60, got {refresh}"),
    );
    let period = inventory.utilisation_period_secs;
    let period_ok = period >= 60 && period.is_multiple_of(60);
    check(
        l,
        &["inventory", "utilisation_period_secs"],
        period_ok,
        || format!("must be 60 or a multiple of 60, got {period}"),
    );
    let period_path = path(&["inventory", "utilisation_period_secs"]);
    let window_path = path(&["inventory", "utilisation_window_days"]);
    let days = CLOUDWATCH_FINE_RETENTION_DAYS;
    if period_ok
        && (days + 1..=63).contains(&window)
        && !period.is_multiple_of(300)
        && !l.failed(&period_path)
        && !l.failed(&window_path)
    {
        l.cross(
            &period_path,
            format!(
                "must be a multiple of 300 when inventory.utilisation_window_days exceeds {days} \
                 (CloudWatch returns no data points older than {days} days for other periods), \
                 got {period} with a window of {window} days"
            ),
        );
    }
}

fn s3(config: &Config, l: &mut Loader) {
    let s3 = &config.s3;
    id_list(l, &["s3", "buckets"], &s3.buckets, |bucket| {
        bucket_name_problem(bucket)
            .map(|problem| format!("`{bucket}` is not a valid S3 bucket name: {problem}"))
    });
    no_duplicates(l, &["s3", "buckets"], &s3.buckets);
    at_least_one(l, &["s3", "cycle_secs"], s3.cycle_secs);
    let samples = u64::from(s3.sample_objects);
    in_range(l, &["s3", "sample_objects"], samples, 1, 1000);
}

fn tenants(config: &Config, l: &mut Loader) {
    let list = path(&["tenants"]);
    if l.failed(&list) {
        return;
    }
    for (index, tenant) in config.tenants.iter().enumerate() {
        let mut at = list.clone();
        at.push(Seg::Index(index));
        let name_at = child(&at, "name");
        let name = &tenant.name;
        if !is_tenant_name(name) {
            l.invalid(
                &name_at,
                format!("`{name}` is not a tenant name: 1 to 128 letters, digits, `-`, `_` or `.`"),
            );
        } else if let Some(first) = config.tenants[..index]
            .iter()
            .position(|earlier| earlier.name == *name)
        {
            l.cross(
                &name_at,
                format!("`{name}` is already the name of tenants[{first}]; names must be unique"),
            );
        }
        let clusters_at = child(&at, "clusters");
        if tenant.clusters.is_empty() {
            l.invalid(&clusters_at, "must name at least one cluster".to_owned());
        }
        for (cluster_index, cluster) in tenant.clusters.iter().enumerate() {
            if cluster.is_empty() {
                let mut cluster_at = clusters_at.clone();
                cluster_at.push(Seg::Index(cluster_index));
                l.invalid(&cluster_at, "must not be empty".to_owned());
            }
        }
    }
}

fn quotas(config: &Config, l: &mut Loader) {
    let vcpus = path(&["quotas", "vcpus"]);
    for group in config.quotas.vcpus.keys() {
        let entry = child(&vcpus, group);
        if !VCPU_QUOTA_GROUPS.contains(&group.as_str()) && !l.failed(&entry) {
            l.invalid(
                &entry,
                format!(
                    "`{group}` is not a vCPU quota group; expected one of {}",
                    VCPU_QUOTA_GROUPS.join(", ")
                ),
            );
        }
    }
}

fn readiness(config: &Config, l: &mut Loader) {
    let readiness = &config.readiness;
    at_least_one(l, &["readiness", "cycle_secs"], readiness.cycle_secs);
    tag_key(l, &["readiness", "always_on_tag"], &readiness.always_on_tag);
    id_list(
        l,
        &["readiness", "always_on"],
        &readiness.always_on,
        |service| service.is_empty().then(|| "must not be empty".to_owned()),
    );
    no_duplicates(l, &["readiness", "always_on"], &readiness.always_on);
    let map = path(&["readiness", "certificate_map"]);
    for (from, to) in &readiness.certificate_map {
        let entry = child(&map, from);
        if l.failed(&entry) {
            continue;
        }
        for (label, arn) in [("key", from), ("value", to)] {
            if !looks_like_arn(arn) {
                l.invalid(
                    &entry,
                    format!(
                        "{label} `{arn}` is not a certificate ARN \
                         (arn:<partition>:<service>:<region>:<account>:<resource>)"
                    ),
                );
            }
        }
    }
}

fn restore(config: &Config, l: &mut Loader) {
    let restore = &config.restore;
    for (key, value) in [
        ("max_instances_per_call", restore.max_instances_per_call),
        (
            "route53_max_changes_per_batch",
            restore.route53_max_changes_per_batch,
        ),
    ] {
        in_range(l, &["restore", key], u64::from(value), 1, 1000);
    }
    in_range(
        l,
        &["restore", "poll_interval_ms"],
        restore.poll_interval_ms,
        10,
        600_000,
    );
    in_range(
        l,
        &["restore", "concurrency"],
        u64::from(restore.concurrency),
        1,
        256,
    );
    fallback(&restore.fallback, l);
    super::hooks::validate(&restore.hooks, l);
}

/// True if `name` looks like an EC2 instance family (`r5`, `m7i-flex`, `u-6tb1`): lowercase
/// ASCII letters, digits and `-`, starting with a letter.
pub(super) fn is_instance_family(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// How a bad instance family is described in messages.
const FAMILY_SHAPE: &str =
    "lowercase letters, digits and `-`, starting with a letter, like `r5` or `m7i-flex`";

/// `[drill]`: the schedule parses, tiers are tiers, the hold is bounded.
fn drill(config: &Config, l: &mut Loader) {
    let drill = &config.drill;
    let schedule = drill.schedule.trim();
    let parsed = (!schedule.is_empty()).then(|| crate::cron::Cron::parse(schedule));
    check(
        l,
        &["drill", "schedule"],
        !matches!(parsed, Some(Err(_))),
        || match parsed {
            Some(Err(e)) => e.reason,
            _ => String::new(),
        },
    );
    for tier in &drill.tiers {
        check(l, &["drill", "tiers"], (1..=9).contains(tier), || {
            format!("{tier} is not a tier: expected 1 to 9")
        });
    }
    in_range(l, &["drill", "hold_secs"], drill.hold_secs, 0, 86_400);
    let zone = drill.dns_zone.trim_end_matches('.');
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    check(
        l,
        &["drill", "dns_zone"],
        zone.is_empty()
            || (zone.len() <= 200 && zone.contains('.') && zone.split('.').all(label_ok)),
        || {
            format!(
                "{:?} is not a domain name like \"drill.example.internal\"",
                drill.dns_zone
            )
        },
    );
}

/// `[restore.fallback]`: plan B's knobs (SPEC D4).
fn fallback(policy: &FallbackPolicy, l: &mut Loader) {
    in_range(
        l,
        &["restore", "fallback", "headroom_pct"],
        u64::from(policy.headroom_pct),
        0,
        100,
    );
    at_least_one(
        l,
        &["restore", "fallback", "unavailable_ttl_secs"],
        policy.unavailable_ttl_secs,
    );
    at_least_one(
        l,
        &["restore", "fallback", "min_utilisation_samples"],
        u64::from(policy.min_utilisation_samples),
    );
    let map = path(&["restore", "fallback", "alternative_families"]);
    for (family, alternatives) in &policy.alternative_families {
        let entry = child(&map, family);
        if l.failed(&entry) {
            continue;
        }
        if !is_instance_family(family) {
            l.invalid(
                &entry,
                format!("key `{family}` is not an instance family ({FAMILY_SHAPE})"),
            );
        }
        for (index, alternative) in alternatives.iter().enumerate() {
            let mut at = entry.clone();
            at.push(Seg::Index(index));
            if !is_instance_family(alternative) {
                l.invalid(
                    &at,
                    format!("`{alternative}` is not an instance family ({FAMILY_SHAPE})"),
                );
            } else if alternative == family {
                l.cross(
                    &at,
                    format!("`{family}` lists itself; its alternatives must be other families"),
                );
            } else if let Some(first) = alternatives[..index]
                .iter()
                .position(|earlier| earlier == alternative)
            {
                l.cross(
                    &at,
                    format!(
                        "`{alternative}` is already {}[{first}]; entries must be unique",
                        render(&entry)
                    ),
                );
            }
        }
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
    fn volume_ids() {
        for good in ["vol-0123abcd", "vol-0123456789abcdef0"] {
            assert!(is_volume_id(good), "{good}");
        }
        for bad in [
            "",
            "vol-",
            "vol-0123abc",
            "vol-0123456789abcdef",
            "vol-0123ABCD",
            "vol-0123abcg",
            "snap-0123abcd",
            "0123abcd",
        ] {
            assert!(!is_volume_id(bad), "{bad}");
        }
    }

    #[test]
    fn db_identifiers() {
        let longest = format!("a{}", "b".repeat(62));
        for good in ["a", "app-db", "Orders2", longest.as_str()] {
            assert_eq!(db_identifier_problem(good), None, "{good}");
        }
        let too_long = format!("a{}", "b".repeat(63));
        for (bad, problem) in [
            ("", "1 to 63"),
            (too_long.as_str(), "1 to 63"),
            ("app_db", "letters, digits and hyphens"),
            ("app.db", "letters, digits and hyphens"),
            ("1db", "start with a letter"),
            ("-db", "start with a letter"),
            ("db-", "hyphen"),
            ("app--db", "hyphen"),
        ] {
            let got = db_identifier_problem(bad);
            assert!(got.is_some_and(|p| p.contains(problem)), "{bad}: {got:?}");
        }
    }

    #[test]
    fn kms_arns() {
        assert_eq!(
            parse_kms_arn(
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            ),
            Some(("us-east-1", KmsResource::Key))
        );
        assert_eq!(
            parse_kms_arn("arn:aws:kms:us-west-2:123456789012:alias/dr/ebs"),
            Some(("us-west-2", KmsResource::Alias))
        );
        assert_eq!(
            parse_kms_arn("arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/k"),
            Some(("us-gov-west-1", KmsResource::Key))
        );
        for bad in [
            "",
            "alias/dr",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:key/",
            "arn:aws:kms:us-east-1:123456789012:grant/g",
            "arn:aws:kms:us-east-1:12345:key/k",
            "arn:aws:kms:useast1:123456789012:key/k",
            "arn:aws:s3:us-east-1:123456789012:key/k",
            "arn:gcp:kms:us-east-1:123456789012:key/k",
            "arn:aws:kms:us-east-1:key/k",
        ] {
            assert_eq!(parse_kms_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn bucket_names() {
        let longest = "a".repeat(63);
        for good in [
            "abc",
            "my-bucket",
            "my.bucket.2",
            "0bucket9",
            "192.168.5",
            "xn-bucket",
            longest.as_str(),
        ] {
            assert_eq!(bucket_name_problem(good), None, "{good}");
        }
        let too_long = "a".repeat(64);
        for (bad, problem) in [
            ("", "3 to 63"),
            ("ab", "3 to 63"),
            (too_long.as_str(), "3 to 63"),
            ("My-Bucket", "lowercase"),
            ("my_bucket", "lowercase"),
            ("my bucket", "lowercase"),
            ("bücket", "lowercase"),
            ("-bucket", "start and end"),
            ("bucket-", "start and end"),
            (".bucket", "start and end"),
            ("my..bucket", "two periods"),
            ("10.0.0.1", "IP address"),
            ("xn--bucket", "reserves"),
            ("sthree-bucket", "reserves"),
            ("amzn-s3-demo-bucket", "reserves"),
            ("bucket-s3alias", "reserves"),
            ("bucket--ol-s3", "reserves"),
            ("bucket.mrap", "reserves"),
            ("bucket--x-s3", "reserves"),
            ("bucket--table-s3", "reserves"),
        ] {
            let got = bucket_name_problem(bad);
            assert!(got.is_some_and(|p| p.contains(problem)), "{bad}: {got:?}");
        }
    }

    #[test]
    fn tenant_names() {
        let longest = "t".repeat(128);
        for good in ["acme", "Acme_2", "eu.acme-prod", "7", longest.as_str()] {
            assert!(is_tenant_name(good), "{good}");
        }
        let too_long = "t".repeat(129);
        for bad in [
            "",
            "acme corp",
            "acme/prod",
            "acmé",
            "a:b",
            too_long.as_str(),
        ] {
            assert!(!is_tenant_name(bad), "{bad}");
        }
    }

    #[test]
    fn arn_shapes() {
        for good in [
            "arn:aws:acm:us-east-1:123456789012:certificate/1234",
            "arn:aws:iam::123456789012:server-certificate/web",
            "arn:aws-cn:acm:cn-north-1:123456789012:certificate/a:b",
        ] {
            assert!(looks_like_arn(good), "{good}");
        }
        for bad in [
            "",
            "arn:",
            "certificate/1234",
            "arn:aws:acm:us-east-1:123456789012",
            "arn:aws:acm:us-east-1:123456789012:",
            "arn::acm:us-east-1:123456789012:certificate/1",
            "arn:aws::us-east-1:123456789012:certificate/1",
            "urn:aws:acm:us-east-1:123456789012:certificate/1",
        ] {
            assert!(!looks_like_arn(bad), "{bad}");
        }
    }

    #[test]
    fn selector_tag_limits() {
        assert_eq!(tag_problem("dr:protect", "true"), None);
        assert_eq!(tag_problem(&"k".repeat(128), &"v".repeat(256)), None);
        assert!(tag_problem("", "x").is_some_and(|p| p.contains("key")));
        assert!(tag_problem(&"k".repeat(129), "x").is_some_and(|p| p.contains("key")));
        assert!(tag_problem("k", "").is_some_and(|p| p.contains("value")));
        assert!(tag_problem("k", &"v".repeat(257)).is_some_and(|p| p.contains("value")));
    }

    #[test]
    fn instance_families() {
        for good in ["r5", "m7i-flex", "u-6tb1", "x2iedn", "c"] {
            assert!(is_instance_family(good), "{good}");
        }
        for bad in ["", "R5", "5r", "-r5", "r5.large", "r5 a", "r_5", "m7í"] {
            assert!(!is_instance_family(bad), "{bad}");
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
