//! RDS in two faces, like [`crate::ec2`]: [`PrimaryRds`] can only describe; [`DrRds`] adds the
//! snapshot copies and the deletion of owned copies. Every call runs through
//! [`AwsCtx::call`](crate::AwsCtx::call).

use aws_sdk_rds::types::Tag;
use pilotlight_core::aws_limits::{CallShape, Service};

use crate::call::AwsCtx;
use crate::error::AwsError;
use crate::ops::{handle_ctor, sdk_ops};
pub use crate::tags::Owned;

/// The describe calls both faces share: the only calls the primary face has.
macro_rules! rds_describe_ops {
    () => {
        sdk_ops! {
            aws_sdk_rds, Service::Rds;
            describe_db_instances => describe_db_instances::DescribeDBInstancesFluentBuilder -> DescribeDbInstancesOutput, "DescribeDBInstances";
            describe_db_clusters => describe_db_clusters::DescribeDBClustersFluentBuilder -> DescribeDbClustersOutput, "DescribeDBClusters";
            describe_db_snapshots => describe_db_snapshots::DescribeDBSnapshotsFluentBuilder -> DescribeDbSnapshotsOutput, "DescribeDBSnapshots";
            describe_db_cluster_snapshots => describe_db_cluster_snapshots::DescribeDBClusterSnapshotsFluentBuilder -> DescribeDbClusterSnapshotsOutput, "DescribeDBClusterSnapshots";
        }
    };
}

/// Read-only RDS in the primary region.
#[derive(Debug, Clone)]
pub struct PrimaryRds {
    client: aws_sdk_rds::Client,
    region: String,
    ctx: AwsCtx,
}

/// Read-write RDS in the DR region.
#[derive(Debug, Clone)]
pub struct DrRds {
    client: aws_sdk_rds::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(PrimaryRds, aws_sdk_rds);

impl PrimaryRds {
    rds_describe_ops!();
}

handle_ctor!(DrRds, aws_sdk_rds);

impl DrRds {
    rds_describe_ops!();

    sdk_ops! {
        aws_sdk_rds, Service::Rds;
        copy_db_snapshot => copy_db_snapshot::CopyDBSnapshotFluentBuilder -> CopyDbSnapshotOutput, "CopyDBSnapshot";
        copy_db_cluster_snapshot => copy_db_cluster_snapshot::CopyDBClusterSnapshotFluentBuilder -> CopyDbClusterSnapshotOutput, "CopyDBClusterSnapshot";
    }

    /// Deletes a DB snapshot pilotlight owns (a DR copy past retention).
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_db_snapshot(&self, snapshot: &Owned) -> Result<(), AwsError> {
        let request = self
            .client
            .delete_db_snapshot()
            .db_snapshot_identifier(snapshot.id());
        self.ctx
            .call(
                Service::Rds,
                &self.region,
                "DeleteDBSnapshot",
                CallShape::default(),
                || request.send(),
            )
            .await
            .map(|_| ())
    }

    /// Deletes a DB cluster snapshot pilotlight owns.
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_db_cluster_snapshot(&self, snapshot: &Owned) -> Result<(), AwsError> {
        let request = self
            .client
            .delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(snapshot.id());
        self.ctx
            .call(
                Service::Rds,
                &self.region,
                "DeleteDBClusterSnapshot",
                CallShape::default(),
                || request.send(),
            )
            .await
            .map(|_| ())
    }
}

/// The id as [`Owned`] if and only if its RDS `tags` mark it as pilotlight's.
pub fn owned(id: &str, tags: &[Tag]) -> Option<Owned> {
    Owned::from_pairs(
        id,
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}
