//! The loader behind `Config::from_sources`: layers the defaults, the file, the environment
//! and the command line into one TOML tree (remembering which layer set each value), checks
//! that tree key by key so that one bad key never hides the next, prunes what is bad, then
//! deserializes the rest and hands it to validation. Every problem becomes a `ConfigError`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Visitor};
use toml::{Table, Value};

use crate::fallback::FallbackPolicy;

use super::hooks::{HookAfter, HookFailure, HookMode};
use super::{
    ApiConfig, AwsConfig, Config, ConfigError, ConfigErrors, CopyConfig, DaemonConfig, DrillConfig,
    InventoryConfig, LogConfig, NetworkConfig, QuotasConfig, ReadinessConfig, ReconcileConfig,
    RegionsConfig, RestoreConfig, Role, S3WatchConfig, Source, StoreConfig, ThrottleConfig,
    TiersConfig, parse_throttle_key, parse_tier,
};

/// Prefix of the environment variables that override config keys.
const ENV_PREFIX: &str = "PILOTLIGHT_";
/// Separator between path segments in an environment variable name.
const ENV_SEPARATOR: &str = "__";

/// One step of a path into the TOML tree.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path into the TOML tree.
pub(super) type Path = Vec<Seg>;

/// Builds a path from table keys.
pub(super) fn path(keys: &[&str]) -> Path {
    keys.iter().map(|key| Seg::Key((*key).to_owned())).collect()
}

/// `parent` extended by one key.
pub(super) fn child(parent: &[Seg], key: &str) -> Path {
    let mut path = parent.to_vec();
    path.push(Seg::Key(key.to_owned()));
    path
}

/// Renders a path as TOML would write it: `a.b`, `a."ec2:RunInstances"`, `a.tokens[0].name`.
pub(super) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(key);
                } else {
                    out.push_str(&Value::String(key.clone()).to_string());
                }
            }
            Seg::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Which override layer set a value, and the text it was written as when it was read as a
/// non-string TOML value (so it can be taken as a string where a string is expected).
#[derive(Debug)]
struct Origin {
    source: Source,
    raw: Option<String>,
}

/// Checks one value in place: reports its problems, prunes what is bad inside it, and returns
/// whether the value may be kept.
type Check = fn(&mut Loader, &[Seg], &mut Value) -> bool;

/// Checks one map entry (the key is passed on its own).
type EntryCheck = fn(&mut Loader, &[Seg], &str, &mut Value) -> bool;

/// Collected state of one `from_sources` call.
#[derive(Debug, Default)]
pub(super) struct Loader {
    origins: BTreeMap<Path, Origin>,
    failed: BTreeSet<Path>,
    errors: Vec<ConfigError>,
}

pub(super) fn load(
    file: Option<&str>,
    env: &BTreeMap<String, String>,
    cli: &[String],
) -> Result<Config, ConfigErrors> {
    let mut loader = Loader::default();
    let mut root = match Table::try_from(Config::default()) {
        Ok(root) => root,
        Err(err) => {
            loader.cross(&[], format!("built-in defaults do not serialize: {err}"));
            return Err(ConfigErrors(loader.errors));
        }
    };
    if let Some(text) = file {
        match toml::from_str::<Table>(text) {
            Ok(table) => merge(&mut root, table),
            Err(err) => return Err(ConfigErrors(vec![syntax_error(text, &err)])),
        }
    }
    loader.apply_env(&mut root, env);
    loader.apply_cli(&mut root, cli);

    let mut root = Value::Table(root);
    loader.check_struct::<Config>(&[], &mut root, SECTIONS);
    let config = match Config::deserialize(root) {
        Ok(config) => config,
        Err(err) => {
            // The checks above prune everything that does not deserialize; reaching this is a
            // loader bug, still reported rather than hidden.
            loader.cross(&[], format!("internal error: {}", err.message()));
            Config::default()
        }
    };
    super::validate::validate(&config, &mut loader);
    if loader.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(loader.errors))
    }
}

/// The TOML syntax error of the file, with its line and column.
fn syntax_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let location = match err.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .map_or(0, |line| line.chars().count())
                + 1;
            format!(" at line {line}, column {column}")
        }
        None => String::new(),
    };
    ConfigError {
        path: String::new(),
        source_kind: Source::File,
        message: format!("TOML syntax error{location}: {}", err.message()),
    }
}

/// Merges `upper` into `lower`: tables merge key by key, anything else replaces.
fn merge(lower: &mut Table, upper: Table) {
    for (key, value) in upper {
        match (lower.get_mut(&key), value) {
            (Some(Value::Table(low)), Value::Table(up)) => merge(low, up),
            (_, value) => {
                lower.insert(key, value);
            }
        }
    }
}

/// Reads an override value: as TOML when the text is exactly one TOML value, else as a string.
fn parse_value(raw: &str) -> Value {
    match toml::from_str::<Table>(&format!("v = {raw}")) {
        Ok(mut table) if table.len() == 1 => table
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        _ => Value::String(raw.to_owned()),
    }
}

/// Reads a command-line key path as a TOML dotted key (`a.b`, `a."ec2:RunInstances".burst`).
fn parse_key_path(text: &str) -> Option<Vec<String>> {
    let mut current = toml::from_str::<Table>(&format!("{text} = 0")).ok()?;
    let mut segments = Vec::new();
    loop {
        if current.len() != 1 {
            return None;
        }
        let (key, value) = current.into_iter().next()?;
        segments.push(key);
        match value {
            Value::Table(table) => current = table,
            Value::Integer(0) => return Some(segments),
            _ => return None,
        }
    }
}

/// The sections of `Config` and the checks of their nested open maps and arrays.
const SECTIONS: &[(&str, Check)] = &[
    ("regions", |l, p, v| {
        l.check_struct::<RegionsConfig>(
            p,
            v,
            &[("az_map", |l, p, v| l.check_map(p, v, string_entry))],
        )
    }),
    ("aws", |l, p, v| l.check_struct::<AwsConfig>(p, v, &[])),
    ("store", |l, p, v| l.check_struct::<StoreConfig>(p, v, &[])),
    ("api", |l, p, v| {
        l.check_struct::<ApiConfig>(p, v, &[("tokens", |l, p, v| l.check_array(p, v, token))])
    }),
    ("reconcile", |l, p, v| {
        l.check_struct::<ReconcileConfig>(p, v, &[])
    }),
    ("network", |l, p, v| {
        l.check_struct::<NetworkConfig>(p, v, &[])
    }),
    ("copy", |l, p, v| {
        l.check_struct::<CopyConfig>(
            p,
            v,
            &[
                ("selector_tags", |l, p, v| l.check_map(p, v, string_entry)),
                ("kms_key_map", |l, p, v| l.check_map(p, v, string_entry)),
            ],
        )
    }),
    ("tiers", |l, p, v| {
        l.check_struct::<TiersConfig>(
            p,
            v,
            &[("rpo_secs", |l, p, v| l.check_map(p, v, rpo_entry))],
        )
    }),
    ("inventory", |l, p, v| {
        l.check_struct::<InventoryConfig>(p, v, &[])
    }),
    ("s3", |l, p, v| l.check_struct::<S3WatchConfig>(p, v, &[])),
    ("tenants", |l, p, v| l.check_array(p, v, tenant)),
    ("quotas", |l, p, v| {
        l.check_struct::<QuotasConfig>(p, v, &[("vcpus", |l, p, v| l.check_map(p, v, u32_entry))])
    }),
    ("readiness", |l, p, v| {
        l.check_struct::<ReadinessConfig>(
            p,
            v,
            &[("certificate_map", |l, p, v| l.check_map(p, v, string_entry))],
        )
    }),
    ("restore", |l, p, v| {
        l.check_struct::<RestoreConfig>(
            p,
            v,
            &[
                ("fallback", |l, p, v| {
                    l.check_struct::<FallbackPolicy>(
                        p,
                        v,
                        &[("alternative_families", |l, p, v| {
                            l.check_map(p, v, string_list_entry)
                        })],
                    )
                }),
                ("hooks", |l, p, v| l.check_array(p, v, hook)),
            ],
        )
    }),
    ("drill", |l, p, v| l.check_struct::<DrillConfig>(p, v, &[])),
    ("throttle", |l, p, v| {
        l.check_struct::<ThrottleConfig>(
            p,
            v,
            &[("overrides", |l, p, v| l.check_map(p, v, override_entry))],
        )
    }),
    ("log", |l, p, v| l.check_struct::<LogConfig>(p, v, &[])),
    ("daemon", |l, p, v| {
        l.check_struct::<DaemonConfig>(p, v, &[])
    }),
];

/// An entry of an open table of strings (`regions.az_map`, `copy.selector_tags`, …).
fn string_entry(loader: &mut Loader, path: &[Seg], _key: &str, value: &mut Value) -> bool {
    loader.check_leaf::<String>(path, value)
}

/// An entry of an open table of counts (`quotas.vcpus`).
fn u32_entry(loader: &mut Loader, path: &[Seg], _key: &str, value: &mut Value) -> bool {
    loader.check_leaf::<u32>(path, value)
}

/// An entry of an open table of string lists (`restore.fallback.alternative_families`).
fn string_list_entry(loader: &mut Loader, path: &[Seg], _key: &str, value: &mut Value) -> bool {
    loader.check_leaf::<Vec<String>>(path, value)
}

fn rpo_entry(loader: &mut Loader, path: &[Seg], key: &str, value: &mut Value) -> bool {
    if parse_tier(key).is_none() {
        loader.error(
            path,
            "not a tier: keys must be tier numbers 1 to 9".to_owned(),
        );
        return false;
    }
    loader.check_leaf::<u64>(path, value)
}

fn override_entry(loader: &mut Loader, path: &[Seg], key: &str, value: &mut Value) -> bool {
    let key_ok = parse_throttle_key(key).is_some();
    if !key_ok {
        loader.error(
            path,
            format!(
                "key must be \"service:ActionOrCategory\" with service one of {}",
                super::THROTTLE_SERVICES.join(", ")
            ),
        );
    }
    let record_ok = loader.check_record(
        path,
        value,
        &[
            ("burst", Loader::check_leaf::<u32>),
            ("refill_per_sec", Loader::check_leaf::<f64>),
        ],
    );
    key_ok && record_ok
}

fn token(loader: &mut Loader, path: &[Seg], value: &mut Value) -> bool {
    loader.check_record(
        path,
        value,
        &[
            ("name", Loader::check_leaf::<String>),
            ("role", Loader::check_leaf::<Role>),
            ("token_file", Loader::check_leaf::<PathBuf>),
        ],
    )
}

/// A `[[restore.hooks]]` entry: `name`, `url` and `secret_file` required.
fn hook(loader: &mut Loader, path: &[Seg], value: &mut Value) -> bool {
    loader.check_fields(
        path,
        value,
        &[
            ("name", Loader::check_leaf::<String>),
            ("url", Loader::check_leaf::<String>),
            ("secret_file", Loader::check_leaf::<PathBuf>),
            ("after", Loader::check_leaf::<Vec<HookAfter>>),
            ("wait", Loader::check_leaf::<bool>),
            ("timeout_secs", Loader::check_leaf::<u64>),
            ("modes", Loader::check_leaf::<Vec<HookMode>>),
            ("on_failure", Loader::check_leaf::<HookFailure>),
        ],
        3,
    )
}

/// A `[[tenants]]` entry: both keys required.
fn tenant(loader: &mut Loader, path: &[Seg], value: &mut Value) -> bool {
    loader.check_record(
        path,
        value,
        &[
            ("name", Loader::check_leaf::<String>),
            ("clusters", Loader::check_leaf::<Vec<String>>),
        ],
    )
}

impl Loader {
    /// Records a value that could not be loaded (it is pruned and a default stands in for it),
    /// attributed to the layer that set it.
    pub(super) fn error(&mut self, path: &[Seg], message: String) {
        let source_kind = self.source_of(path);
        self.failed.insert(path.to_vec());
        self.errors.push(ConfigError {
            path: render(path),
            source_kind,
            message,
        });
    }

    /// Records a value that loaded but breaks a validation rule, attributed to the layer that
    /// set it. Unlike [`Loader::error`] it does not make the value a stand-in.
    pub(super) fn invalid(&mut self, path: &[Seg], message: String) {
        let source_kind = self.source_of(path);
        self.errors.push(ConfigError {
            path: render(path),
            source_kind,
            message,
        });
    }

    /// Records a problem found by a rule relating several keys.
    pub(super) fn cross(&mut self, path: &[Seg], message: String) {
        self.errors.push(ConfigError {
            path: render(path),
            source_kind: Source::Validation,
            message,
        });
    }

    /// True if loading reported a problem at `path` or at one of its ancestors, so the value
    /// there is a stand-in default and rules relating it to other keys must not judge it.
    pub(super) fn failed(&self, path: &[Seg]) -> bool {
        (0..=path.len()).any(|len| self.failed.contains(&path[..len]))
    }

    /// The layer that set the value at `path`: the nearest override at or above it, else one
    /// below it (a key that only exists because an override created it), else the file.
    fn source_of(&self, path: &[Seg]) -> Source {
        let above = (0..=path.len())
            .rev()
            .find_map(|len| self.origins.get(&path[..len]));
        let below = || {
            self.origins
                .range(path.to_vec()..)
                .next()
                .filter(|(key, _)| key.starts_with(path))
                .map(|(_, origin)| origin)
        };
        above
            .or_else(below)
            .map_or(Source::File, |origin| origin.source.clone())
    }

    /// Remembers that `source` set `value` at `path` (at each leaf of a table value).
    fn record(&mut self, path: &[Seg], value: &Value, source: &Source, raw: Option<&str>) {
        match value {
            Value::Table(table) if !table.is_empty() => {
                for (key, value) in table {
                    self.record(&child(path, key), value, source, None);
                }
            }
            _ => {
                self.origins
                    .retain(|key, _| !(key.starts_with(path) && key.len() > path.len()));
                let raw = match value {
                    Value::String(_) => None,
                    _ => raw.map(str::to_owned),
                };
                self.origins.insert(
                    path.to_vec(),
                    Origin {
                        source: source.clone(),
                        raw,
                    },
                );
            }
        }
    }

    /// Sets `value` at `segments` in `root`, creating (or replacing non-table) parents.
    fn set(
        &mut self,
        root: &mut Table,
        segments: &[String],
        value: Value,
        source: Source,
        raw: &str,
    ) {
        let Some((last, parents)) = segments.split_last() else {
            return;
        };
        let path: Path = segments.iter().map(|key| Seg::Key(key.clone())).collect();
        self.record(&path, &value, &source, Some(raw));
        let mut table = root;
        for key in parents {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            table = match entry {
                Value::Table(inner) => inner,
                _ => return,
            };
        }
        match (table.get_mut(last), value) {
            (Some(Value::Table(existing)), Value::Table(upper)) => merge(existing, upper),
            (_, value) => {
                table.insert(last.clone(), value);
            }
        }
    }

    /// Applies `PILOTLIGHT_<SECTION>__<KEY>` variables.
    fn apply_env(&mut self, root: &mut Table, env: &BTreeMap<String, String>) {
        let mut seen: BTreeMap<Path, String> = BTreeMap::new();
        for (name, raw) in env {
            let Some(rest) = name
                .get(..ENV_PREFIX.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
                .and_then(|_| name.get(ENV_PREFIX.len()..))
            else {
                continue;
            };
            if !rest.contains(ENV_SEPARATOR) {
                continue;
            }
            let source = Source::Env(name.clone());
            let segments: Vec<String> = rest
                .split(ENV_SEPARATOR)
                .map(str::to_ascii_lowercase)
                .collect();
            if segments.iter().any(String::is_empty) {
                self.errors.push(ConfigError {
                    path: String::new(),
                    source_kind: source,
                    message: "variable name has an empty path segment".to_owned(),
                });
                continue;
            }
            let path: Path = segments.iter().map(|key| Seg::Key(key.clone())).collect();
            if let Some(first) = seen.insert(path.clone(), name.clone()) {
                self.errors.push(ConfigError {
                    path: render(&path),
                    source_kind: source,
                    message: format!("also set by {first}; set each key once"),
                });
                continue;
            }
            self.set(root, &segments, parse_value(raw), source, raw);
        }
    }

    /// Applies `path=value` command-line overrides, later ones winning.
    fn apply_cli(&mut self, root: &mut Table, cli: &[String]) {
        for (index, arg) in cli.iter().enumerate() {
            let number = index + 1;
            let Some((key, raw)) = arg.split_once('=') else {
                // The argument is not echoed: it may be a pasted secret.
                self.errors.push(ConfigError {
                    path: String::new(),
                    source_kind: Source::Cli,
                    message: format!("override #{number} is not of the form PATH=VALUE"),
                });
                continue;
            };
            let Some(segments) = parse_key_path(key.trim()) else {
                self.errors.push(ConfigError {
                    path: String::new(),
                    source_kind: Source::Cli,
                    message: format!(
                        "override #{number}: `{}` is not a dotted key path",
                        key.trim()
                    ),
                });
                continue;
            };
            self.set(root, &segments, parse_value(raw), Source::Cli, raw);
        }
    }

    /// Runs `attempt` on `value`; if it fails and the value was an override written as a
    /// non-string, retries with the text as written. Reports the first failure.
    fn check_with_retry(
        &mut self,
        path: &[Seg],
        value: &mut Value,
        attempt: impl Fn(&Value) -> Result<(), toml::de::Error>,
    ) -> bool {
        let Err(err) = attempt(value) else {
            return true;
        };
        if let Some(raw) = self.origins.get(path).and_then(|origin| origin.raw.clone()) {
            let text = Value::String(raw);
            if attempt(&text).is_ok() {
                *value = text;
                return true;
            }
        }
        self.error(path, err.message().to_owned());
        false
    }

    /// Checks that `value` deserializes as a `T`.
    fn check_leaf<T: DeserializeOwned>(&mut self, path: &[Seg], value: &mut Value) -> bool {
        self.check_with_retry(path, value, |v| T::deserialize(v.clone()).map(drop))
    }

    /// Checks a table that deserializes as the struct `T` (all of whose fields have defaults):
    /// each key on its own, the keys in `nested` with their own checks. Bad keys are removed.
    fn check_struct<T: DeserializeOwned>(
        &mut self,
        path: &[Seg],
        value: &mut Value,
        nested: &[(&str, Check)],
    ) -> bool {
        let Value::Table(table) = value else {
            self.error(
                path,
                format!("expected a table, found {}", value.type_str()),
            );
            return false;
        };
        let fields = field_names::<T>();
        let keys: Vec<String> = table.keys().cloned().collect();
        for key in keys {
            let key_path = child(path, &key);
            let Some(entry) = table.get_mut(&key) else {
                continue;
            };
            let keep = if !fields.contains(&key.as_str()) {
                self.error(&key_path, unknown_key(fields));
                false
            } else if let Some((_, check)) = nested.iter().find(|(name, _)| *name == key) {
                check(self, &key_path, entry)
            } else {
                self.check_with_retry(&key_path, entry, |v| {
                    let mut one = Table::new();
                    one.insert(key.clone(), v.clone());
                    T::deserialize(Value::Table(one)).map(drop)
                })
            };
            if !keep {
                table.remove(&key);
            }
        }
        true
    }

    /// Checks a table with exactly the keys `fields`, all required.
    fn check_record(&mut self, path: &[Seg], value: &mut Value, fields: &[(&str, Check)]) -> bool {
        self.check_fields(path, value, fields, fields.len())
    }

    /// Checks a table whose keys are among `fields`, the first `required` of them required.
    fn check_fields(
        &mut self,
        path: &[Seg],
        value: &mut Value,
        fields: &[(&str, Check)],
        required: usize,
    ) -> bool {
        let Value::Table(table) = value else {
            self.error(
                path,
                format!("expected a table, found {}", value.type_str()),
            );
            return false;
        };
        let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
        let mut ok = true;
        for (key, entry) in table.iter_mut() {
            let key_path = child(path, key);
            match fields.iter().find(|(name, _)| name == key) {
                Some((_, check)) => ok &= check(self, &key_path, entry),
                None => {
                    self.error(&key_path, unknown_key(&names));
                    ok = false;
                }
            }
        }
        for name in &names[..required] {
            if !table.contains_key(*name) {
                self.error(&child(path, name), "required key is missing".to_owned());
                ok = false;
            }
        }
        ok
    }

    /// Checks an open table: any key, each entry checked by `entry`; bad entries are removed.
    fn check_map(&mut self, path: &[Seg], value: &mut Value, entry: EntryCheck) -> bool {
        let Value::Table(table) = value else {
            self.error(
                path,
                format!("expected a table, found {}", value.type_str()),
            );
            return false;
        };
        let keys: Vec<String> = table.keys().cloned().collect();
        for key in keys {
            let keep = match table.get_mut(&key) {
                Some(value) => entry(self, &child(path, &key), &key, value),
                None => true,
            };
            if !keep {
                table.remove(&key);
            }
        }
        true
    }

    /// Checks an array, each element by `element`. Any bad element drops the whole array
    /// (indices in later messages must keep meaning what the user wrote).
    fn check_array(&mut self, path: &[Seg], value: &mut Value, element: Check) -> bool {
        let Value::Array(items) = value else {
            self.error(
                path,
                format!("expected an array, found {}", value.type_str()),
            );
            return false;
        };
        let mut ok = true;
        for (index, item) in items.iter_mut().enumerate() {
            let mut item_path = path.to_vec();
            item_path.push(Seg::Index(index));
            ok &= element(self, &item_path, item);
        }
        ok
    }
}

fn unknown_key(expected: &[&str]) -> String {
    let list: Vec<String> = expected.iter().map(|name| format!("`{name}`")).collect();
    format!("unknown key; expected one of {}", list.join(", "))
}

/// The field names of the struct `T`, as its derived `Deserialize` declares them.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The probe always fails on purpose once it has seen the field list.
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// A deserializer that only records the field list passed to `deserialize_struct`.
struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
