//! Route 53: hosted zones and their records, and the RDS endpoints `CNAME`s point at.
//!
//! Each record spec is resolved against what was seeded before it (instance IPs, load
//! balancer DNS names and zones, database endpoints) and written with `UPSERT` — moto accepts a
//! repeated `CREATE` and keeps both copies — in batches of at most
//! [`MAX_CHANGES_PER_BATCH`] changes and [`MAX_VALUE_CHARS_PER_BATCH`] value characters (an
//! `UPSERT`'s values count twice), one batch at a time per zone.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, HostedZoneConfig, ResourceRecord,
    ResourceRecordSet, RrType, Vpc, VpcRegion,
};

use super::{
    MAX_CHANGES_PER_BATCH, MAX_VALUE_CHARS_PER_BATCH, RecordSpec, SeededRecord, SeededZone,
    ZoneSpec, built,
};

/// Splits changes (each with the character count of its values) into batches of at most
/// [`MAX_CHANGES_PER_BATCH`] changes and [`MAX_VALUE_CHARS_PER_BATCH`] characters, counting an
/// `UPSERT`'s characters twice; order is kept.
pub(super) fn batches<T>(changes: Vec<(T, usize)>) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut chars = 0;
    for (change, value_chars) in changes {
        let cost = value_chars * 2;
        let full = out.last().is_none_or(|b| {
            b.len() >= MAX_CHANGES_PER_BATCH || chars + cost > MAX_VALUE_CHARS_PER_BATCH
        });
        if full {
            out.push(Vec::new());
            chars = 0;
        }
        chars += cost;
        if let Some(batch) = out.last_mut() {
            batch.push(change);
        }
    }
    out
}
use crate::error::LabError;
use crate::seed::{EstateSpec, SeededEstate, call, missing};

/// The zone's domain without a trailing dot.
pub(super) fn zone_domain(zone: &str) -> &str {
    zone.trim_end_matches('.')
}

/// A record name made absolute: `@` (or empty) is the apex, a trailing dot means absolute
/// already, anything else is relative to the zone.
pub(super) fn fqdn(name: &str, zone: &str) -> String {
    let zone = zone_domain(zone);
    match name {
        "" | "@" => format!("{zone}."),
        n if n.ends_with('.') => n.to_owned(),
        n => format!("{n}.{zone}."),
    }
}

/// A TXT value in DNS quotes (kept as it is when already quoted).
pub(super) fn quote_txt(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// DB instance and Aurora cluster endpoint addresses, for the spec's databases.
pub(super) async fn db_endpoints(
    rds: &aws_sdk_rds::Client,
    region: &str,
    spec: &EstateSpec,
) -> Result<BTreeMap<String, String>, LabError> {
    let mut out = BTreeMap::new();
    if !spec.db_instances.is_empty() {
        let mut marker: Option<String> = None;
        loop {
            let page = call("DescribeDBInstances", "*", region, || {
                rds.describe_db_instances()
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
            for db in page.db_instances() {
                if let (Some(id), Some(address)) = (
                    db.db_instance_identifier(),
                    db.endpoint().and_then(|e| e.address()),
                ) {
                    out.insert(id.to_owned(), address.to_owned());
                }
            }
            marker = page.marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
    }
    if !spec.db_clusters.is_empty() {
        let mut marker: Option<String> = None;
        loop {
            let page = call("DescribeDBClusters", "*", region, || {
                rds.describe_db_clusters().set_marker(marker.clone()).send()
            })
            .await?;
            for c in page.db_clusters() {
                if let (Some(id), Some(address)) = (c.db_cluster_identifier(), c.endpoint()) {
                    out.insert(id.to_owned(), address.to_owned());
                }
            }
            marker = page.marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
    }
    out.retain(|id, _| {
        spec.db_instances.iter().any(|d| &d.name == id)
            || spec.db_clusters.iter().any(|c| &c.name == id)
    });
    Ok(out)
}

/// One record spec resolved against the seeded estate.
fn resolve(
    record: &RecordSpec,
    zone: &ZoneSpec,
    estate: &SeededEstate,
) -> Result<(SeededRecord, ResourceRecordSet), LabError> {
    let name = fqdn(record.name(), &zone.name);
    let record_type = record.record_type();
    let (values, ttl, alias) = match record {
        RecordSpec::Instance {
            fleet, index, ttl, ..
        } => {
            let instance = estate
                .fleets
                .get(fleet)
                .and_then(|f| f.get(usize::try_from(*index).ok()?.checked_sub(1)?))
                .ok_or_else(|| missing("RunInstances", &format!("{fleet} #{index}"), "Instance"))?;
            (vec![instance.private_ip.clone()], Some(*ttl), None)
        }
        RecordSpec::A { values, ttl, .. } => (values.clone(), Some(*ttl), None),
        RecordSpec::LbCname {
            load_balancer, ttl, ..
        } => {
            let lb = estate
                .load_balancers
                .get(load_balancer)
                .ok_or_else(|| missing("CreateLoadBalancer", load_balancer, "DNSName"))?;
            (vec![lb.dns_name.clone()], Some(*ttl), None)
        }
        RecordSpec::DbCname { db, ttl, .. } => {
            let endpoint = estate
                .db_endpoints
                .get(db)
                .ok_or_else(|| missing("DescribeDBInstances", db, "Endpoint"))?;
            (vec![endpoint.clone()], Some(*ttl), None)
        }
        RecordSpec::LbAlias {
            load_balancer,
            evaluate_target_health,
            ..
        } => {
            let lb = estate
                .load_balancers
                .get(load_balancer)
                .ok_or_else(|| missing("CreateLoadBalancer", load_balancer, "DNSName"))?;
            let target = built(
                "ChangeResourceRecordSets",
                &name,
                &estate.region,
                AliasTarget::builder()
                    .hosted_zone_id(&lb.canonical_hosted_zone_id)
                    .dns_name(&lb.dns_name)
                    .evaluate_target_health(*evaluate_target_health)
                    .build(),
            )?;
            (vec![lb.dns_name.clone()], None, Some(target))
        }
        RecordSpec::Txt { values, ttl, .. } => (
            values.iter().map(|v| quote_txt(v)).collect(),
            Some(*ttl),
            None,
        ),
    };
    let mut set = ResourceRecordSet::builder()
        .name(&name)
        .r#type(RrType::from(record_type));
    if let Some(target) = alias.clone() {
        set = set.alias_target(target);
    } else {
        for v in &values {
            set = set.resource_records(built(
                "ChangeResourceRecordSets",
                &name,
                &estate.region,
                ResourceRecord::builder().value(v).build(),
            )?);
        }
        set = set.set_ttl(ttl.map(i64::from));
    }
    let set = built(
        "ChangeResourceRecordSets",
        &name,
        &estate.region,
        set.build(),
    )?;
    Ok((
        SeededRecord {
            name,
            record_type: record_type.to_owned(),
            alias: alias.is_some(),
            values,
        },
        set,
    ))
}

/// Creates every hosted zone of `spec` and writes its records.
pub(super) async fn seed_zones(
    route53: &aws_sdk_route53::Client,
    region: &str,
    spec: &EstateSpec,
    estate: &SeededEstate,
) -> Result<BTreeMap<String, SeededZone>, LabError> {
    let mut out = BTreeMap::new();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (n, zone) in spec.zones.iter().enumerate() {
        let domain = zone_domain(&zone.name);
        let vpc = match (&zone.vpc, zone.private) {
            (Some(v), true) => Some(
                Vpc::builder()
                    .vpc_region(VpcRegion::from(region))
                    .vpc_id(
                        estate
                            .vpc_id(v)
                            .ok_or_else(|| missing("CreateVpc", v, "VpcId"))?,
                    )
                    .build(),
            ),
            _ => None,
        };
        let config = HostedZoneConfig::builder()
            .private_zone(zone.private)
            .comment(format!("pilotlight lab zone {domain}"))
            .build();
        // Unique per call: Route 53 refuses a CallerReference used before.
        let reference = format!("pilotlight-lab-{nanos}-{n}");
        let created = call("CreateHostedZone", domain, region, || {
            route53
                .create_hosted_zone()
                .name(domain)
                .caller_reference(&reference)
                .hosted_zone_config(config.clone())
                .set_vpc(vpc.clone())
                .send()
        })
        .await?;
        let id = created
            .hosted_zone()
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| missing("CreateHostedZone", domain, "HostedZone.Id"))?;
        let mut records = Vec::with_capacity(zone.records.len());
        let mut changes = Vec::with_capacity(zone.records.len());
        for r in &zone.records {
            let (seeded, set) = resolve(r, zone, estate)?;
            let change = built(
                "ChangeResourceRecordSets",
                &seeded.name,
                region,
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(set)
                    .build(),
            )?;
            // Alias targets are not values.
            let value_chars = if seeded.alias {
                0
            } else {
                seeded.values.iter().map(String::len).sum()
            };
            changes.push((change, value_chars));
            records.push(seeded);
        }
        for batch in batches(changes) {
            let batch = built(
                "ChangeResourceRecordSets",
                domain,
                region,
                ChangeBatch::builder().set_changes(Some(batch)).build(),
            )?;
            call("ChangeResourceRecordSets", domain, region, || {
                route53
                    .change_resource_record_sets()
                    .hosted_zone_id(&id)
                    .change_batch(batch.clone())
                    .send()
            })
            .await?;
        }
        out.insert(
            zone.name.clone(),
            SeededZone {
                id,
                name: format!("{domain}."),
                private: zone.private,
                records,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_to_route53_limits() {
        let sizes = |b: &[Vec<usize>]| b.iter().map(Vec::len).collect::<Vec<_>>();
        // By count: 1,201 short changes.
        let short: Vec<(usize, usize)> = (0..1201).map(|i| (i, 10)).collect();
        let b = batches(short);
        assert_eq!(sizes(&b), [500, 500, 201]);
        assert_eq!(b.concat(), (0..1201).collect::<Vec<_>>(), "order kept");
        // By characters: 200-character values count 400 each, 80 per batch.
        let long: Vec<(usize, usize)> = (0..200).map(|i| (i, 200)).collect();
        assert_eq!(sizes(&batches(long)), [80, 80, 40]);
        // Aliases (no values) only count.
        let aliases: Vec<(usize, usize)> = (0..3).map(|i| (i, 0)).collect();
        assert_eq!(sizes(&batches(aliases)), [3]);
        assert!(batches(Vec::<(usize, usize)>::new()).is_empty());
    }

    #[test]
    fn record_names_and_txt_values() {
        assert_eq!(fqdn("www", "example.com"), "www.example.com.");
        assert_eq!(fqdn("www", "example.com."), "www.example.com.");
        assert_eq!(fqdn("@", "example.com"), "example.com.");
        assert_eq!(fqdn("", "example.com"), "example.com.");
        assert_eq!(fqdn("other.org.", "example.com"), "other.org.");
        assert_eq!(quote_txt("v=spf1 -all"), "\"v=spf1 -all\"");
        assert_eq!(quote_txt("\"kept\""), "\"kept\"");
        assert_eq!(quote_txt("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
