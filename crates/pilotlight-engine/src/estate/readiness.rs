//! The readiness reconciler (SPEC R9, R10): one key, `dr`.
//!
//! Each cycle, from the DR side only: resolve the DR counterpart of every listener certificate
//! (an ISSUED DR certificate for the same domain, or `readiness.certificate_map`), find the
//! running always-on services, build the whole-estate plan with [`Planner`] and evaluate the
//! checks (`pilotlight_core::readiness`). The report is on the [`ReadinessBoard`]
//! (`GET /v1/readiness`); check results, the RTO estimate and the lower bound are metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use pilotlight_aws::acm::DrAcm;
use pilotlight_aws::ec2::DrEc2;
use pilotlight_core::readiness::{ReadinessInput, evaluate};
use pilotlight_core::scope::Scope;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::metrics::{CheckLabels, TierLabels};
use super::{EstateMetrics, PlanError, Planner, ReadinessBoard};
use crate::error::ReconcileError;
use crate::scheduler::{Action, Reconciled, Reconciler, backoff};

/// The reconciler's only key.
pub const KEY: &str = "dr";

/// Evaluates whether a restore could start now.
#[derive(Debug)]
pub struct ReadinessReconciler {
    planner: Planner,
    acm: DrAcm,
    ec2: DrEc2,
    board: ReadinessBoard,
    metrics: EstateMetrics,
}

impl ReadinessReconciler {
    /// A reconciler publishing to `board`.
    pub fn new(
        planner: Planner,
        acm: DrAcm,
        ec2: DrEc2,
        board: ReadinessBoard,
        metrics: EstateMetrics,
    ) -> ReadinessReconciler {
        ReadinessReconciler {
            planner,
            acm,
            ec2,
            board,
            metrics,
        }
    }
}

#[async_trait]
impl Reconciler for ReadinessReconciler {
    fn name(&self) -> &'static str {
        "readiness"
    }

    fn keys(&self) -> Vec<String> {
        vec![KEY.to_owned()]
    }

    async fn reconcile(
        &self,
        _key: &str,
        _cancel: &CancellationToken,
    ) -> Result<Reconciled, ReconcileError> {
        let config = self.planner.config();
        let cycle = Action::requeue(Duration::from_secs(config.readiness.cycle_secs));
        let inventory = match self.planner.inventory().await {
            Ok((_, inventory)) => Some(inventory),
            Err(PlanError::NoInventory) => None,
            Err(PlanError::Store(e)) => return Err(e.into()),
            Err(e) => {
                return Err(ReconcileError::Unexpected {
                    operation: "ReadInventory",
                    detail: e.to_string(),
                });
            }
        };

        // DR certificates by domain; a primary certificate maps to the DR one of its domain.
        if let Some(inv) = &inventory {
            let by_domain = self.acm.issued_by_domain().await?;
            let mut map = BTreeMap::new();
            for cert in &inv.certificates {
                if let Some(dr) = by_domain.get(&cert.domain_name.to_ascii_lowercase()) {
                    map.insert(cert.arn.clone(), dr.clone());
                }
            }
            // In the store too: a follower declaring a run plans with it.
            self.planner.record_certificates(&map).await?;
            self.board.set_certificates(map);
        }
        let running: BTreeSet<String> = if config.readiness.always_on.is_empty() {
            BTreeSet::new()
        } else {
            self.ec2
                .running_by_tag(&config.readiness.always_on_tag)
                .await?
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(service, _)| service)
                .collect()
        };

        let dr = self.planner.dr_state().await.map_err(|e| match e {
            PlanError::Store(e) => ReconcileError::Store(e),
            other => ReconcileError::Unexpected {
                operation: "DrState",
                detail: other.to_string(),
            },
        })?;
        let tenants: Vec<pilotlight_core::config::TenantConfig> = self
            .planner
            .tenants()
            .await
            .map_err(|e| match e {
                PlanError::Store(e) => ReconcileError::Store(e),
                other => ReconcileError::Unexpected {
                    operation: "ListTenants",
                    detail: other.to_string(),
                },
            })?
            .into_iter()
            .map(|t| pilotlight_core::config::TenantConfig {
                name: t.name,
                clusters: t.clusters,
            })
            .collect();
        let whole = Scope::default();
        let selection = match &inventory {
            Some(inv) => Some(
                pilotlight_core::scope::select(inv, &tenants, &whole).map_err(|e| {
                    ReconcileError::Unexpected {
                        operation: "SelectEstate",
                        detail: e.to_string(),
                    }
                })?,
            ),
            None => None,
        };
        let capacity = match (&inventory, &selection) {
            (Some(inv), Some(sel)) => Some(pilotlight_core::capacity::capacity_plan(
                inv,
                sel,
                &config.quotas,
            )),
            _ => None,
        };
        let report = evaluate(&ReadinessInput {
            inventory: inventory.as_deref(),
            selection: selection.as_ref(),
            dr: &dr,
            capacity: capacity.as_ref(),
            tiers: &config.tiers,
            always_on: &config.readiness.always_on,
            running_always_on: &running,
            now_ms: crate::now_ms(),
        });

        self.metrics.readiness_ready.set(i64::from(report.ready));
        for check in &report.checks {
            let labels = CheckLabels {
                check: check.name.as_str(),
            };
            self.metrics
                .readiness_check_ok
                .get_or_create(&labels)
                .set(i64::from(check.ok));
            self.metrics
                .readiness_failing
                .get_or_create(&labels)
                .set(i64::try_from(check.failing.len()).unwrap_or(i64::MAX));
        }
        if let Some(cap) = &capacity {
            self.metrics
                .capacity_shortfalls
                .set(i64::try_from(cap.shortfalls.len()).unwrap_or(i64::MAX));
        }
        if let (Some(inv), Some(sel)) = (&inventory, &selection) {
            let plan = pilotlight_core::plan::restore_plan(
                inv,
                sel,
                &dr,
                &config.restore,
                &config.throttle,
            );
            self.metrics.plan_rto_estimate.set(plan.schedule.total_secs);
            self.metrics
                .plan_lower_bound
                .set(plan.schedule.lower_bound.secs);
            for tier in &plan.schedule.tiers {
                self.metrics
                    .plan_tier_end
                    .get_or_create(&TierLabels {
                        tier: tier.tier.to_string(),
                    })
                    .set(tier.end_secs);
            }
            self.metrics
                .plan_problems
                .set(i64::try_from(plan.problems.len()).unwrap_or(i64::MAX));
        }
        let summary = json!({
            "ready": report.ready,
            "failing": report.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect::<Vec<_>>(),
        });
        self.board.set_report(report);
        Ok(Reconciled {
            action: cycle,
            report: summary,
        })
    }

    fn error_policy(&self, _key: &str, error: &ReconcileError, failures: u32) -> Action {
        let config = self.planner.config();
        backoff(
            error,
            failures,
            Duration::from_secs(config.readiness.cycle_secs.clamp(1, 30)),
            Duration::from_secs(config.reconcile.max_backoff_secs),
        )
    }
}
