//! Tests of `Config::from_sources`: defaults, precedence, every-error-at-once reporting,
//! environment and command-line overrides, validation rules, redaction, and that the default
//! file, the example file and docs/config.md agree with the code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::*;
use crate::fallback::FallbackPolicy;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn cli(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn load(file: &str, env: &BTreeMap<String, String>, args: &[&str]) -> Config {
    match Config::from_sources(Some(file), env, &cli(args)) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected config errors:\n{errors}"),
    }
}

fn errors(file: &str, env: &BTreeMap<String, String>, args: &[&str]) -> Vec<ConfigError> {
    match Config::from_sources(Some(file), env, &cli(args)) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(ConfigErrors(errors)) => errors,
    }
}

fn file_errors(file: &str) -> Vec<ConfigError> {
    errors(file, &BTreeMap::new(), &[])
}

/// The error at `path`, which must be the only one there.
fn at<'a>(errors: &'a [ConfigError], path: &str) -> &'a ConfigError {
    let found: Vec<&ConfigError> = errors.iter().filter(|e| e.path == path).collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!("expected one error at `{path}`, got {found:?} in {errors:#?}"),
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

#[test]
fn no_sources_give_the_defaults() {
    let config = Config::from_sources(None, &BTreeMap::new(), &[]).expect("defaults are valid");
    assert_eq!(config, Config::default());
    assert_eq!(config.regions.primary, "us-east-1");
    assert_eq!(config.regions.dr, "us-west-2");
    assert_eq!(config.api.listen, addr("127.0.0.1:8080"));
    assert_eq!(config.api.metrics_listen, addr("127.0.0.1:9090"));
    assert_eq!(config.reconcile.cycle_secs, 300);
    assert_eq!(config.aws.retry_mode, RetryMode::Standard);
    assert_eq!(
        config.tiers.rpo_secs,
        BTreeMap::from([(1, 3600), (2, 14400), (3, 86400)])
    );
    assert_eq!(config.throttle.time_scale, 1.0);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.daemon.data_dir, PathBuf::from("/var/lib/pilotlight"));
}

#[test]
fn default_toml_parses_to_exactly_the_defaults() {
    let config = load(Config::default_toml(), &BTreeMap::new(), &[]);
    assert_eq!(config, Config::default());
}

#[test]
fn example_config_is_the_default_toml() {
    let example = include_str!("../../../../deploy/pilotlight.example.toml");
    assert_eq!(
        example,
        Config::default_toml(),
        "deploy/pilotlight.example.toml must be a byte copy of src/config/default.toml"
    );
}

#[test]
fn precedence_is_defaults_then_file_then_env_then_cli() {
    let file = "[api]\nlisten = \"127.0.0.1:1001\"\n";
    let env_set = env(&[("PILOTLIGHT_API__LISTEN", "127.0.0.1:1002")]);
    let cli_set = ["api.listen=127.0.0.1:1003"];
    let none = BTreeMap::new();

    let listen = |file: Option<&str>, env: &BTreeMap<String, String>, args: &[&str]| {
        Config::from_sources(file, env, &cli(args))
            .expect("valid")
            .api
            .listen
    };
    assert_eq!(listen(None, &none, &[]), addr("127.0.0.1:8080"));
    assert_eq!(listen(Some(file), &none, &[]), addr("127.0.0.1:1001"));
    assert_eq!(listen(Some(file), &env_set, &[]), addr("127.0.0.1:1002"));
    assert_eq!(
        listen(Some(file), &env_set, &cli_set),
        addr("127.0.0.1:1003")
    );
    assert_eq!(listen(None, &env_set, &cli_set), addr("127.0.0.1:1003"));
    assert_eq!(listen(Some(file), &none, &cli_set), addr("127.0.0.1:1003"));
    // Later command-line overrides win over earlier ones.
    let two = ["api.listen=127.0.0.1:1003", "api.listen=127.0.0.1:1004"];
    assert_eq!(listen(Some(file), &env_set, &two), addr("127.0.0.1:1004"));
}

#[test]
fn three_different_errors_in_one_file_are_all_reported() {
    let errs = file_errors(
        r#"
[reconcile]
cycle_sec = 60          # unknown key
concurrency = 100       # out of range

[api]
max_body_bytes = "big"  # wrong type
"#,
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    let unknown = at(&errs, "reconcile.cycle_sec");
    assert!(unknown.message.starts_with("unknown key"), "{unknown}");
    assert!(unknown.message.contains("`cycle_secs`"), "{unknown}");
    let range = at(&errs, "reconcile.concurrency");
    assert!(range.message.contains("between 1 and 64"), "{range}");
    let bad_type = at(&errs, "api.max_body_bytes");
    assert!(bad_type.message.contains("invalid type"), "{bad_type}");
    assert!(errs.iter().all(|e| e.source_kind == Source::File));
}

#[test]
fn every_bad_key_of_one_section_is_reported() {
    let errs = file_errors(
        r#"
[aws]
max_attempts = "three"
connect_timeout_secs = -1
retry_mode = "fast"
s3_force_path_style = "yes"
endpoint_url = 8080
"#,
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "aws.connect_timeout_secs",
            "aws.endpoint_url",
            "aws.max_attempts",
            "aws.retry_mode",
            "aws.s3_force_path_style",
        ]
    );
    assert!(at(&errs, "aws.retry_mode").message.contains("`adaptive`"));
}

#[test]
fn unknown_keys_are_rejected_with_their_path_at_any_depth() {
    let errs = file_errors(
        r#"
[regoins]
primary = "us-east-1"

[api]
listn = "127.0.0.1:1"

[[api.tokens]]
name = "ops"
role = "operator"
token_file = "/run/secrets/ops"
scope = "all"

[throttle.overrides."ec2:RunInstances"]
brust = 5
refill_per_sec = 1.0
"#,
    );
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(at(&errs, "regoins").message.contains("`regions`"));
    assert!(at(&errs, "api.listn").message.contains("`listen`"));
    assert!(
        at(&errs, "api.tokens[0].scope")
            .message
            .starts_with("unknown key")
    );
    let brust = at(&errs, "throttle.overrides.\"ec2:RunInstances\".brust");
    assert!(brust.message.contains("`burst`"), "{brust}");
    // The override lacks its required `burst` too.
    assert!(
        at(&errs, "throttle.overrides.\"ec2:RunInstances\".burst")
            .message
            .contains("missing")
    );
}

#[test]
fn a_file_syntax_error_is_one_error_with_its_line() {
    let errs = file_errors("[api]\nlisten = \"127.0.0.1:1\"\nmax_body_bytes = = 3\n[bogus]\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "");
    assert_eq!(errs[0].source_kind, Source::File);
    assert!(errs[0].message.contains("line 3"), "{}", errs[0]);
}

#[test]
fn a_section_that_is_not_a_table_is_reported() {
    let errs = file_errors("regions = \"us-east-1\"\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        at(&errs, "regions").message,
        "expected a table, found string"
    );
}

#[test]
fn env_overrides_nested_keys_and_ignores_other_variables() {
    let vars = env(&[
        ("PILOTLIGHT_API__METRICS_LISTEN", "0.0.0.0:9100"),
        ("pilotlight_regions__dr", "eu-west-1"),
        ("PILOTLIGHT_RECONCILE__CONCURRENCY", "8"),
        ("PILOTLIGHT_NETWORK__PRUNE", "true"),
        ("PILOTLIGHT_TIERS__RPO_SECS__2", "7200"),
        ("PILOTLIGHT_CONFIG", "/etc/pilotlight.toml"),
        ("PILOTLIGHT_LOG", "whatever"),
        ("HOME", "/root"),
        ("API__LISTEN", "nonsense"),
    ]);
    let config = load("[tiers.rpo_secs]\n1 = 600\n", &vars, &[]);
    assert_eq!(config.api.metrics_listen, addr("0.0.0.0:9100"));
    assert_eq!(config.regions.dr, "eu-west-1");
    assert_eq!(config.reconcile.concurrency, 8);
    assert!(config.network.prune);
    // Tables merge entry by entry: the file's tier 1, the env's tier 2, the default tier 3.
    assert_eq!(
        config.tiers.rpo_secs,
        BTreeMap::from([(1, 600), (2, 7200), (3, 86400)])
    );
    assert_eq!(config.api.listen, ApiConfig::default().listen);
}

#[test]
fn a_bad_env_value_is_reported_naming_the_variable() {
    let var = "PILOTLIGHT_RECONCILE__CONCURRENCY";
    let errs = errors("", &env(&[(var, "lots")]), &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let err = at(&errs, "reconcile.concurrency");
    assert_eq!(err.source_kind, Source::Env(var.to_owned()));
    assert!(err.to_string().contains(var), "{err}");
    assert!(err.message.contains("invalid type"), "{err}");

    // A well-typed value that breaks a rule names the variable too.
    let errs = errors("[reconcile]\nconcurrency = 8\n", &env(&[(var, "65")]), &[]);
    assert_eq!(
        at(&errs, "reconcile.concurrency").source_kind,
        Source::Env(var.to_owned())
    );
}

#[test]
fn env_unknown_keys_and_sections_name_the_variable() {
    let errs = errors(
        "",
        &env(&[
            ("PILOTLIGHT_API__LISTN", "127.0.0.1:1"),
            ("PILOTLIGHT_BOGUS__KEY", "1"),
            ("PILOTLIGHT_API____LISTEN", "127.0.0.1:1"),
        ]),
        &[],
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_eq!(
        at(&errs, "api.listn").source_kind,
        Source::Env("PILOTLIGHT_API__LISTN".to_owned())
    );
    assert_eq!(
        at(&errs, "bogus").source_kind,
        Source::Env("PILOTLIGHT_BOGUS__KEY".to_owned())
    );
    assert_eq!(
        at(&errs, "").source_kind,
        Source::Env("PILOTLIGHT_API____LISTEN".to_owned())
    );
}

#[test]
fn the_same_key_from_two_spellings_of_a_variable_is_an_error() {
    let errs = errors(
        "",
        &env(&[
            ("PILOTLIGHT_LOG__LEVEL", "debug"),
            ("pilotlight_log__level", "info"),
        ]),
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let err = at(&errs, "log.level");
    assert_eq!(
        err.source_kind,
        Source::Env("pilotlight_log__level".to_owned())
    );
    assert!(err.message.contains("PILOTLIGHT_LOG__LEVEL"), "{err}");
}

#[test]
fn override_values_that_look_like_other_types_stay_strings_where_strings_are_expected() {
    let config = load(
        "",
        &env(&[
            ("PILOTLIGHT_TIERS__TAG_KEY", "42"),
            ("PILOTLIGHT_LOG__LEVEL", "\"warn\""),
        ]),
        &[
            "network.vpc_tag_selector=env=prod",
            "daemon.data_dir=2026-01-01",
        ],
    );
    assert_eq!(config.tiers.tag_key, "42");
    assert_eq!(config.log.level, "warn");
    assert_eq!(config.network.vpc_tag_selector.as_deref(), Some("env=prod"));
    assert_eq!(config.network.vpc_tag_filter(), Some(("env", "prod")));
    assert_eq!(config.daemon.data_dir, PathBuf::from("2026-01-01"));
}

#[test]
fn env_and_cli_take_arrays_and_inline_tables() {
    let file = r#"
[throttle.overrides]
"rds:CopyDBSnapshot" = { burst = 2, refill_per_sec = 0.5 }
"#;
    let vars = env(&[
        (
            "PILOTLIGHT_THROTTLE__OVERRIDES",
            r#"{ "ec2:RunInstances" = { burst = 10, refill_per_sec = 2.5 } }"#,
        ),
        (
            "PILOTLIGHT_API__TOKENS",
            r#"[{ name = "ops", role = "operator", token_file = "/run/ops" }]"#,
        ),
        (
            "PILOTLIGHT_REGIONS__AZ_MAP",
            r#"{ us-east-1a = "us-west-2c" }"#,
        ),
    ]);
    let config = load(
        file,
        &vars,
        &[r#"throttle.overrides."ec2:RunInstances".burst=7"#],
    );
    assert_eq!(
        config.throttle.overrides,
        BTreeMap::from([
            (
                "ec2:RunInstances".to_owned(),
                ThrottleOverride {
                    burst: 7,
                    refill_per_sec: 2.5
                }
            ),
            (
                "rds:CopyDBSnapshot".to_owned(),
                ThrottleOverride {
                    burst: 2,
                    refill_per_sec: 0.5
                }
            ),
        ])
    );
    assert_eq!(
        config.api.tokens,
        [ApiToken {
            name: "ops".to_owned(),
            role: Role::Operator,
            token_file: PathBuf::from("/run/ops"),
        }]
    );
    assert_eq!(
        config.regions.az_map,
        BTreeMap::from([("us-east-1a".to_owned(), "us-west-2c".to_owned())])
    );
}

#[test]
fn errors_inside_an_env_table_name_the_variable() {
    let var = "PILOTLIGHT_THROTTLE__OVERRIDES";
    let errs = errors(
        "",
        &env(&[(
            var,
            r#"{ "ec2:RunInstances" = { burst = 0, refill_per_sec = "x" } }"#,
        )]),
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let err = at(
        &errs,
        "throttle.overrides.\"ec2:RunInstances\".refill_per_sec",
    );
    assert_eq!(err.source_kind, Source::Env(var.to_owned()));
}

#[test]
fn malformed_cli_overrides_are_reported_without_echoing_values() {
    let errs = errors(
        "",
        &BTreeMap::new(),
        &[
            "hunter2-not-an-override",
            "api..listen=1",
            "reconcile.cycle_secs=soon",
        ],
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs.iter().all(|e| e.source_kind == Source::Cli));
    assert!(errs.iter().all(|e| !e.to_string().contains("hunter2")));
    assert!(errs[0].message.contains("#1"), "{}", errs[0]);
    assert!(errs[1].message.contains("#2"), "{}", errs[1]);
    assert!(
        at(&errs, "reconcile.cycle_secs")
            .message
            .contains("invalid type")
    );
}

#[test]
fn every_validation_rule_reports_at_once() {
    let file = r#"
[regions]
primary = "us-west-2"
dr = "us-west-2"
az_map = { "eu-west-1a" = "us-west-2a" }

[aws]
endpoint_url = "ftp://lab"
access_key_id_file = "/run/id"
max_attempts = 11
connect_timeout_secs = 0
operation_timeout_secs = 0

[store]
url = "mysql://root:pw@db/x"
url_file = "/run/url"
max_connections = 0

[api]
listen = "127.0.0.1:7000"
metrics_listen = "127.0.0.1:7000"
max_body_bytes = 0
request_timeout_secs = 0
tokens = [
  { name = "a", role = "viewer", token_file = "/t/a" },
  { name = "a", role = "approver", token_file = "" },
  { name = "", role = "operator", token_file = "/t/c" },
]

[reconcile]
cycle_secs = 0
concurrency = 0
max_backoff_secs = 0

[network]
vpc_tag_selector = "=x"

[tiers]
tag_key = ""
default_tier = 5
rpo_secs = { 1 = 0 }

[throttle]
time_scale = 0.0
overrides = { "ec2:RunInstances" = { burst = 0, refill_per_sec = -1.0 } }

[log]
level = "info,pilotlight=loud"

[daemon]
data_dir = ""
shutdown_grace_secs = 0
lease_ttl_secs = 0
"#;
    let errs = file_errors(file);
    let mut got: Vec<(&str, &Source)> = errs
        .iter()
        .map(|e| (e.path.as_str(), &e.source_kind))
        .collect();
    got.sort_by(|a, b| a.0.cmp(b.0));
    let file_src = &Source::File;
    let rule = &Source::Validation;
    let mut want = vec![
        ("regions.dr", rule),
        ("regions.az_map.eu-west-1a", file_src),
        ("aws.endpoint_url", file_src),
        ("aws.secret_access_key_file", rule),
        ("aws.max_attempts", file_src),
        ("aws.connect_timeout_secs", file_src),
        ("aws.operation_timeout_secs", file_src),
        ("store.url", file_src),
        ("store.url_file", rule),
        ("store.max_connections", file_src),
        ("api.metrics_listen", rule),
        ("api.max_body_bytes", file_src),
        ("api.request_timeout_secs", file_src),
        ("api.tokens[1].name", rule),
        ("api.tokens[1].token_file", file_src),
        ("api.tokens[2].name", file_src),
        ("reconcile.cycle_secs", file_src),
        ("reconcile.concurrency", file_src),
        ("reconcile.max_backoff_secs", file_src),
        ("network.vpc_tag_selector", file_src),
        ("tiers.tag_key", file_src),
        ("tiers.default_tier", rule),
        ("tiers.rpo_secs.1", file_src),
        ("throttle.time_scale", file_src),
        ("throttle.overrides.\"ec2:RunInstances\".burst", file_src),
        (
            "throttle.overrides.\"ec2:RunInstances\".refill_per_sec",
            file_src,
        ),
        ("log.level", file_src),
        ("daemon.data_dir", file_src),
        ("daemon.shutdown_grace_secs", file_src),
        ("daemon.lease_ttl_secs", file_src),
    ];
    want.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(got, want, "{errs:#?}");
    // No message repeats the store URL (it may carry a password).
    assert!(
        errs.iter().all(|e| !e.to_string().contains("pw")),
        "{errs:#?}"
    );
}

#[test]
fn rules_relating_keys_skip_values_that_failed_to_load() {
    // primary fails to load (wrong type) and stands in as the default us-east-1; comparing
    // that stand-in with dr = us-east-1 must not produce a second, spurious error.
    let errs = file_errors("[regions]\nprimary = 5\ndr = \"us-east-1\"\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    at(&errs, "regions.primary");
}

#[test]
fn az_map_entries_must_belong_to_their_regions() {
    let errs = file_errors(
        r#"
[regions.az_map]
us-east-1a = "us-west-2b"
us-east-1b = "eu-west-1a"
us-east-1 = "us-west-2a"
"#,
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        at(&errs, "regions.az_map.us-east-1b")
            .message
            .contains("DR region")
    );
    assert!(
        at(&errs, "regions.az_map.us-east-1")
            .message
            .contains("primary region")
    );
}

#[test]
fn rpo_keys_must_be_tiers() {
    let errs = file_errors("[tiers.rpo_secs]\n10 = 60\nx = 60\n01 = 60\n4 = \"soon\"\n");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "tiers.rpo_secs.01",
            "tiers.rpo_secs.10",
            "tiers.rpo_secs.4",
            "tiers.rpo_secs.x"
        ]
    );
    assert!(at(&errs, "tiers.rpo_secs.x").message.contains("1 to 9"));
}

#[test]
fn throttle_override_keys_name_a_known_service() {
    let errs = file_errors(
        r#"
[throttle.overrides]
"lambda:Invoke" = { burst = 1, refill_per_sec = 1.0 }
"ec2" = { burst = 1, refill_per_sec = 1.0 }
"route53:Change Records" = { burst = 1, refill_per_sec = 1.0 }
"elbv2:Mutating" = { burst = 3, refill_per_sec = 1 }
"#,
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    for key in ["\"lambda:Invoke\"", "ec2", "\"route53:Change Records\""] {
        assert!(
            at(&errs, &format!("throttle.overrides.{key}"))
                .message
                .contains("elbv2")
        );
    }
    assert_eq!(
        parse_throttle_key("elbv2:Mutating"),
        Some(("elbv2", "Mutating"))
    );
    // Every bucket the limits table charges can be overridden by its own key.
    for key in [
        "ec2:RunInstances#resource",
        "ec2:DescribeInstances#unfiltered",
        "elbv2:category:registration",
        "elb:account",
        "route53:changes",
        "s3:write",
        "acm:ListCertificates",
    ] {
        assert!(parse_throttle_key(key).is_some(), "{key}");
    }
    assert_eq!(parse_throttle_key("ec2:#resource"), None);
    assert_eq!(parse_throttle_key("ec2::x"), None);
}

#[test]
fn tokens_need_every_field_and_a_known_role() {
    let errs = file_errors(
        r#"
[[api.tokens]]
name = "ops"
role = "admin"
token_file = "/t/ops"

[[api.tokens]]
name = "viewer"
"#,
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        at(&errs, "api.tokens[0].role")
            .message
            .contains("`approver`")
    );
    assert!(at(&errs, "api.tokens[1].role").message.contains("missing"));
    assert!(
        at(&errs, "api.tokens[1].token_file")
            .message
            .contains("missing")
    );
    let errs = file_errors("[api]\ntokens = { name = \"x\" }\n");
    assert_eq!(
        at(&errs, "api.tokens").message,
        "expected an array, found table"
    );
}

#[test]
fn hooks_are_checked_key_by_key_and_all_reported() {
    // Load errors: a bad stage, a bad mode, a missing URL, an unknown key.
    let errs = file_errors(
        r#"
[[restore.hooks]]
name = "a"
url = "https://x.example.com/"
secret_file = "/s"
after = ["tier:0"]

[[restore.hooks]]
name = "b"
secret_file = "/s"
modes = ["chaos"]
retries = 3
"#,
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        at(&errs, "restore.hooks[0].after")
            .message
            .contains("`tier:0` is not a stage")
    );
    assert!(
        at(&errs, "restore.hooks[1].url")
            .message
            .contains("missing")
    );
    assert!(
        at(&errs, "restore.hooks[1].modes")
            .message
            .contains("`drill`")
    );
    assert!(
        at(&errs, "restore.hooks[1].retries")
            .message
            .contains("unknown key")
    );
    // Validation: every rule, every entry, at once.
    let errs = file_errors(
        r#"
[[restore.hooks]]
name = "deploy build"
url = "ftp://x.example.com/"
secret_file = ""
after = []
modes = []
timeout_secs = 0

[[restore.hooks]]
name = "ok"
url = "https://user:pw@x.example.com/"
secret_file = "/s"
timeout_secs = 3601

[[restore.hooks]]
name = "ok"
url = "http://127.0.0.1:8080/hook"
secret_file = "/s"
"#,
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "restore.hooks[0].name",
            "restore.hooks[0].url",
            "restore.hooks[0].secret_file",
            "restore.hooks[0].after",
            "restore.hooks[0].modes",
            "restore.hooks[0].timeout_secs",
            "restore.hooks[1].url",
            "restore.hooks[1].timeout_secs",
            "restore.hooks[2].name",
        ],
        "{errs:#?}"
    );
    assert!(
        at(&errs, "restore.hooks[2].name")
            .message
            .contains("unique")
    );
    // Defaults of the optional keys.
    let config = load(
        "[[restore.hooks]]\nname = \"n\"\nurl = \"http://h/\"\nsecret_file = \"/s\"\n",
        &BTreeMap::new(),
        &[],
    );
    let hook = &config.restore.hooks[0];
    assert_eq!(hook.after, hooks::every_stage());
    assert_eq!(hook.modes, [HookMode::Disaster, HookMode::Drill]);
    assert!(!hook.wait);
    assert_eq!(hook.timeout_secs, 30);
    assert_eq!(hook.on_failure, HookFailure::Fail);
    // The environment takes the list as an inline array.
    let config = load(
        "",
        &env(&[(
            "PILOTLIGHT_RESTORE__HOOKS",
            r#"[{ name = "n", url = "http://h/", secret_file = "/s", wait = true }]"#,
        )]),
        &[],
    );
    assert!(config.restore.hooks[0].wait);
}

#[test]
fn port_zero_listeners_may_coincide() {
    let config = load(
        "[api]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n",
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(config.api.listen.port(), 0);
}

/// A configuration with every key set away from its default.
const FULL: &str = r#"
[regions]
primary = "eu-central-1"
dr = "eu-west-1"
az_map = { eu-central-1a = "eu-west-1b" }

[aws]
endpoint_url = "http://127.0.0.1:5000"
s3_force_path_style = true
access_key_id_file = "/run/id"
secret_access_key_file = "/run/key"
retry_mode = "adaptive"
max_attempts = 5
connect_timeout_secs = 2
operation_timeout_secs = 20

[store]
url = "postgres://pilot:s3cr3t-pw@db.internal:5432/pilotlight?sslmode=require"
max_connections = 4

[api]
listen = "0.0.0.0:8443"
metrics_listen = "[::1]:9100"
max_body_bytes = 1024
request_timeout_secs = 5

[[api.tokens]]
name = "oncall"
role = "approver"
token_file = "/run/oncall"

[reconcile]
cycle_secs = 60
concurrency = 16
max_backoff_secs = 120

[network]
prune = true
include_default_vpc = true
vpc_tag_selector = "dr:mirror=true"

[copy]
enabled = false
cycle_secs = 30
ebs = false
rds = false
rds_clusters = false
amis = false
selector_tags = { "dr:protect" = "true" }
volume_ids = ["vol-0123456789abcdef0"]
db_instance_ids = ["app-db"]
db_cluster_ids = ["orders-cluster"]
ebs_max_in_flight = 10
rds_max_in_flight = 8
rds_cluster_max_in_flight = 2
ami_max_in_flight = 50
keep_per_volume = 3
keep_per_db = 4
keep_per_image = 1
rds_manual_snapshot_quota = 200
kms_key_map = { "arn:aws:kms:eu-central-1:123456789012:key/p" = "arn:aws:kms:eu-west-1:123456789012:alias/dr" }
dr_default_kms_key = "alias/dr-default"
copy_timeout_secs = 86400

[tiers]
tag_key = "tier"
default_tier = 2
rpo_secs = { 1 = 900, 9 = 604800 }

[inventory]
enabled = false
cycle_secs = 120
bucket = "acme-dr-inventory.eu"
prefix = "estate/prod/"
cluster_tag = "cluster"
load_balancers = false
route53 = false
rds = false
utilisation = false
utilisation_window_days = 30
utilisation_refresh_secs = 600
utilisation_period_secs = 300
memory_namespace = "System/Linux"
memory_metric = "MemoryUtilization"

[s3]
buckets = ["acme-assets", "acme-logs.eu"]
cycle_secs = 30
sample_objects = 50
lag_target_secs = 300

[[tenants]]
name = "acme"
clusters = ["web", "search"]

[[tenants]]
name = "globex_2.eu-west"
clusters = ["search"]

[quotas]
classic_load_balancers = 5
application_load_balancers = 100
network_load_balancers = 60
db_instances = 80
records_per_zone = 20000

[quotas.vcpus]
standard = 4096
g = 0
inf = 128
high-memory = 448

[readiness]
cycle_secs = 30
always_on_tag = "role"
always_on = ["directory", "build", "monitoring"]
certificate_map = { "arn:aws:acm:eu-central-1:123456789012:certificate/p" = "arn:aws:iam::123456789012:server-certificate/dr" }

[restore]
max_instances_per_call = 50
data_volumes = "create_attach"
gate = "healthy"
preserve_private_ips = true
route53_max_changes_per_batch = 500
instance_boot_secs = 60
load_balancer_provision_secs = 180
db_restore_secs = 1200
dns_sync_secs = 30
require_approval = true
poll_interval_ms = 250
cache_ttl_secs = 0
concurrency = 4

[restore.fallback]
headroom_pct = 35
unavailable_ttl_secs = 120
smaller_footprint = false
min_utilisation_samples = 6

[restore.fallback.alternative_families]
r5 = ["r5a", "r6i"]
m7i-flex = ["m7i", "m6i"]

[[restore.hooks]]
name = "smoke-tests"
url = "https://deploy.example.com/pilotlight"
secret_file = "/run/hook"
after = ["tier:1", "tier:*", "dns"]
wait = true
timeout_secs = 120
modes = ["drill"]
on_failure = "continue"

[[restore.hooks]]
name = "notify"
url = "http://127.0.0.1:9999/"
secret_file = "/run/notify"

[drill]
schedule = "0 3 * * 1"
tiers = [1, 2]
tenants = ["acme"]
hold_secs = 600
dns_zone = "drill.acme.internal"

[throttle]
time_scale = 60
overrides = { "ec2:RunInstances" = { burst = 5, refill_per_sec = 2.0 } }

[log]
format = "json"
level = "debug,hyper=warn"

[daemon]
data_dir = "./.pilotlight"
shutdown_grace_secs = 10
lease_ttl_secs = 5
"#;

fn full() -> Config {
    Config {
        regions: RegionsConfig {
            primary: "eu-central-1".to_owned(),
            dr: "eu-west-1".to_owned(),
            az_map: BTreeMap::from([("eu-central-1a".to_owned(), "eu-west-1b".to_owned())]),
        },
        aws: AwsConfig {
            endpoint_url: Some("http://127.0.0.1:5000".to_owned()),
            s3_force_path_style: true,
            access_key_id_file: Some(PathBuf::from("/run/id")),
            secret_access_key_file: Some(PathBuf::from("/run/key")),
            retry_mode: RetryMode::Adaptive,
            max_attempts: 5,
            connect_timeout_secs: 2,
            operation_timeout_secs: 20,
        },
        store: StoreConfig {
            url: Some(
                "postgres://pilot:s3cr3t-pw@db.internal:5432/pilotlight?sslmode=require".to_owned(),
            ),
            url_file: None,
            max_connections: 4,
        },
        api: ApiConfig {
            listen: addr("0.0.0.0:8443"),
            metrics_listen: addr("[::1]:9100"),
            max_body_bytes: 1024,
            request_timeout_secs: 5,
            tokens: vec![ApiToken {
                name: "oncall".to_owned(),
                role: Role::Approver,
                token_file: PathBuf::from("/run/oncall"),
            }],
        },
        reconcile: ReconcileConfig {
            cycle_secs: 60,
            concurrency: 16,
            max_backoff_secs: 120,
        },
        network: NetworkConfig {
            prune: true,
            include_default_vpc: true,
            vpc_tag_selector: Some("dr:mirror=true".to_owned()),
        },
        copy: CopyConfig {
            enabled: false,
            cycle_secs: 30,
            ebs: false,
            rds: false,
            rds_clusters: false,
            amis: false,
            selector_tags: BTreeMap::from([("dr:protect".to_owned(), "true".to_owned())]),
            volume_ids: vec!["vol-0123456789abcdef0".to_owned()],
            db_instance_ids: vec!["app-db".to_owned()],
            db_cluster_ids: vec!["orders-cluster".to_owned()],
            ebs_max_in_flight: 10,
            rds_max_in_flight: 8,
            rds_cluster_max_in_flight: 2,
            ami_max_in_flight: 50,
            keep_per_volume: 3,
            keep_per_db: 4,
            keep_per_image: 1,
            rds_manual_snapshot_quota: 200,
            kms_key_map: BTreeMap::from([(
                "arn:aws:kms:eu-central-1:123456789012:key/p".to_owned(),
                "arn:aws:kms:eu-west-1:123456789012:alias/dr".to_owned(),
            )]),
            dr_default_kms_key: Some("alias/dr-default".to_owned()),
            copy_timeout_secs: 86_400,
        },
        tiers: TiersConfig {
            tag_key: "tier".to_owned(),
            default_tier: 2,
            rpo_secs: BTreeMap::from([(1, 900), (2, 14400), (3, 86400), (9, 604_800)]),
        },
        inventory: InventoryConfig {
            enabled: false,
            cycle_secs: 120,
            bucket: "acme-dr-inventory.eu".to_owned(),
            prefix: "estate/prod/".to_owned(),
            cluster_tag: "cluster".to_owned(),
            load_balancers: false,
            route53: false,
            rds: false,
            utilisation: false,
            utilisation_window_days: 30,
            utilisation_refresh_secs: 600,
            utilisation_period_secs: 300,
            memory_namespace: "System/Linux".to_owned(),
            memory_metric: "MemoryUtilization".to_owned(),
        },
        s3: S3WatchConfig {
            buckets: vec!["acme-assets".to_owned(), "acme-logs.eu".to_owned()],
            cycle_secs: 30,
            sample_objects: 50,
            lag_target_secs: 300,
        },
        tenants: vec![
            TenantConfig {
                name: "acme".to_owned(),
                clusters: vec!["web".to_owned(), "search".to_owned()],
            },
            TenantConfig {
                name: "globex_2.eu-west".to_owned(),
                clusters: vec!["search".to_owned()],
            },
        ],
        quotas: QuotasConfig {
            // Entries merge with the default groups: p and x keep their defaults.
            vcpus: BTreeMap::from([
                ("standard".to_owned(), 4096),
                ("g".to_owned(), 0),
                ("p".to_owned(), 64),
                ("x".to_owned(), 64),
                ("inf".to_owned(), 128),
                ("high-memory".to_owned(), 448),
            ]),
            classic_load_balancers: 5,
            application_load_balancers: 100,
            network_load_balancers: 60,
            db_instances: 80,
            records_per_zone: 20_000,
        },
        readiness: ReadinessConfig {
            cycle_secs: 30,
            always_on_tag: "role".to_owned(),
            always_on: vec![
                "directory".to_owned(),
                "build".to_owned(),
                "monitoring".to_owned(),
            ],
            certificate_map: BTreeMap::from([(
                "arn:aws:acm:eu-central-1:123456789012:certificate/p".to_owned(),
                "arn:aws:iam::123456789012:server-certificate/dr".to_owned(),
            )]),
        },
        restore: RestoreConfig {
            max_instances_per_call: 50,
            data_volumes: VolumeStrategy::CreateAttach,
            gate: TierGate::Healthy,
            preserve_private_ips: true,
            route53_max_changes_per_batch: 500,
            instance_boot_secs: 60,
            load_balancer_provision_secs: 180,
            db_restore_secs: 1200,
            dns_sync_secs: 30,
            require_approval: true,
            poll_interval_ms: 250,
            cache_ttl_secs: 0,
            concurrency: 4,
            fallback: FallbackPolicy {
                headroom_pct: 35,
                unavailable_ttl_secs: 120,
                alternative_families: BTreeMap::from([
                    ("r5".to_owned(), vec!["r5a".to_owned(), "r6i".to_owned()]),
                    (
                        "m7i-flex".to_owned(),
                        vec!["m7i".to_owned(), "m6i".to_owned()],
                    ),
                ]),
                smaller_footprint: false,
                min_utilisation_samples: 6,
            },
            hooks: vec![
                HookConfig {
                    name: "smoke-tests".to_owned(),
                    url: "https://deploy.example.com/pilotlight".to_owned(),
                    secret_file: PathBuf::from("/run/hook"),
                    after: vec![
                        HookAfter::Stage(HookStage::Tier(1)),
                        HookAfter::EveryTier,
                        HookAfter::Stage(HookStage::Dns),
                    ],
                    wait: true,
                    timeout_secs: 120,
                    modes: vec![HookMode::Drill],
                    on_failure: HookFailure::Continue,
                },
                HookConfig {
                    name: "notify".to_owned(),
                    url: "http://127.0.0.1:9999/".to_owned(),
                    secret_file: PathBuf::from("/run/notify"),
                    after: hooks::every_stage(),
                    wait: false,
                    timeout_secs: 30,
                    modes: vec![HookMode::Disaster, HookMode::Drill],
                    on_failure: HookFailure::Fail,
                },
            ],
        },
        drill: DrillConfig {
            schedule: "0 3 * * 1".to_owned(),
            tiers: vec![1, 2],
            tenants: vec!["acme".to_owned()],
            hold_secs: 600,
            dns_zone: "drill.acme.internal".to_owned(),
        },
        throttle: ThrottleConfig {
            time_scale: 60.0,
            overrides: BTreeMap::from([(
                "ec2:RunInstances".to_owned(),
                ThrottleOverride {
                    burst: 5,
                    refill_per_sec: 2.0,
                },
            )]),
        },
        log: LogConfig {
            format: LogFormat::Json,
            level: "debug,hyper=warn".to_owned(),
        },
        daemon: DaemonConfig {
            data_dir: PathBuf::from("./.pilotlight"),
            shutdown_grace_secs: 10,
            lease_ttl_secs: 5,
        },
    }
}

#[test]
fn every_key_is_read_from_the_file() {
    assert_eq!(load(FULL, &BTreeMap::new(), &[]), full());
}

#[test]
fn store_url_defaults_to_sqlite_in_the_data_dir() {
    let mut config = Config::default();
    assert_eq!(
        config.store_url(),
        "sqlite:///var/lib/pilotlight/pilotlight.db"
    );
    config.daemon.data_dir = PathBuf::from("./.pilotlight");
    assert_eq!(config.store_url(), "sqlite://./.pilotlight/pilotlight.db");
    assert_eq!(full().store_url(), full().store.url.unwrap_or_default());
}

#[test]
fn debug_and_serialize_do_not_leak_the_store_password() {
    let config = full();
    let debug = format!("{config:?}");
    let pretty = format!("{config:#?}");
    let toml_text = toml::to_string(&config).expect("serializes");
    let json = serde_json::to_string(&config).expect("serializes");
    for shown in [&debug, &pretty, &toml_text, &json] {
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(
            shown.contains("postgres://pilot:[redacted]@db.internal:5432"),
            "{shown}"
        );
    }
}

#[test]
fn errors_display_one_per_line() {
    let err = Config::from_sources(
        Some("[reconcile]\ncycle_secs = 0\n"),
        &env(&[("PILOTLIGHT_RECONCILE__CONCURRENCY", "0")]),
        &[],
    )
    .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "reconcile.cycle_secs: must be at least 1, got 0 (config file)\n\
         reconcile.concurrency: must be between 1 and 64, got 0 \
         (environment variable PILOTLIGHT_RECONCILE__CONCURRENCY)"
    );
    assert_eq!(ConfigErrors::EXIT_CODE, 64);
}

/// Sub-sections: tables inside a section that are structs with keys of their own (not open
/// maps), listed and documented key by key as sections are.
const SUBSECTIONS: [&str; 1] = ["restore.fallback"];

/// `(section, key)` for every key of every table section and sub-section (`("restore.fallback",
/// "headroom_pct")`); other tables below a section are open maps or the token list,
/// documented as one key. The one array section, `tenants`, is left to [`tenant_keys`].
fn all_keys() -> Vec<(String, String)> {
    let mut config = full();
    config.store.url_file = Some(PathBuf::from("/run/url"));
    let table = toml::Table::try_from(config).expect("serializes");
    let mut keys = Vec::new();
    for (section, value) in &table {
        match value {
            toml::Value::Table(fields) => {
                for (key, value) in fields {
                    let dotted = format!("{section}.{key}");
                    if !SUBSECTIONS.contains(&dotted.as_str()) {
                        keys.push((section.clone(), key.clone()));
                        continue;
                    }
                    let toml::Value::Table(sub) = value else {
                        panic!("{dotted} is not a table");
                    };
                    for sub_key in sub.keys() {
                        keys.push((dotted.clone(), sub_key.clone()));
                    }
                }
            }
            toml::Value::Array(_) if section == "tenants" => {}
            _ => panic!("{section} is neither a table nor the tenants array"),
        }
    }
    assert_eq!(keys.len(), 108, "every key of every section: {keys:?}");
    keys
}

/// The keys of a `[[tenants]]` entry, as `full()` serializes them.
fn tenant_keys() -> Vec<String> {
    let table = toml::Table::try_from(full()).expect("serializes");
    let Some(toml::Value::Array(tenants)) = table.get("tenants") else {
        panic!("full() has no tenants array");
    };
    let Some(toml::Value::Table(first)) = tenants.first() else {
        panic!("full()'s first tenant is not a table");
    };
    let keys: Vec<String> = first.keys().cloned().collect();
    assert_eq!(keys, ["clusters", "name"]);
    keys
}

/// The keys of a `[[restore.hooks]]` entry, as `full()` serializes them.
fn hook_keys() -> Vec<String> {
    let table = toml::Table::try_from(full()).expect("serializes");
    let hooks = table
        .get("restore")
        .and_then(|r| r.get("hooks"))
        .and_then(toml::Value::as_array)
        .expect("full() has restore hooks");
    let Some(toml::Value::Table(first)) = hooks.first() else {
        panic!("full()'s first hook is not a table");
    };
    let keys: Vec<String> = first.keys().cloned().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    keys
}

#[test]
fn default_toml_shows_every_key() {
    let text = Config::default_toml();
    for (section, key) in all_keys() {
        let shown = text.lines().any(|line| {
            let line = line.trim_start_matches("# ");
            line.starts_with(&format!("{key} = "))
                || line == format!("[{section}.{key}]")
                || line == format!("[[{section}.{key}]]")
        });
        assert!(shown, "default_toml() lacks {section}.{key}");
    }
    // The tenants are an array of tables, shown as a commented-out example block.
    let example: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "# [[tenants]]")
        .take(3)
        .collect();
    assert_eq!(
        example.len(),
        3,
        "default_toml() lacks a # [[tenants]] example"
    );
    for key in tenant_keys() {
        assert!(
            example[1..]
                .iter()
                .any(|line| line.starts_with(&format!("# {key} = "))),
            "the [[tenants]] example lacks {key}: {example:?}"
        );
    }
    // So are the hooks, with every key.
    let example: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "# [[restore.hooks]]")
        .skip(1)
        .take_while(|line| line.starts_with("# "))
        .collect();
    for key in hook_keys() {
        assert!(
            example
                .iter()
                .any(|line| line.starts_with(&format!("# {key} = "))),
            "the [[restore.hooks]] example lacks {key}: {example:?}"
        );
    }
}

#[test]
fn docs_list_every_key_and_its_env_var() {
    let docs = include_str!("../../../../docs/config.md");
    for (section, key) in all_keys() {
        let dotted = format!("`{section}.{key}`");
        assert!(docs.contains(&dotted), "docs/config.md lacks {dotted}");
        let var = format!(
            "PILOTLIGHT_{}__{}",
            section.to_uppercase().replace('.', "__"),
            key.to_uppercase()
        );
        assert!(docs.contains(&var), "docs/config.md lacks {var}");
    }
    for token_key in ["name", "role", "token_file"] {
        assert!(docs.contains(&format!("`api.tokens[].{token_key}`")));
    }
    for hook_key in hook_keys() {
        let dotted = format!("`restore.hooks[].{hook_key}`");
        assert!(docs.contains(&dotted), "docs/config.md lacks {dotted}");
    }
    assert!(
        docs.contains("| `tenants` |"),
        "docs/config.md lacks `tenants`"
    );
    for tenant_key in tenant_keys() {
        let dotted = format!("`tenants[].{tenant_key}`");
        assert!(docs.contains(&dotted), "docs/config.md lacks {dotted}");
    }
    assert!(
        docs.contains("64"),
        "docs/config.md must state the exit code"
    );
}

/// The file of the example in docs/config.md.
const DOCS_EXAMPLE: &str = r#"[regions]
primary = "us-west-2"

[reconcile]
cycle_sec = 60

[api]
max_body_bytes = "big"
"#;

#[test]
fn docs_example_output_is_what_the_loader_prints() {
    let err = Config::from_sources(
        Some(DOCS_EXAMPLE),
        &env(&[("PILOTLIGHT_RECONCILE__CONCURRENCY", "100")]),
        &[],
    )
    .expect_err("invalid");
    let docs = include_str!("../../../../docs/config.md");
    assert!(
        docs.contains(DOCS_EXAMPLE),
        "docs/config.md lacks the example file"
    );
    assert!(
        docs.contains(&format!("{err}\n")),
        "docs/config.md lacks:\n{err}"
    );
}

#[test]
fn copy_defaults() {
    let copy = Config::from_sources(None, &BTreeMap::new(), &[])
        .expect("defaults are valid")
        .copy;
    assert_eq!(copy, CopyConfig::default());
    assert!(copy.enabled);
    assert_eq!(copy.cycle_secs, 60);
    assert!(copy.ebs && copy.rds && copy.rds_clusters && copy.amis);
    assert!(copy.selector_tags.is_empty());
    assert!(copy.volume_ids.is_empty());
    assert!(copy.db_instance_ids.is_empty());
    assert!(copy.db_cluster_ids.is_empty());
    assert_eq!(
        (
            copy.ebs_max_in_flight,
            copy.rds_max_in_flight,
            copy.rds_cluster_max_in_flight,
            copy.ami_max_in_flight
        ),
        (20, 20, 5, 300)
    );
    assert_eq!(
        (copy.keep_per_volume, copy.keep_per_db, copy.keep_per_image),
        (2, 2, 2)
    );
    assert_eq!(copy.rds_manual_snapshot_quota, 100);
    assert!(copy.kms_key_map.is_empty());
    assert_eq!(copy.dr_default_kms_key, None);
    assert_eq!(copy.copy_timeout_secs, 48 * 3600);
}

#[test]
fn max_in_flight_is_keyed_by_copy_kind() {
    let copy = full().copy;
    assert_eq!(copy.max_in_flight("ebs_snapshot"), 10);
    assert_eq!(copy.max_in_flight("rds_snapshot"), 8);
    assert_eq!(copy.max_in_flight("rds_cluster_snapshot"), 2);
    assert_eq!(copy.max_in_flight("ami"), 50);
    for unknown in ["", "ebs", "AMI", "s3_object", "rds_snapshot "] {
        assert_eq!(copy.max_in_flight(unknown), 0, "{unknown}");
    }
    let defaults = CopyConfig::default();
    assert_eq!(defaults.max_in_flight("ebs_snapshot"), 20);
    assert_eq!(defaults.max_in_flight("rds_snapshot"), 20);
    assert_eq!(defaults.max_in_flight("rds_cluster_snapshot"), 5);
    assert_eq!(defaults.max_in_flight("ami"), 300);
}

#[test]
fn every_copy_rule_reports_at_once() {
    let file = r#"
[copy]
cycle_secs = 0
selector_tags = { "dr:protect" = "", "" = "x", env = "prod" }
volume_ids = ["vol-0123abcd", "vol-xyz", "i-0123456789abcdef0"]
db_instance_ids = ["app-db", "1db"]
db_cluster_ids = ["cluster--a"]
ebs_max_in_flight = 21
rds_max_in_flight = 0
rds_cluster_max_in_flight = 6
ami_max_in_flight = 301
keep_per_volume = 0
keep_per_db = 0
keep_per_image = 0
rds_manual_snapshot_quota = 0
dr_default_kms_key = "arn:aws:kms:us-east-1:123456789012:key/c"
copy_timeout_secs = 59

[copy.kms_key_map]
"arn:aws:kms:us-west-2:123456789012:key/a" = "arn:aws:kms:us-east-1:123456789012:key/b"
"not-an-arn" = "arn:aws:kms:us-west-2:123456789012:alias/dr"
"arn:aws:kms:us-east-1:123456789012:key/ok" = "arn:aws:kms:us-west-2:123456789012:key/ok"
"#;
    let errs = file_errors(file);
    let mut got: Vec<(&str, &Source)> = errs
        .iter()
        .map(|e| (e.path.as_str(), &e.source_kind))
        .collect();
    got.sort_by(|a, b| a.0.cmp(b.0));
    let file_src = &Source::File;
    let rule = &Source::Validation;
    let wrong_regions = "copy.kms_key_map.\"arn:aws:kms:us-west-2:123456789012:key/a\"";
    let mut want = vec![
        ("copy.cycle_secs", file_src),
        ("copy.selector_tags.\"dr:protect\"", file_src),
        ("copy.selector_tags.\"\"", file_src),
        ("copy.volume_ids[1]", file_src),
        ("copy.volume_ids[2]", file_src),
        ("copy.db_instance_ids[1]", file_src),
        ("copy.db_cluster_ids[0]", file_src),
        ("copy.ebs_max_in_flight", file_src),
        ("copy.rds_max_in_flight", file_src),
        ("copy.rds_cluster_max_in_flight", file_src),
        ("copy.ami_max_in_flight", file_src),
        ("copy.keep_per_volume", file_src),
        ("copy.keep_per_db", file_src),
        ("copy.keep_per_image", file_src),
        ("copy.rds_manual_snapshot_quota", file_src),
        // Both the key and the value of this entry are in the wrong region.
        (wrong_regions, rule),
        (wrong_regions, rule),
        ("copy.kms_key_map.not-an-arn", file_src),
        ("copy.dr_default_kms_key", rule),
        ("copy.copy_timeout_secs", file_src),
    ];
    want.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(got, want, "{errs:#?}");

    let message = |path: &str| at(&errs, path).message.clone();
    assert!(message("copy.selector_tags.\"dr:protect\"").contains("tag value"));
    assert!(message("copy.selector_tags.\"\"").contains("tag key"));
    assert!(message("copy.volume_ids[1]").contains("`vol-xyz`"));
    assert!(message("copy.db_instance_ids[1]").contains("start with a letter"));
    assert!(message("copy.db_cluster_ids[0]").contains("two hyphens"));
    for (key, max) in [
        ("ebs_max_in_flight", 20),
        ("rds_max_in_flight", 20),
        ("rds_cluster_max_in_flight", 5),
        ("ami_max_in_flight", 300),
    ] {
        let text = message(&format!("copy.{key}"));
        assert!(text.contains(&format!("between 1 and {max}")), "{text}");
        assert!(text.contains("AWS refuses"), "{text}");
    }
    assert!(message("copy.copy_timeout_secs").contains("at least 60, got 59"));
    assert!(message("copy.kms_key_map.not-an-arn").contains("not a KMS key ARN"));
    assert!(message("copy.dr_default_kms_key").contains("regions.dr `us-west-2`"));
    let region_messages: Vec<&str> = errs
        .iter()
        .filter(|e| e.path == wrong_regions)
        .map(|e| e.message.as_str())
        .collect();
    assert!(
        region_messages[0].starts_with("key ")
            && region_messages[0].contains("not in regions.primary `us-east-1`"),
        "{region_messages:?}"
    );
    assert!(
        region_messages[1].starts_with("value ")
            && region_messages[1].contains("not in regions.dr `us-west-2`"),
        "{region_messages:?}"
    );
}

#[test]
fn copy_values_of_the_wrong_type_are_reported_per_entry() {
    let errs = file_errors(
        r#"
[copy]
volume_ids = "vol-0123abcd"
selector_tags = { env = 1, team = "dr" }
kms_key_map = { "arn:aws:kms:us-east-1:123456789012:key/a" = true }
ami_max_in_flight = -1
"#,
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "copy.ami_max_in_flight",
            "copy.kms_key_map.\"arn:aws:kms:us-east-1:123456789012:key/a\"",
            "copy.selector_tags.env",
            "copy.volume_ids",
        ],
        "{errs:#?}"
    );
    assert!(
        errs.iter().all(|e| e.message.contains("invalid")),
        "{errs:#?}"
    );
}

#[test]
fn env_overrides_copy_keys() {
    let vars = env(&[
        ("PILOTLIGHT_COPY__EBS_MAX_IN_FLIGHT", "5"),
        ("PILOTLIGHT_COPY__ENABLED", "false"),
        ("PILOTLIGHT_COPY__VOLUME_IDS", r#"["vol-0123abcd"]"#),
        ("PILOTLIGHT_COPY__SELECTOR_TAGS__ENV", "prod"),
        ("PILOTLIGHT_COPY__DR_DEFAULT_KMS_KEY", "alias/dr-ebs"),
    ]);
    let config = load("[copy]\nebs_max_in_flight = 12\n", &vars, &[]);
    assert_eq!(config.copy.ebs_max_in_flight, 5);
    assert_eq!(config.copy.max_in_flight("ebs_snapshot"), 5);
    assert!(!config.copy.enabled);
    assert_eq!(config.copy.volume_ids, ["vol-0123abcd"]);
    assert_eq!(
        config.copy.selector_tags,
        BTreeMap::from([("env".to_owned(), "prod".to_owned())])
    );
    assert_eq!(
        config.copy.dr_default_kms_key.as_deref(),
        Some("alias/dr-ebs")
    );
    // Untouched keys keep their defaults.
    assert_eq!(config.copy.rds_max_in_flight, 20);

    let var = "PILOTLIGHT_COPY__EBS_MAX_IN_FLIGHT";
    let errs = errors("", &env(&[(var, "21")]), &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let err = at(&errs, "copy.ebs_max_in_flight");
    assert_eq!(err.source_kind, Source::Env(var.to_owned()));
    assert!(err.message.contains("between 1 and 20"), "{err}");

    let var = "PILOTLIGHT_COPY__VOLUME_IDS";
    let errs = errors("", &env(&[(var, r#"["vol-0123abcd", "vol-nope"]"#)]), &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        at(&errs, "copy.volume_ids[1]").source_kind,
        Source::Env(var.to_owned())
    );
}

#[test]
fn kms_key_map_follows_the_configured_regions() {
    let map = r#"
[copy.kms_key_map]
"arn:aws:kms:eu-central-1:123456789012:key/p" = "arn:aws:kms:eu-west-1:123456789012:key/d"
"#;
    // Valid for eu-central-1 → eu-west-1 ...
    let config = load(
        &format!("[regions]\nprimary = \"eu-central-1\"\ndr = \"eu-west-1\"\n{map}"),
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(
        config
            .copy
            .kms_key_map
            .get("arn:aws:kms:eu-central-1:123456789012:key/p"),
        Some(&"arn:aws:kms:eu-west-1:123456789012:key/d".to_owned())
    );
    // ... and a DR key of the DR region (given on the command line) is accepted.
    let config = load(
        &format!("[regions]\nprimary = \"eu-central-1\"\ndr = \"eu-west-1\"\n{map}"),
        &BTreeMap::new(),
        &["copy.dr_default_kms_key=arn:aws:kms:eu-west-1:123456789012:alias/dr"],
    );
    assert!(config.copy.dr_default_kms_key.is_some());

    // ... but not for the default regions: the key and the value are both in the wrong one.
    let entry = "copy.kms_key_map.\"arn:aws:kms:eu-central-1:123456789012:key/p\"";
    let errs = file_errors(map);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs.iter().all(|e| e.path == entry));
    assert!(errs.iter().all(|e| e.source_kind == Source::Validation));
    assert!(
        errs[0].message.contains("regions.primary `us-east-1`"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].message.contains("regions.dr `us-west-2`"),
        "{}",
        errs[1]
    );

    // With the regions swapped by the environment, key and value are each in the other's
    // region: both are wrong, judged against the overridden regions.
    let swapped = env(&[
        ("PILOTLIGHT_REGIONS__PRIMARY", "eu-west-1"),
        ("PILOTLIGHT_REGIONS__DR", "eu-central-1"),
    ]);
    let errs = errors(map, &swapped, &[]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].message.contains("regions.primary `eu-west-1`"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].message.contains("regions.dr `eu-central-1`"),
        "{}",
        errs[1]
    );

    // A region that is itself invalid reports once; the map is not judged against it.
    let errs = file_errors(&format!(
        "[regions]\nprimary = \"eu-central\"\ndr = \"eu-west-1\"\n{map}"
    ));
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["regions.primary"], "{errs:#?}");

    // A key that is an alias ARN is not a key ARN; a value may be an alias ARN.
    let errs = file_errors(
        r#"
[copy.kms_key_map]
"arn:aws:kms:us-east-1:123456789012:alias/app" = "arn:aws:kms:us-west-2:123456789012:alias/dr"
"#,
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].source_kind, Source::File);
    assert!(errs[0].message.contains("not a KMS key ARN"), "{}", errs[0]);
}

#[test]
fn dr_default_kms_key_is_an_alias_name_or_a_dr_region_arn() {
    let none = BTreeMap::new();
    for good in [
        "alias/pilotlight-dr",
        "alias/aws/ebs",
        "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-west-2:123456789012:alias/pilotlight-dr",
    ] {
        let config = load(
            &format!("[copy]\ndr_default_kms_key = \"{good}\"\n"),
            &none,
            &[],
        );
        assert_eq!(config.copy.dr_default_kms_key.as_deref(), Some(good));
    }
    for (bad, source) in [
        ("alias/", Source::File),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", Source::File),
        ("arn:aws:kms:us-west-2:123456789012:grant/g", Source::File),
        (
            "arn:aws:kms:us-east-1:123456789012:key/k",
            Source::Validation,
        ),
    ] {
        let errs = file_errors(&format!("[copy]\ndr_default_kms_key = \"{bad}\"\n"));
        assert_eq!(errs.len(), 1, "{bad}: {errs:#?}");
        assert_eq!(
            at(&errs, "copy.dr_default_kms_key").source_kind,
            source,
            "{bad}"
        );
    }
}

#[test]
fn estate_section_defaults() {
    let config = Config::from_sources(None, &BTreeMap::new(), &[]).expect("defaults are valid");
    let inventory = &config.inventory;
    assert!(inventory.enabled);
    assert_eq!(inventory.bucket, "pilotlight-inventory");
    assert_eq!(inventory.prefix, "inventory/");
    assert_eq!(inventory.cluster_tag, "dr:cluster");
    assert_eq!(
        (
            inventory.utilisation_window_days,
            inventory.utilisation_refresh_secs,
            inventory.utilisation_period_secs
        ),
        (14, 3600, 3600)
    );
    assert!(config.s3.buckets.is_empty());
    assert_eq!(config.s3.sample_objects, 20);
    assert!(config.tenants.is_empty());
    assert_eq!(config.quotas.vcpus.get("standard"), Some(&1152));
    assert_eq!(config.quotas.vcpus.len(), 4);
    assert!(
        config
            .quotas
            .vcpus
            .keys()
            .all(|group| VCPU_QUOTA_GROUPS.contains(&group.as_str()))
    );
    assert_eq!(config.readiness.always_on_tag, "dr:always-on");
    assert!(config.readiness.always_on.is_empty());
    assert_eq!(config.restore.max_instances_per_call, 100);
    assert_eq!(config.restore.data_volumes, VolumeStrategy::Auto);
    assert_eq!(config.restore.gate, TierGate::Running);
    assert_eq!(config.restore.route53_max_changes_per_batch, 1000);
}

#[test]
fn every_estate_rule_reports_at_once() {
    let file = r#"
[inventory]
cycle_secs = 0
bucket = "Pilotlight_Inventory"
prefix = "/inventory/"
cluster_tag = ""
utilisation_window_days = 64
utilisation_refresh_secs = 59
utilisation_period_secs = 90

[s3]
buckets = ["assets", "ab", "assets", "logs-"]
cycle_secs = 0
sample_objects = 1001

[[tenants]]
name = "acme"
clusters = ["web", ""]

[[tenants]]
name = "acme"
clusters = []

[[tenants]]
name = "bad name!"
clusters = ["search"]

[[tenants]]
name = ""
clusters = ["search"]

[quotas.vcpus]
standard = 100
gpu = 8

[readiness]
cycle_secs = 0
always_on_tag = ""
always_on = ["directory", "", "directory"]
certificate_map = { "cert-1234" = "arn:aws:acm:us-west-2:123456789012:certificate/d" }

[restore]
max_instances_per_call = 0
route53_max_changes_per_batch = 1001
"#;
    let errs = file_errors(file);
    let mut got: Vec<(&str, &Source)> = errs
        .iter()
        .map(|e| (e.path.as_str(), &e.source_kind))
        .collect();
    got.sort_by(|a, b| a.0.cmp(b.0));
    let file_src = &Source::File;
    let rule = &Source::Validation;
    let mut want = vec![
        ("inventory.cycle_secs", file_src),
        ("inventory.bucket", file_src),
        ("inventory.prefix", file_src),
        ("inventory.cluster_tag", file_src),
        ("inventory.utilisation_window_days", file_src),
        ("inventory.utilisation_refresh_secs", file_src),
        ("inventory.utilisation_period_secs", file_src),
        ("s3.buckets[1]", file_src),
        ("s3.buckets[2]", rule),
        ("s3.buckets[3]", file_src),
        ("s3.cycle_secs", file_src),
        ("s3.sample_objects", file_src),
        ("tenants[0].clusters[1]", file_src),
        ("tenants[1].name", rule),
        ("tenants[1].clusters", file_src),
        ("tenants[2].name", file_src),
        ("tenants[3].name", file_src),
        ("quotas.vcpus.gpu", file_src),
        ("readiness.cycle_secs", file_src),
        ("readiness.always_on_tag", file_src),
        ("readiness.always_on[1]", file_src),
        ("readiness.always_on[2]", rule),
        ("readiness.certificate_map.cert-1234", file_src),
        ("restore.max_instances_per_call", file_src),
        ("restore.route53_max_changes_per_batch", file_src),
    ];
    want.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(got, want, "{errs:#?}");

    let message = |path: &str| at(&errs, path).message.clone();
    assert_eq!(message("inventory.cycle_secs"), "must be at least 1, got 0");
    assert!(message("inventory.bucket").contains("lowercase letters"));
    assert!(message("inventory.prefix").contains("must not start with `/`"));
    assert!(message("inventory.cluster_tag").contains("1 to 128"));
    assert!(message("inventory.utilisation_window_days").contains("between 1 and 63, got 64"));
    assert!(message("inventory.utilisation_refresh_secs").contains("at least 60, got 59"));
    assert!(message("inventory.utilisation_period_secs").contains("multiple of 60, got 90"));
    assert!(message("s3.buckets[1]").contains("3 to 63"));
    assert!(message("s3.buckets[2]").contains("s3.buckets[0]"));
    assert!(message("s3.buckets[3]").contains("start and end"));
    assert!(message("s3.sample_objects").contains("between 1 and 1000, got 1001"));
    assert_eq!(message("tenants[0].clusters[1]"), "must not be empty");
    assert!(message("tenants[1].name").contains("tenants[0]"));
    assert!(message("tenants[1].clusters").contains("at least one cluster"));
    assert!(message("tenants[2].name").contains("`bad name!`"));
    assert!(message("quotas.vcpus.gpu").contains("high-memory"));
    assert!(message("readiness.always_on_tag").contains("1 to 128"));
    assert_eq!(message("readiness.always_on[1]"), "must not be empty");
    assert!(message("readiness.always_on[2]").contains("readiness.always_on[0]"));
    assert!(message("readiness.certificate_map.cert-1234").starts_with("key `cert-1234`"));
    assert!(message("restore.max_instances_per_call").contains("between 1 and 1000, got 0"));
    assert!(
        message("restore.route53_max_changes_per_batch").contains("between 1 and 1000, got 1001")
    );
}

#[test]
fn inventory_bucket_must_be_a_valid_s3_bucket_name() {
    let none = BTreeMap::new();
    let longest = "b".repeat(63);
    for good in [
        "abc",
        "pilotlight-inventory",
        "dr.inventory.example.com",
        "1st-bucket",
        longest.as_str(),
    ] {
        let config = load(&format!("[inventory]\nbucket = \"{good}\"\n"), &none, &[]);
        assert_eq!(config.inventory.bucket, good);
    }
    let too_long = "b".repeat(64);
    for (bad, problem) in [
        ("", "3 to 63"),
        ("ab", "3 to 63"),
        (too_long.as_str(), "3 to 63"),
        ("Inventory", "lowercase letters"),
        ("dr_inventory", "lowercase letters"),
        ("-inventory", "start and end"),
        ("inventory.", "start and end"),
        ("dr..inventory", "two periods"),
        ("192.168.5.4", "IP address"),
        ("xn--inventory", "reserves"),
        ("sthree-inventory", "reserves"),
        ("inventory-s3alias", "reserves"),
        ("inventory--ol-s3", "reserves"),
    ] {
        let errs = file_errors(&format!("[inventory]\nbucket = \"{bad}\"\n"));
        assert_eq!(errs.len(), 1, "{bad}: {errs:#?}");
        let err = at(&errs, "inventory.bucket");
        assert!(err.message.contains(problem), "{bad}: {err}");
        assert!(err.message.contains("not a valid S3 bucket name"), "{err}");
    }
}

#[test]
fn a_long_window_needs_a_period_cloudwatch_keeps() {
    let none = BTreeMap::new();
    // Up to 15 days any multiple of 60 is fine; beyond, only multiples of 300.
    for (window, period) in [(15, 60), (15, 120), (16, 300), (63, 600), (63, 3600)] {
        let config = load(
            &format!(
                "[inventory]\nutilisation_window_days = {window}\n\
                 utilisation_period_secs = {period}\n"
            ),
            &none,
            &[],
        );
        assert_eq!(config.inventory.utilisation_period_secs, period);
    }
    for (window, period) in [(16, 60), (30, 120), (63, 900 + 60)] {
        let errs = file_errors(&format!(
            "[inventory]\nutilisation_window_days = {window}\nutilisation_period_secs = {period}\n"
        ));
        assert_eq!(errs.len(), 1, "{window}/{period}: {errs:#?}");
        let err = at(&errs, "inventory.utilisation_period_secs");
        assert_eq!(err.source_kind, Source::Validation);
        assert!(err.message.contains("multiple of 300"), "{err}");
        assert!(
            err.message.contains(&format!("window of {window} days")),
            "{err}"
        );
    }
    // A window or period that is itself out of range reports once, not also this rule.
    let errs =
        file_errors("[inventory]\nutilisation_window_days = 64\nutilisation_period_secs = 60\n");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["inventory.utilisation_window_days"], "{errs:#?}");
    let errs = file_errors(
        "[inventory]\nutilisation_window_days = \"30\"\nutilisation_period_secs = 60\n",
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["inventory.utilisation_window_days"], "{errs:#?}");
}

#[test]
fn tenants_array_of_tables_parses() {
    let config = load(
        r#"
[[tenants]]
name = "acme"
clusters = ["web", "search"]

[[tenants]]
name = "initech"
clusters = ["search"]
"#,
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(
        config.tenants,
        [
            TenantConfig {
                name: "acme".to_owned(),
                clusters: vec!["web".to_owned(), "search".to_owned()],
            },
            TenantConfig {
                name: "initech".to_owned(),
                clusters: vec!["search".to_owned()],
            },
        ]
    );
    // The command line replaces the file's list as a whole (arrays do not merge).
    let config = load(
        "[[tenants]]\nname = \"acme\"\nclusters = [\"web\"]\n",
        &BTreeMap::new(),
        &[r#"tenants=[{ name = "umbrella", clusters = ["labs"] }]"#],
    );
    assert_eq!(
        config.tenants,
        [TenantConfig {
            name: "umbrella".to_owned(),
            clusters: vec!["labs".to_owned()],
        }]
    );
}

#[test]
fn tenants_need_both_keys_of_the_right_type() {
    let errs = file_errors(
        r#"
[[tenants]]
name = "acme"

[[tenants]]
name = "initech"
clusters = "search"
team = "ops"
"#,
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "tenants[0].clusters",
            "tenants[1].clusters",
            "tenants[1].team"
        ],
        "{errs:#?}"
    );
    assert!(at(&errs, "tenants[0].clusters").message.contains("missing"));
    assert!(
        at(&errs, "tenants[1].clusters")
            .message
            .contains("invalid type")
    );
    assert!(
        at(&errs, "tenants[1].team")
            .message
            .starts_with("unknown key")
    );

    let errs = file_errors("tenants = { name = \"acme\" }\n");
    assert_eq!(
        at(&errs, "tenants").message,
        "expected an array, found table"
    );

    // A bad tenant on the command line is attributed to it.
    let errs = errors(
        "",
        &BTreeMap::new(),
        &[r#"tenants=[{ name = "acme", clusters = [] }]"#],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(at(&errs, "tenants[0].clusters").source_kind, Source::Cli);
}

#[test]
fn estate_values_of_the_wrong_type_are_reported_per_key() {
    let errs = file_errors(
        r#"
[inventory]
enabled = "yes"
utilisation_window_days = -1

[s3]
buckets = "assets"

[quotas.vcpus]
standard = "lots"
g = 16

[readiness]
certificate_map = { "arn:aws:acm:us-east-1:123456789012:certificate/p" = 1 }
frequency = 5

[restore]
data_volumes = "snapshot"
gate = "green"
"#,
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "inventory.enabled",
            "inventory.utilisation_window_days",
            "quotas.vcpus.standard",
            "readiness.certificate_map.\"arn:aws:acm:us-east-1:123456789012:certificate/p\"",
            "readiness.frequency",
            "restore.data_volumes",
            "restore.gate",
            "s3.buckets",
        ],
        "{errs:#?}"
    );
    assert!(
        at(&errs, "restore.data_volumes")
            .message
            .contains("`create_attach`")
    );
    assert!(at(&errs, "restore.gate").message.contains("`healthy`"));
    assert!(
        at(&errs, "readiness.frequency")
            .message
            .contains("`certificate_map`")
    );
}

#[test]
fn vcpu_quotas_merge_with_the_default_groups() {
    let config = load(
        "[quotas.vcpus]\nstandard = 2048\ntrn = 256\n",
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(
        config.quotas.vcpus,
        BTreeMap::from([
            ("standard".to_owned(), 2048),
            ("g".to_owned(), 64),
            ("p".to_owned(), 64),
            ("x".to_owned(), 64),
            ("trn".to_owned(), 256),
        ])
    );
    for group in VCPU_QUOTA_GROUPS {
        let config = load(
            &format!("[quotas.vcpus]\n\"{group}\" = 8\n"),
            &BTreeMap::new(),
            &[],
        );
        assert_eq!(config.quotas.vcpus.get(group), Some(&8), "{group}");
    }
    let errs = file_errors("[quotas.vcpus]\nStandard = 8\nm = 8\n");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["quotas.vcpus.Standard", "quotas.vcpus.m"],
        "{errs:#?}"
    );
}

#[test]
fn certificate_map_keys_and_values_must_be_arns() {
    let config = load(
        r#"
[readiness.certificate_map]
"arn:aws:acm:us-east-1:123456789012:certificate/p" = "arn:aws:acm:us-west-2:123456789012:certificate/d"
"arn:aws:iam::123456789012:server-certificate/web" = "arn:aws:iam::123456789012:server-certificate/web-dr"
"#,
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(config.readiness.certificate_map.len(), 2);

    let errs = file_errors(
        r#"
[readiness.certificate_map]
"arn:aws:acm:us-east-1:123456789012:certificate/p" = "d-cert"
"p-cert" = "arn:"
"arn:aws:acm:us-east-1:123456789012" = "arn:aws:acm:us-west-2:123456789012:certificate/d"
"#,
    );
    let mut got: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    got.sort();
    assert_eq!(got.len(), 4, "{errs:#?}");
    assert!(got[0].0.ends_with(":123456789012\""), "{got:?}");
    assert!(got[0].1.starts_with("key "), "{got:?}");
    assert!(got[1].0.ends_with("certificate/p\""), "{got:?}");
    assert!(got[1].1.starts_with("value `d-cert`"), "{got:?}");
    assert_eq!(got[2].0, "readiness.certificate_map.p-cert");
    assert!(got[2].1.starts_with("key `p-cert`"), "{got:?}");
    assert_eq!(got[3].0, "readiness.certificate_map.p-cert");
    assert!(got[3].1.starts_with("value `arn:`"), "{got:?}");
    assert!(errs.iter().all(|e| e.source_kind == Source::File));
}

#[test]
fn env_overrides_estate_keys() {
    let vars = env(&[
        ("PILOTLIGHT_INVENTORY__BUCKET", "acme-dr-inventory"),
        ("PILOTLIGHT_INVENTORY__UTILISATION", "false"),
        ("PILOTLIGHT_S3__BUCKETS", r#"["acme-assets", "acme-logs"]"#),
        ("PILOTLIGHT_QUOTAS__VCPUS__STANDARD", "2048"),
        (
            "PILOTLIGHT_READINESS__ALWAYS_ON",
            r#"["directory", "build"]"#,
        ),
        ("PILOTLIGHT_RESTORE__GATE", "healthy"),
        ("PILOTLIGHT_RESTORE__DATA_VOLUMES", "block_device_mapping"),
        ("PILOTLIGHT_RESTORE__MAX_INSTANCES_PER_CALL", "250"),
    ]);
    let config = load(
        "[inventory]\nbucket = \"from-the-file\"\n",
        &vars,
        &["restore.max_instances_per_call=500"],
    );
    assert_eq!(config.inventory.bucket, "acme-dr-inventory");
    assert!(!config.inventory.utilisation);
    assert_eq!(config.s3.buckets, ["acme-assets", "acme-logs"]);
    assert_eq!(config.quotas.vcpus.get("standard"), Some(&2048));
    assert_eq!(config.quotas.vcpus.get("g"), Some(&64));
    assert_eq!(config.readiness.always_on, ["directory", "build"]);
    assert_eq!(config.restore.gate, TierGate::Healthy);
    assert_eq!(
        config.restore.data_volumes,
        VolumeStrategy::BlockDeviceMapping
    );
    assert_eq!(config.restore.max_instances_per_call, 500);

    let var = "PILOTLIGHT_INVENTORY__BUCKET";
    let errs = errors("", &env(&[(var, "Not_A_Bucket")]), &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let err = at(&errs, "inventory.bucket");
    assert_eq!(err.source_kind, Source::Env(var.to_owned()));
    assert!(err.to_string().contains(var), "{err}");

    let var = "PILOTLIGHT_S3__BUCKETS";
    let errs = errors("", &env(&[(var, r#"["assets", "assets"]"#)]), &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(at(&errs, "s3.buckets[1]").source_kind, Source::Validation);
}

#[test]
fn fallback_defaults_are_the_policy_defaults() {
    let config = Config::from_sources(None, &BTreeMap::new(), &[]).expect("defaults are valid");
    let fallback = &config.restore.fallback;
    assert_eq!(*fallback, FallbackPolicy::default());
    assert_eq!(fallback.headroom_pct, 20);
    assert_eq!(fallback.unavailable_ttl_secs, 600);
    assert!(fallback.alternative_families.is_empty());
    assert!(fallback.smaller_footprint);
    assert_eq!(fallback.min_utilisation_samples, 24);
    // The default file shows the section and a commented example of the families table.
    let text = Config::default_toml();
    let after_table: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "[restore.fallback.alternative_families]")
        .take(2)
        .collect();
    assert_eq!(
        after_table,
        [
            "[restore.fallback.alternative_families]",
            "# r5 = [\"r5a\", \"r6i\"]"
        ]
    );
    assert!(text.lines().any(|line| line == "[restore.fallback]"));
}

#[test]
fn every_fallback_rule_rejects_its_bad_value_with_its_path() {
    let single = |file: &str, path: &str| -> ConfigError {
        let errs = file_errors(file);
        assert_eq!(errs.len(), 1, "{file}: {errs:#?}");
        at(&errs, path).clone()
    };
    let err = single(
        "[restore.fallback]\nheadroom_pct = 101\n",
        "restore.fallback.headroom_pct",
    );
    assert_eq!(err.message, "must be between 0 and 100, got 101");
    assert_eq!(err.source_kind, Source::File);
    let err = single(
        "[restore.fallback]\nunavailable_ttl_secs = 0\n",
        "restore.fallback.unavailable_ttl_secs",
    );
    assert_eq!(err.message, "must be at least 1, got 0");
    let err = single(
        "[restore.fallback]\nmin_utilisation_samples = 0\n",
        "restore.fallback.min_utilisation_samples",
    );
    assert_eq!(err.message, "must be at least 1, got 0");

    let families = "[restore.fallback.alternative_families]\n";
    let err = single(
        &format!("{families}R5 = [\"r5a\"]\n"),
        "restore.fallback.alternative_families.R5",
    );
    assert!(
        err.message
            .starts_with("key `R5` is not an instance family"),
        "{err}"
    );
    for bad_key in ["\"r5.large\"", "5r", "\"-r5\"", "\"r_5\""] {
        let errs = file_errors(&format!("{families}{bad_key} = [\"r6i\"]\n"));
        assert_eq!(errs.len(), 1, "{bad_key}: {errs:#?}");
        assert!(
            errs[0].message.contains("is not an instance family"),
            "{bad_key}: {errs:#?}"
        );
    }
    let err = single(
        &format!("{families}r5 = [\"r5a\", \"R6i\"]\n"),
        "restore.fallback.alternative_families.r5[1]",
    );
    assert!(
        err.message.starts_with("`R6i` is not an instance family"),
        "{err}"
    );
    assert!(err.message.contains("m7i-flex"), "{err}");
    let err = single(
        &format!("{families}r5 = [\"r5a\", \"r5\"]\n"),
        "restore.fallback.alternative_families.r5[1]",
    );
    assert!(err.message.contains("lists itself"), "{err}");
    assert_eq!(err.source_kind, Source::Validation);
    let err = single(
        &format!("{families}m7i-flex = [\"m7i\", \"m6i\", \"m7i\"]\n"),
        "restore.fallback.alternative_families.m7i-flex[2]",
    );
    assert_eq!(
        err.message,
        "`m7i` is already restore.fallback.alternative_families.m7i-flex[0]; \
         entries must be unique"
    );
    assert_eq!(err.source_kind, Source::Validation);

    // The bounds themselves are fine, as is an empty list.
    let config = load(
        &format!(
            "[restore.fallback]\nheadroom_pct = 100\nunavailable_ttl_secs = 1\n\
             min_utilisation_samples = 1\n{families}r5 = []\nu-6tb1 = [\"u-9tb1\"]\n"
        ),
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(config.restore.fallback.headroom_pct, 100);
    assert_eq!(config.restore.fallback.unavailable_ttl_secs, 1);
    assert_eq!(config.restore.fallback.min_utilisation_samples, 1);
    assert_eq!(
        config.restore.fallback.alternative_families,
        BTreeMap::from([
            ("r5".to_owned(), Vec::new()),
            ("u-6tb1".to_owned(), vec!["u-9tb1".to_owned()]),
        ])
    );
}

#[test]
fn every_bad_fallback_value_is_reported_together() {
    let errs = file_errors(
        r#"
[restore]
max_instances_per_call = 0

[restore.fallback]
headroom_pct = 150
unavailable_ttl_secs = 0
smaller_footprint = "yes"
min_utilisation_samples = -1
retries = 3

[restore.fallback.alternative_families]
r5 = ["r5a", "r5", "r5a", "R6I"]
C5 = ["c5a"]
m5 = "m5a"
m6i = ["m6a", 7]
"#,
    );
    let mut got: Vec<(&str, &Source)> = errs
        .iter()
        .map(|e| (e.path.as_str(), &e.source_kind))
        .collect();
    got.sort_by(|a, b| a.0.cmp(b.0));
    let file_src = &Source::File;
    let rule = &Source::Validation;
    let mut want = vec![
        ("restore.max_instances_per_call", file_src),
        ("restore.fallback.headroom_pct", file_src),
        ("restore.fallback.unavailable_ttl_secs", file_src),
        ("restore.fallback.smaller_footprint", file_src),
        ("restore.fallback.min_utilisation_samples", file_src),
        ("restore.fallback.retries", file_src),
        ("restore.fallback.alternative_families.r5[1]", rule),
        ("restore.fallback.alternative_families.r5[2]", rule),
        ("restore.fallback.alternative_families.r5[3]", file_src),
        ("restore.fallback.alternative_families.C5", file_src),
        ("restore.fallback.alternative_families.m5", file_src),
        ("restore.fallback.alternative_families.m6i", file_src),
    ];
    want.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(got, want, "{errs:#?}");

    let message = |path: &str| at(&errs, path).message.clone();
    assert!(message("restore.fallback.smaller_footprint").contains("invalid type"));
    assert!(message("restore.fallback.min_utilisation_samples").contains("invalid value"));
    assert!(message("restore.fallback.retries").contains("`headroom_pct`"));
    assert!(message("restore.fallback.alternative_families.m5").contains("invalid type"));
    assert!(message("restore.fallback.alternative_families.m6i").contains("invalid type"));
    assert!(message("restore.fallback.headroom_pct").contains("got 150"));
}

#[test]
fn a_fallback_section_that_is_not_a_table_is_reported() {
    let errs = file_errors("[restore]\nfallback = 5\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        at(&errs, "restore.fallback").message,
        "expected a table, found integer"
    );
    let errs = file_errors("[restore.fallback]\nalternative_families = [\"r5a\"]\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        at(&errs, "restore.fallback.alternative_families").message,
        "expected a table, found array"
    );
}

#[test]
fn env_and_cli_override_fallback_keys() {
    let var = "PILOTLIGHT_RESTORE__FALLBACK__HEADROOM_PCT";
    let vars = env(&[
        (var, "40"),
        ("PILOTLIGHT_RESTORE__FALLBACK__SMALLER_FOOTPRINT", "false"),
        (
            "PILOTLIGHT_RESTORE__FALLBACK__ALTERNATIVE_FAMILIES__C5",
            r#"["c5a", "c6i"]"#,
        ),
    ]);
    let file = r#"
[restore.fallback]
headroom_pct = 10
unavailable_ttl_secs = 300

[restore.fallback.alternative_families]
r5 = ["r5a"]
"#;
    let config = load(
        file,
        &vars,
        &["restore.fallback.min_utilisation_samples=12"],
    );
    let fallback = &config.restore.fallback;
    assert_eq!(fallback.headroom_pct, 40);
    assert_eq!(fallback.unavailable_ttl_secs, 300);
    assert!(!fallback.smaller_footprint);
    assert_eq!(fallback.min_utilisation_samples, 12);
    // Tables merge family by family: the file's r5, the environment's c5.
    assert_eq!(
        fallback.alternative_families,
        BTreeMap::from([
            ("c5".to_owned(), vec!["c5a".to_owned(), "c6i".to_owned()]),
            ("r5".to_owned(), vec!["r5a".to_owned()]),
        ])
    );
    // The rest of [restore] keeps its defaults.
    assert_eq!(
        config.restore.max_instances_per_call,
        RestoreConfig::default().max_instances_per_call
    );

    // A bad value from the environment names the variable, whether it fails to load or
    // breaks a rule.
    let errs = errors(file, &env(&[(var, "101")]), &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let err = at(&errs, "restore.fallback.headroom_pct");
    assert_eq!(err.source_kind, Source::Env(var.to_owned()));
    assert!(err.to_string().contains(var), "{err}");
    let errs = errors("", &env(&[(var, "plenty")]), &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let err = at(&errs, "restore.fallback.headroom_pct");
    assert_eq!(err.source_kind, Source::Env(var.to_owned()));
    assert!(err.message.contains("invalid type"), "{err}");
    let families = "PILOTLIGHT_RESTORE__FALLBACK__ALTERNATIVE_FAMILIES";
    let errs = errors("", &env(&[(families, r#"{ r5 = ["r5a.large"] }"#)]), &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        at(&errs, "restore.fallback.alternative_families.r5[0]").source_kind,
        Source::Env(families.to_owned())
    );
}

/// The cells of a docs/config.md reference row, split at the pipes that are not escaped (`\|`
/// inside a type such as `"standard"` \| `"adaptive"`).
fn row_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().expect("a cell").push('|');
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().expect("a cell").push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The value a documented default stands for: one backticked TOML value (`` `"us-east-1"` ``,
/// `` `60` ``, `` `[]` ``) or the entries of a table (`` `1 = 3600`, `2 = 14400` ``).
fn documented_default(cell: &str) -> toml::Value {
    let pieces: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
    let text = if pieces.len() == 1 && !pieces[0].contains(" = ") {
        format!("v = {}", pieces[0])
    } else {
        format!("v = {{ {} }}", pieces.join(", "))
    };
    let mut table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("docs/config.md default {cell:?} is not TOML: {e}"));
    table.remove("v").expect("the value")
}

/// Every key's Default column in docs/config.md states `Config::default()`'s value: a
/// backticked value equal to it (integers and floats compared as numbers), `unset` for an
/// optional key that has none, `empty` for an empty table or list.
fn default_problems(docs: &str) -> Vec<String> {
    let defaults = toml::Table::try_from(Config::default()).expect("serializes");
    let rows: BTreeMap<String, String> = docs
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells = row_cells(l);
            let key = cells
                .get(1)?
                .strip_prefix('`')?
                .strip_suffix('`')?
                .to_owned();
            Some((key, cells.get(3)?.clone()))
        })
        .collect();
    let mut problems = Vec::new();
    for (section, key) in all_keys() {
        let dotted = format!("{section}.{key}");
        let Some(cell) = rows.get(&dotted) else {
            problems.push(format!(
                "docs/config.md has no reference row for `{dotted}`"
            ));
            continue;
        };
        let mut value = Some(&defaults);
        let mut actual = None;
        for (i, segment) in dotted.split('.').enumerate() {
            let Some(table) = value else { break };
            let next = table.get(segment);
            if i + 1 == dotted.split('.').count() {
                actual = next;
            }
            value = next.and_then(toml::Value::as_table);
        }
        let ok = match (cell.as_str(), actual) {
            ("unset", None) => true,
            ("empty", None) => true,
            ("empty", Some(toml::Value::Array(a))) => a.is_empty(),
            ("empty", Some(toml::Value::Table(t))) => t.is_empty(),
            (text, Some(actual)) if text.starts_with('`') => {
                let stated = documented_default(text);
                match (&stated, actual) {
                    (toml::Value::Integer(a), toml::Value::Float(b))
                    | (toml::Value::Float(b), toml::Value::Integer(a)) => {
                        (*a as f64 - b).abs() < 1e-9
                    }
                    _ => &stated == actual,
                }
            }
            _ => false,
        };
        if !ok {
            problems.push(format!(
                "docs/config.md states the default of `{dotted}` as {cell}, but Config::default() has {}",
                actual.map_or("none".to_owned(), ToString::to_string)
            ));
        }
    }
    problems
}

#[test]
fn docs_state_every_default() {
    let problems = default_problems(include_str!("../../../../docs/config.md"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself: a changed number and a value stated for an unset key are reported.
#[test]
fn docs_default_check_reports_wrong_defaults() {
    let docs = include_str!("../../../../docs/config.md")
        .lines()
        .map(|l| {
            if l.starts_with("| `daemon.lease_ttl_secs` |") {
                l.replacen("| `15` |", "| `16` |", 1)
            } else if l.starts_with("| `aws.endpoint_url` |") {
                l.replacen("| unset |", "| `\"http://x\"` |", 1)
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        default_problems(&docs),
        [
            "docs/config.md states the default of `aws.endpoint_url` as `\"http://x\"`, but Config::default() has none",
            "docs/config.md states the default of `daemon.lease_ttl_secs` as `16`, but Config::default() has 15",
        ]
    );
}
