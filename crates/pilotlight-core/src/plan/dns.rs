//! The DNS cutover: which records change and how they are batched per zone (SPEC D7).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{DnsBatch, DnsPlan, DrRef, ProblemKind, Problems, RecordChange, ZoneChanges};
use crate::config::RestoreConfig;
use crate::inventory::{HostedZone, Inventory, Record};
use crate::scope::{DrState, Selection, normalize_dns};

/// Characters of `Value` elements AWS accepts in one `ChangeResourceRecordSets` (an UPSERT's
/// counted twice).
pub(super) const MAX_VALUE_CHARS: u32 = 32_000;

/// Route 53 change tokens of one UPSERT.
const UPSERT_TOKENS: u32 = 2;

/// The records of the selection pointing at something it restores, batched per zone.
pub(super) fn plan(
    inventory: &Inventory,
    selection: &Selection<'_>,
    dr: &DrState,
    restore: &RestoreConfig,
    problems: &mut Problems,
) -> DnsPlan {
    let targets = targets(selection);
    let name_growth = inventory
        .dr_region
        .len()
        .saturating_sub(inventory.primary_region.len());
    let max_units = restore.route53_max_changes_per_batch.max(1);

    let mut zones: BTreeMap<String, ZoneChanges> = BTreeMap::new();
    let mut records = 0u64;
    for (zone, record) in &selection.records {
        let points_at = points_at(record, &targets);
        if points_at.is_empty() {
            continue;
        }
        records += 1;
        let change = RecordChange {
            name: record.name.clone(),
            record_type: record.record_type.clone(),
            set_identifier: record.set_identifier.clone(),
            points_at,
        };
        let units = UPSERT_TOKENS.saturating_mul(resource_records(record));
        let chars = UPSERT_TOKENS.saturating_mul(value_chars(record, name_growth));

        let z = zones.entry(zone.id.clone()).or_insert_with(|| ZoneChanges {
            zone_id: zone.id.clone(),
            zone_name: zone.name.clone(),
            private: zone.private,
            associate_vpc: if zone.private {
                associate_vpc(zone, inventory, dr, problems)
            } else {
                None
            },
            batches: Vec::new(),
        });
        let fits = z.batches.last().is_some_and(|b| {
            b.resource_record_units.saturating_add(units) <= max_units
                && b.value_chars.saturating_add(chars) <= MAX_VALUE_CHARS
        });
        if !fits {
            z.batches.push(DnsBatch {
                records: Vec::new(),
                change_tokens: 0,
                resource_record_units: 0,
                value_chars: 0,
            });
        }
        if let Some(batch) = z.batches.last_mut() {
            batch.records.push(change);
            batch.change_tokens = batch.change_tokens.saturating_add(UPSERT_TOKENS);
            batch.resource_record_units = batch.resource_record_units.saturating_add(units);
            batch.value_chars = batch.value_chars.saturating_add(chars);
        }
    }
    let zones = zones.into_values().collect();
    DnsPlan { records, zones }
}

/// Normalised instance IPs, load balancer DNS names, DB endpoints and Aurora cluster (writer and
/// reader) endpoints → what they belong to.
fn targets(selection: &Selection<'_>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |key: &str, id: &str| {
        out.entry(normalize_dns(key))
            .or_default()
            .insert(id.to_owned());
    };
    for i in &selection.instances {
        for ip in i.private_ip.iter().chain(&i.public_ip) {
            add(ip, &i.id);
        }
    }
    for lb in &selection.classic_load_balancers {
        add(&lb.dns_name, &lb.name);
    }
    for lb in &selection.load_balancers {
        add(&lb.dns_name, &lb.arn);
    }
    for db in &selection.db_instances {
        if let Some(endpoint) = &db.endpoint_address {
            add(endpoint, &db.id);
        }
    }
    for cluster in &selection.db_clusters {
        for endpoint in cluster.endpoint.iter().chain(&cluster.reader_endpoint) {
            add(endpoint, &cluster.id);
        }
    }
    out
}

fn points_at(record: &Record, targets: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let names = record
        .values
        .iter()
        .map(String::as_str)
        .chain(record.alias.iter().map(|a| a.dns_name.as_str()));
    let mut ids = BTreeSet::new();
    for name in names {
        if let Some(found) = targets.get(&normalize_dns(name)) {
            ids.extend(found.iter().cloned());
        }
    }
    ids.into_iter().collect()
}

/// `ResourceRecord` elements of the record: its values, or one for an alias.
fn resource_records(record: &Record) -> u32 {
    if record.alias.is_some() {
        1
    } else {
        u32::try_from(record.values.len().max(1)).unwrap_or(u32::MAX)
    }
}

/// Estimated characters of the DR values (see [`DnsBatch::value_chars`]).
fn value_chars(record: &Record, name_growth: usize) -> u32 {
    let total: usize = record
        .values
        .iter()
        .map(|v| match v.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => v.len().max(15),
            Ok(IpAddr::V6(_)) => v.len().max(39),
            Err(_) => v.len() + name_growth,
        })
        .sum();
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// The DR VPC for a private zone: its first VPC in the primary region (else its first), mapped.
fn associate_vpc(
    zone: &HostedZone,
    inventory: &Inventory,
    dr: &DrState,
    problems: &mut Problems,
) -> Option<DrRef> {
    let (_, vpc) = zone
        .vpcs
        .iter()
        .find(|(region, _)| *region == inventory.primary_region)
        .or_else(|| zone.vpcs.first())?;
    Some(problems.mapped(dr, ProblemKind::VpcNotMapped, &zone.id, vpc, "VPC"))
}
