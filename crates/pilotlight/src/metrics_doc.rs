//! `docs/metrics.md` against the daemon's registry (P4: every metric listed): each metric family
//! [`crate::app::metrics_registry`] registers is in the reference's tables with its type, and
//! each name the tables list is registered.
//!
//! The text encoder leaves out a labelled family until its first series is recorded, so the
//! registry of a daemon that has recorded nothing cannot be scraped for its families.
//! prometheus-client has no public way to list them either; its `Registry`'s `Debug` output
//! does show every registration (prefix, name, unit) and, for unlabelled metrics, the type, so
//! the family names come from there. Types come from the same output (unlabelled metrics) and
//! from the encoded text (labelled families the daemon records at start-up); a labelled family
//! with no series yet has its name checked but not its type.

use std::collections::BTreeMap;

use crate::app::metrics_registry;

/// A family's exported name (prefix, name and unit suffix, without a counter's `_total`) →
/// its type when known (`counter`, `gauge`, `histogram`).
fn registered() -> BTreeMap<String, Option<String>> {
    let (registry, _metrics) = metrics_registry();
    let debug = format!("{registry:#?}");
    let lines: Vec<&str> = debug.lines().map(str::trim).collect();
    let quoted = |line: &str| -> String {
        let start = line.find('"').expect("a quoted value") + 1;
        let end = line.rfind('"').expect("a quoted value");
        line[start..end].to_owned()
    };
    let mut families = BTreeMap::new();
    // In a registry's Debug output its prefix comes before its metrics, and its sub-registries
    // after them, so the last prefix seen is the prefix of each descriptor.
    let mut prefix = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "Prefix(" {
            prefix = quoted(lines[i + 1]);
        } else if lines[i] == "Descriptor {" {
            assert!(lines[i + 1].starts_with("name: "), "{}", lines[i + 1]);
            let mut name = format!("{prefix}_{}", quoted(lines[i + 1]));
            let mut j = i + 3;
            if lines[j] == "unit: Some(" {
                let unit = lines[j + 1].trim_end_matches(',').to_ascii_lowercase();
                name = format!("{name}_{unit}");
                j += 3;
            } else {
                assert_eq!(lines[j], "unit: None,", "unexpected descriptor layout");
                j += 1;
            }
            assert_eq!(lines[j], "},", "unexpected descriptor layout");
            let kind = match lines[j + 1].trim_end_matches(" {") {
                "Counter" => Some("counter".to_owned()),
                "Gauge" => Some("gauge".to_owned()),
                "Histogram" => Some("histogram".to_owned()),
                "Family" => None,
                other => panic!("metric {name}: unknown metric type {other}"),
            };
            families.insert(name, kind);
            i = j;
        }
        i += 1;
    }
    // Labelled families with a series already: the encoder's `# TYPE` line.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoding");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("a TYPE line");
            let entry = families
                .get_mut(name)
                .unwrap_or_else(|| panic!("{name} is encoded but was not found in the registry"));
            *entry = Some(kind.to_owned());
        }
    }
    families
}

/// Names in the first column of docs/metrics.md's tables (every backticked `pilotlight_…` there;
/// a cell may list several) → the type column's first word, with a counter's `_total` dropped so
/// the name is the family's.
fn documented(doc: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in doc.lines() {
        let Some(row) = line.strip_prefix('|') else {
            continue;
        };
        let mut cells = row.split('|');
        let first = cells.next().unwrap_or_default();
        let kind = cells
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        for (i, piece) in first.split('`').enumerate() {
            if i % 2 == 1 && piece.starts_with("pilotlight_") {
                let family = if kind == "counter" {
                    piece.strip_suffix("_total").unwrap_or_else(|| {
                        panic!("docs/metrics.md: counter {piece} without _total")
                    })
                } else {
                    piece
                };
                names.insert(family.to_owned(), kind.clone());
            }
        }
    }
    names
}

/// What differs between the registry and the reference.
fn problems(
    registered: &BTreeMap<String, Option<String>>,
    documented: &BTreeMap<String, String>,
) -> Vec<String> {
    let shown = |name: &str, kind: &str| {
        if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_owned()
        }
    };
    let mut problems = Vec::new();
    for (name, kind) in registered {
        match documented.get(name) {
            None => problems.push(format!(
                "metric {} is registered but missing from docs/metrics.md",
                shown(name, kind.as_deref().unwrap_or_default())
            )),
            Some(doc_kind) if kind.as_ref().is_some_and(|k| k != doc_kind) => {
                problems.push(format!(
                    "metric {name} is a {} but docs/metrics.md says {doc_kind}",
                    kind.as_deref().unwrap_or_default()
                ));
            }
            Some(_) => {}
        }
    }
    for (name, kind) in documented {
        if !registered.contains_key(name) {
            problems.push(format!(
                "docs/metrics.md lists {}, which the daemon does not register",
                shown(name, kind)
            ));
        }
    }
    problems
}

fn reference() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .expect("reading docs/metrics.md")
}

#[test]
fn every_registered_metric_is_documented_and_every_documented_one_registered() {
    let registered = registered();
    assert!(
        registered.len() > 40 && registered.contains_key("pilotlight_aws_calls"),
        "the registry's Debug output did not parse as expected: {registered:?}"
    );
    assert_eq!(
        registered["pilotlight_leader"].as_deref(),
        Some("gauge"),
        "an unlabelled metric's type comes from the Debug output"
    );
    let problems = problems(&registered, &documented(&reference()));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself: a row taken out, a row made up and a wrong type are each reported.
#[test]
fn the_check_reports_missing_extra_and_mistyped_metrics() {
    let registered = registered();
    let doc = reference()
        .lines()
        .filter(|l| !l.starts_with("| `pilotlight_leader` |"))
        .map(|l| {
            if l.starts_with("| `pilotlight_inventory_version` |") {
                l.replacen("| gauge |", "| histogram |", 1)
            } else {
                l.to_owned()
            }
        })
        .chain(["| `pilotlight_made_up_total` | counter | — | Nothing. |".to_owned()])
        .collect::<Vec<_>>()
        .join("\n");
    let problems = problems(&registered, &documented(&doc));
    assert_eq!(
        problems,
        [
            "metric pilotlight_inventory_version is a gauge but docs/metrics.md says histogram",
            "metric pilotlight_leader is registered but missing from docs/metrics.md",
            "docs/metrics.md lists pilotlight_made_up_total, which the daemon does not register",
        ]
    );
}
