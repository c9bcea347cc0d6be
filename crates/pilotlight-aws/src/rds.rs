//! RDS in two faces, like [`crate::ec2`]: [`PrimaryRds`] can only describe (and presign a copy
//! request for the DR region to send, which mutates nothing); [`DrRds`] adds the snapshot
//! copies, the restores (DB instances, Aurora clusters and their member instances, DB subnet
//! groups) and the deletion of owned copies. Every call runs through
//! [`AwsCtx::call`](crate::AwsCtx::call).

use aws_sdk_rds::types::Tag;
use pilotlight_core::aws_limits::{CallShape, Service};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::call::AwsCtx;
use crate::error::{AwsError, ErrorKind};
use crate::ops::{handle_ctor, sdk_ops};
use crate::presign::CopyPresign;
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
            describe_db_subnet_groups => describe_db_subnet_groups::DescribeDBSubnetGroupsFluentBuilder -> DescribeDbSubnetGroupsOutput, "DescribeDBSubnetGroups";
        }
    };
}

/// Read-only RDS in the primary region.
#[derive(Debug, Clone)]
pub struct PrimaryRds {
    client: aws_sdk_rds::Client,
    region: String,
    ctx: AwsCtx,
    /// The SDK configuration's credentials, for [`PrimaryRds::presign_copy`].
    credentials: Option<SharedCredentialsProvider>,
}

/// Read-write RDS in the DR region.
#[derive(Debug, Clone)]
pub struct DrRds {
    client: aws_sdk_rds::Client,
    region: String,
    ctx: AwsCtx,
}

impl PrimaryRds {
    pub fn new(config: &aws_types::SdkConfig, ctx: AwsCtx) -> PrimaryRds {
        PrimaryRds {
            client: aws_sdk_rds::Client::new(config),
            region: config
                .region()
                .map(|r| r.as_ref().to_owned())
                .unwrap_or_default(),
            ctx,
            credentials: config.credentials_provider(),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    rds_describe_ops!();

    /// The `PreSignedUrl` for a copy of a snapshot of this (source) region into another: see
    /// [`crate::presign`]. Signed now, with this handle's credentials, for this region.
    ///
    /// # Errors
    /// [`ErrorKind::Transient`] if no credentials can be had now, [`ErrorKind::Fatal`] if the
    /// request cannot be signed.
    pub async fn presign_copy(&self, copy: &CopyPresign<'_>) -> Result<String, AwsError> {
        let operation = copy.action.action();
        let fail = |kind, source: Box<dyn std::error::Error + Send + Sync>| AwsError {
            service: "rds",
            operation,
            region: self.region.clone(),
            kind,
            code: String::new(),
            message: Some("presigning the source-region copy request failed".into()),
            source,
        };
        let provider = self.credentials.as_ref().ok_or_else(|| {
            fail(
                ErrorKind::Fatal,
                "no credentials provider configured".into(),
            )
        })?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| fail(ErrorKind::Transient, Box::new(e)))?;
        let copy = CopyPresign {
            source_region: &self.region,
            ..*copy
        };
        crate::presign::presign_copy(&copy, credentials, std::time::SystemTime::now())
            .map_err(|e| fail(ErrorKind::Fatal, Box::new(e)))
    }
}

handle_ctor!(DrRds, aws_sdk_rds, Rds);

impl DrRds {
    rds_describe_ops!();

    sdk_ops! {
        once aws_sdk_rds, Service::Rds;
        /// Copies a DB snapshot into this region. Sent **without SDK retries**: a lost response
        /// followed by a retry would answer `DBSnapshotAlreadyExists` for the copy the first
        /// attempt made; callers use a deterministic target identifier and treat that answer as
        /// success.
        copy_db_snapshot => copy_db_snapshot::CopyDBSnapshotFluentBuilder -> CopyDbSnapshotOutput, "CopyDBSnapshot";
        /// Copies a DB cluster snapshot into this region, without SDK retries (see
        /// [`DrRds::copy_db_snapshot`]).
        copy_db_cluster_snapshot => copy_db_cluster_snapshot::CopyDBClusterSnapshotFluentBuilder -> CopyDbClusterSnapshotOutput, "CopyDBClusterSnapshot";
        /// Restore (D5): an Aurora cluster from its newest DR cluster snapshot, without SDK
        /// retries: the caller looks the (deterministic) cluster identifier up before sending
        /// again, so a lost answer never becomes a second request (moto, unlike AWS, would not
        /// answer `DBClusterAlreadyExistsFault` but replace the cluster).
        restore_db_cluster_from_snapshot => restore_db_cluster_from_snapshot::RestoreDBClusterFromSnapshotFluentBuilder -> RestoreDbClusterFromSnapshotOutput, "RestoreDBClusterFromSnapshot";
    }

    sdk_ops! {
        aws_sdk_rds, Service::Rds;
        /// Restore (D5): a DB instance from its newest DR snapshot. The target identifier is
        /// deterministic, so a retry or a resumed run answers `DBInstanceAlreadyExists` for the
        /// instance the first attempt made, which the caller adopts.
        restore_db_instance_from_db_snapshot => restore_db_instance_from_db_snapshot::RestoreDBInstanceFromDBSnapshotFluentBuilder -> RestoreDbInstanceFromDbSnapshotOutput, "RestoreDBInstanceFromDBSnapshot";
        /// Restore (D5): a member instance of a restored Aurora cluster.
        create_db_instance => create_db_instance::CreateDBInstanceFluentBuilder -> CreateDbInstanceOutput, "CreateDBInstance";
        /// Restore (D5): the DR subnet group restored DB instances go into.
        create_db_subnet_group => create_db_subnet_group::CreateDBSubnetGroupFluentBuilder -> CreateDbSubnetGroupOutput, "CreateDBSubnetGroup";
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
            .owned_call(Service::Rds, &self.region, "DeleteDBSnapshot", || {
                request.send()
            })
            .await
    }

    /// Deletes a DB instance pilotlight owns, with no final snapshot and without its
    /// automated backups (a drill's teardown, D12: the drill's data is a copy of the DR copy).
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_db_instance(&self, instance: &Owned) -> Result<(), AwsError> {
        let request = self
            .client
            .delete_db_instance()
            .db_instance_identifier(instance.id())
            .skip_final_snapshot(true)
            .delete_automated_backups(true);
        self.ctx
            .owned_call(Service::Rds, &self.region, "DeleteDBInstance", || {
                request.send()
            })
            .await
    }

    /// Deletes an Aurora cluster pilotlight owns, with no final snapshot (a drill's teardown;
    /// its member instances are deleted first).
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_db_cluster(&self, cluster: &Owned) -> Result<(), AwsError> {
        let request = self
            .client
            .delete_db_cluster()
            .db_cluster_identifier(cluster.id())
            .skip_final_snapshot(true);
        self.ctx
            .owned_call(Service::Rds, &self.region, "DeleteDBCluster", || {
                request.send()
            })
            .await
    }

    /// Deletes a DB subnet group pilotlight owns (a drill's teardown, once no instance uses
    /// it).
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_db_subnet_group(&self, group: &Owned) -> Result<(), AwsError> {
        let request = self
            .client
            .delete_db_subnet_group()
            .db_subnet_group_name(group.id());
        self.ctx
            .owned_call(Service::Rds, &self.region, "DeleteDBSubnetGroup", || {
                request.send()
            })
            .await
    }

    /// Lists the tags of an RDS resource by ARN (what the drill teardown checks before a
    /// subnet group, whose describe answer carries no tags, is deleted).
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn list_tags_for_resource(&self, arn: &str) -> Result<Vec<Tag>, AwsError> {
        let request = self.client.list_tags_for_resource().resource_name(arn);
        self.ctx
            .call(
                Service::Rds,
                &self.region,
                "ListTagsForResource",
                CallShape::default(),
                || request.send(),
            )
            .await
            .map(|o| o.tag_list().to_vec())
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
            .owned_call(
                Service::Rds,
                &self.region,
                "DeleteDBClusterSnapshot",
                || request.send(),
            )
            .await
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
