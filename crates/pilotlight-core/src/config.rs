//! pilotlight's configuration (SPEC P5): the typed [`Config`], its defaults, the commented
//! default file ([`Config::default_toml`]) and [`Config::from_sources`], which layers
//! defaults < file < environment < command line and reports every problem at once as
//! [`ConfigErrors`] (the binary exits 64 on them). Pure: the binary reads the file and the
//! environment and passes text and a map in. Secrets are never held here, only the paths of the
//! files that hold them; `Debug` and `Serialize` redact the password of `store.url`.
//! The doc comment of every field is the text of its row in `docs/config.md`.

mod hooks;
mod load;
#[cfg(test)]
mod tests;
mod validate;

pub use hooks::{HookAfter, HookConfig, HookFailure, HookMode, HookStage};

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::redact_url;

/// The whole daemon configuration. Obtain a validated one with [`Config::from_sources`]; the
/// `Deserialize` impls exist for that loader and do not validate on their own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Primary and DR regions and the availability-zone map.
    pub regions: RegionsConfig,
    /// How the AWS SDK clients are built (endpoint, credentials, retries, timeouts).
    pub aws: AwsConfig,
    /// The state store (SQLite or PostgreSQL).
    pub store: StoreConfig,
    /// The admin API and the metrics listener.
    pub api: ApiConfig,
    /// The pilot-light reconcile loop.
    pub reconcile: ReconcileConfig,
    /// The network mirror (SPEC R1).
    pub network: NetworkConfig,
    /// Cross-region copies of EBS snapshots, RDS snapshots and AMIs (SPEC R2–R4).
    pub copy: CopyConfig,
    /// Recovery tiers and their RPO targets.
    pub tiers: TiersConfig,
    /// The inventory of the primary estate written to the DR bucket (SPEC R5).
    pub inventory: InventoryConfig,
    /// S3 cross-region replication watch (SPEC R6).
    pub s3: S3WatchConfig,
    /// Tenants and the clusters each needs restored (SPEC R8). `[[tenants]]` entries.
    pub tenants: Vec<TenantConfig>,
    /// The DR region's quotas the capacity plan is checked against (SPEC R8).
    pub quotas: QuotasConfig,
    /// Readiness checks (SPEC R10).
    pub readiness: ReadinessConfig,
    /// How a restore is planned and run (SPEC D2, D3).
    pub restore: RestoreConfig,
    /// Drills: scheduled test restores that tear themselves down (SPEC D12).
    pub drill: DrillConfig,
    /// Overrides of the AWS API token buckets (SPEC D8).
    pub throttle: ThrottleConfig,
    /// Logging.
    pub log: LogConfig,
    /// Process-level settings: data directory, shutdown and leader lease.
    pub daemon: DaemonConfig,
}

impl Config {
    /// Builds the configuration from, in increasing precedence: the defaults, the TOML text of
    /// the config `file`, the process environment `env` and the command-line overrides `cli`.
    ///
    /// Only environment variables named `PILOTLIGHT_<SECTION>__<KEY>` (a double underscore
    /// between path segments, case-insensitive, e.g. `PILOTLIGHT_API__METRICS_LISTEN`) are
    /// overrides; `PILOTLIGHT_*` names without a double underscore are ignored, and every other
    /// name too. `cli` holds `path=value` overrides (`api.listen=0.0.0.0:8080`; the path is a
    /// TOML dotted key). Environment and command-line values are read as TOML values when they
    /// parse as one (numbers, booleans, arrays, inline tables, quoted strings), else as plain
    /// strings; a value that parses as a non-string where a string is expected is taken as the
    /// string it was written as. Tables merge key by key across layers; anything else replaces.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] with every problem found: a TOML syntax error in the file alone, or else
    /// all unknown keys, all values of the wrong type and all failed validation rules, each
    /// with its dotted path and the source of the offending value.
    pub fn from_sources(
        file: Option<&str>,
        env: &BTreeMap<String, String>,
        cli: &[String],
    ) -> Result<Config, ConfigErrors> {
        load::load(file, env, cli)
    }

    /// The complete, commented default configuration (what `pilotlight config default`
    /// prints): every section and key with its default value and a one-line explanation.
    /// It parses to exactly `Config::default()`.
    pub fn default_toml() -> &'static str {
        include_str!("config/default.toml")
    }

    /// The store URL to connect to: `store.url` if set, else the embedded SQLite database
    /// `sqlite://<daemon.data_dir>/pilotlight.db`. When `store.url_file` is set the binary reads
    /// the URL from that file instead and this value is not used.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.daemon.data_dir.join("pilotlight.db").display()
            ),
        }
    }
}

/// `[regions]`: where the estate lives and where its pilot light burns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegionsConfig {
    /// The primary region. pilotlight only ever reads from it.
    pub primary: String,
    /// The DR ("pilot light") region, where pilotlight runs, copies to and restores into.
    /// Must differ from `primary`.
    pub dr: String,
    /// Primary availability zone → DR availability zone (`"us-east-1a" = "us-west-2b"`).
    /// Keys must be zones of the primary region and values zones of the DR region. Zones not
    /// listed (all of them when empty) are mapped by AZ letter order at run time.
    pub az_map: BTreeMap<String, String>,
}

impl Default for RegionsConfig {
    fn default() -> Self {
        Self {
            primary: "us-east-1".to_owned(),
            dr: "us-west-2".to_owned(),
            az_map: BTreeMap::new(),
        }
    }
}

/// The AWS SDK's retry mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryMode {
    /// Exponential backoff with jitter and a retry quota.
    #[default]
    Standard,
    /// `standard` plus client-side rate limiting when AWS throttles.
    Adaptive,
}

/// `[aws]`: how the SDK clients for both regions are built.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// Endpoint for every AWS call instead of AWS's own (the lab, or VPC interface
    /// endpoints). Must start with `http://` or `https://`. Unset: AWS's regional endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Address S3 buckets by path (`http://host/bucket`) instead of by virtual host; the lab
    /// needs it.
    pub s3_force_path_style: bool,
    /// File holding a static access key id. Set both this and `secret_access_key_file`, or
    /// neither (then the SDK's default credential chain is used: environment, profile, IMDS,
    /// web identity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id_file: Option<PathBuf>,
    /// File holding the secret access key that goes with `access_key_id_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    /// The SDK's retry mode: `"standard"` or `"adaptive"`.
    pub retry_mode: RetryMode,
    /// Attempts per AWS call, the first included (1 to 10).
    pub max_attempts: u32,
    /// Timeout for establishing a connection to AWS, in seconds (at least 1).
    pub connect_timeout_secs: u64,
    /// Timeout for one AWS operation including its retries, in seconds (at least 1).
    pub operation_timeout_secs: u64,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            s3_force_path_style: false,
            access_key_id_file: None,
            secret_access_key_file: None,
            retry_mode: RetryMode::Standard,
            max_attempts: 3,
            connect_timeout_secs: 5,
            operation_timeout_secs: 60,
        }
    }
}

/// `[store]`: the state store. `Debug` and `Serialize` redact the password in `url`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Store URL: `sqlite:…`, `postgres:…` or `postgresql:…`. Unset (and no `url_file`): the
    /// embedded SQLite database `sqlite://<daemon.data_dir>/pilotlight.db`. A URL with a
    /// password belongs in `url_file` instead.
    #[serde(
        serialize_with = "serialize_redacted_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// File holding the store URL (a secret when it carries a password). Mutually exclusive
    /// with `url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Maximum number of open connections in the pool (at least 1).
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            max_connections: 10,
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("url_file", &self.url_file)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

fn serialize_redacted_url<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&redact_url(url)),
        None => s.serialize_none(),
    }
}

/// What an admin API token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only calls: status, readiness, plans, runs.
    Viewer,
    /// Viewer plus declaring restores and drills.
    Operator,
    /// Operator plus approving another principal's restore (two-person rule).
    Approver,
}

impl Role {
    /// The role's name as written in the config (`"viewer"`, `"operator"`, `"approver"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
        }
    }
}

/// One `[[api.tokens]]` entry: a named bearer token whose value lives in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Principal name, recorded in the audit log. Unique among tokens.
    pub name: String,
    /// `"viewer"`, `"operator"` or `"approver"`.
    pub role: Role,
    /// File holding the bearer token.
    pub token_file: PathBuf,
}

/// `[api]`: the admin API and the Prometheus listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the admin API (`ip:port`). Loopback by default.
    pub listen: SocketAddr,
    /// Address of the Prometheus `/metrics` listener (`ip:port`); must differ from `listen`
    /// (unless both use port 0).
    pub metrics_listen: SocketAddr,
    /// Largest accepted request body, in bytes (at least 1).
    pub max_body_bytes: u64,
    /// Time limit for one API request, in seconds (at least 1).
    pub request_timeout_secs: u64,
    /// Bearer tokens (`[[api.tokens]]` with `name`, `role`, `token_file`). Empty: no token
    /// can authenticate, so only unauthenticated endpoints (health, metrics) answer.
    pub tokens: Vec<ApiToken>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Self {
            listen: SocketAddr::new(loopback, 8080),
            metrics_listen: SocketAddr::new(loopback, 9090),
            max_body_bytes: 65_536,
            request_timeout_secs: 30,
            tokens: Vec::new(),
        }
    }
}

/// `[reconcile]`: the always-on pilot-light loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Period of a reconcile cycle, in seconds (at least 1).
    pub cycle_secs: u64,
    /// Reconciles running at once (1 to 64).
    pub concurrency: usize,
    /// Upper bound of the error backoff before a failed reconcile is retried, in seconds
    /// (at least 1).
    pub max_backoff_secs: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            cycle_secs: 300,
            concurrency: 4,
            max_backoff_secs: 600,
        }
    }
}

/// `[network]`: the network mirror (SPEC R1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Delete DR subnets (and other mirrored network objects) whose primary counterpart was
    /// deleted. `false`: report them only.
    pub prune: bool,
    /// Mirror the primary region's default VPC too.
    pub include_default_vpc: bool,
    /// `"key=value"`: mirror only VPCs carrying that tag. Unset: every non-default VPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_tag_selector: Option<String>,
}

impl NetworkConfig {
    /// `vpc_tag_selector` split into tag key and value (`None` when unset or malformed; a
    /// validated config is never malformed).
    pub fn vpc_tag_filter(&self) -> Option<(&str, &str)> {
        self.vpc_tag_selector
            .as_deref()?
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
    }
}

/// `[copy]`: the copy reconciler, which copies primary EBS snapshots, RDS DB and cluster
/// snapshots and AMIs into the DR region and retains a few DR copies of each (SPEC R2–R4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CopyConfig {
    /// Run the copy reconciler at all. `false`: nothing is copied and no DR copy is deleted.
    pub enabled: bool,
    /// How often the copy reconciler lists primary snapshots and polls the copies in flight, in
    /// seconds (at least 1).
    pub cycle_secs: u64,
    /// Protect EBS snapshots (`CopySnapshot`).
    pub ebs: bool,
    /// Protect RDS DB instance snapshots (`CopyDBSnapshot`).
    pub rds: bool,
    /// Protect Aurora DB cluster snapshots (`CopyDBClusterSnapshot`).
    pub rds_clusters: bool,
    /// Protect the AMIs of primary instances (`CopyImage`).
    pub amis: bool,
    /// Tag key → value (`"dr:protect" = "true"`): a primary snapshot, DB instance, DB cluster or
    /// instance is protected only if it carries all these tags. Empty: everything the account
    /// owns. Keys 1 to 128 characters, values 1 to 256 (AWS's tag limits).
    pub selector_tags: BTreeMap<String, String>,
    /// Protect only snapshots of these EBS volumes (`vol-` and 8 or 17 lowercase hex
    /// digits). Empty: no restriction.
    pub volume_ids: Vec<String>,
    /// Protect only snapshots of these DB instances (identifiers of 1 to 63 letters, digits and
    /// hyphens, starting with a letter, not ending with a hyphen, no `--`). Empty: no
    /// restriction.
    pub db_instance_ids: Vec<String>,
    /// Protect only snapshots of these Aurora DB clusters (identifiers as for
    /// `db_instance_ids`). Empty: no restriction.
    pub db_cluster_ids: Vec<String>,
    /// EBS snapshot copies in flight at once into the DR region (1 to 20). AWS allows 20
    /// concurrent snapshot copies per destination region and refuses more
    /// (`ResourceLimitExceeded`), so a higher value could never be used.
    pub ebs_max_in_flight: u32,
    /// RDS DB snapshot copies in flight at once into the DR region (1 to 20). AWS allows 20
    /// cross-region DB snapshot copies in progress per destination region and refuses more.
    pub rds_max_in_flight: u32,
    /// Aurora DB cluster snapshot copies in flight at once into the DR region (1 to 5). AWS
    /// allows 5 cluster snapshot copies in progress per destination region and refuses more
    /// (the Aurora guide's figure; the general RDS quotas page says 20, the lower one is used).
    pub rds_cluster_max_in_flight: u32,
    /// AMI copies in flight at once into the DR region (1 to 300). AWS allows 300 concurrent
    /// AMI copies per destination region and refuses more.
    pub ami_max_in_flight: u32,
    /// DR copies retained per protected EBS volume (at least 1); older ones are deleted. Only
    /// copies pilotlight made (owned copies) are ever deleted.
    pub keep_per_volume: u32,
    /// DR copies retained per protected DB instance or DB cluster (at least 1); older ones are
    /// deleted (owned copies only).
    pub keep_per_db: u32,
    /// DR copies retained per protected AMI source (at least 1); older ones are deleted (owned
    /// copies only).
    pub keep_per_image: u32,
    /// The account's quota of manual DB snapshots in the DR region (at least 1; AWS's default
    /// is 100, adjustable). Retention never plans more retained RDS copies than this, even
    /// when `keep_per_db` times the number of protected databases is larger; that product is
    /// only known at run time, so it is not checked here.
    pub rds_manual_snapshot_quota: u32,
    /// Primary KMS key ARN → DR KMS key ARN used to re-encrypt copies of sources encrypted with
    /// it. Keys must be key ARNs in `regions.primary` (`arn:aws:kms:<primary>:<account>:key/…`),
    /// values key or alias ARNs in `regions.dr`.
    pub kms_key_map: BTreeMap<String, String>,
    /// DR KMS key for encrypted sources whose key is not in `kms_key_map`: a key or alias ARN
    /// in `regions.dr`, or an alias name `alias/…`. Unset: no default; only the keys in
    /// `kms_key_map` have a DR key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dr_default_kms_key: Option<String>,
    /// A copy still pending after this long is marked failed and retried, in seconds (at
    /// least 60; default 48 h).
    pub copy_timeout_secs: u64,
}

impl CopyConfig {
    /// AWS's limit on concurrent EBS snapshot copies per destination region.
    pub const AWS_EBS_MAX_IN_FLIGHT: u32 = 20;
    /// AWS's limit on cross-region DB snapshot copies in progress per destination region.
    pub const AWS_RDS_MAX_IN_FLIGHT: u32 = 20;
    /// AWS's limit on DB cluster snapshot copies in progress per destination region.
    pub const AWS_RDS_CLUSTER_MAX_IN_FLIGHT: u32 = 5;
    /// AWS's limit on concurrent AMI copies per destination region.
    pub const AWS_AMI_MAX_IN_FLIGHT: u32 = 300;
    /// The smallest `copy_timeout_secs` accepted.
    pub const MIN_COPY_TIMEOUT_SECS: u64 = 60;

    /// The configured in-flight limit for a copy kind: `"ebs_snapshot"`, `"rds_snapshot"`,
    /// `"rds_cluster_snapshot"` or `"ami"`; 0 for any other string (nothing may be in flight).
    pub fn max_in_flight(&self, kind: &str) -> u32 {
        match kind {
            "ebs_snapshot" => self.ebs_max_in_flight,
            "rds_snapshot" => self.rds_max_in_flight,
            "rds_cluster_snapshot" => self.rds_cluster_max_in_flight,
            "ami" => self.ami_max_in_flight,
            _ => 0,
        }
    }
}

impl Default for CopyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cycle_secs: 60,
            ebs: true,
            rds: true,
            rds_clusters: true,
            amis: true,
            selector_tags: BTreeMap::new(),
            volume_ids: Vec::new(),
            db_instance_ids: Vec::new(),
            db_cluster_ids: Vec::new(),
            ebs_max_in_flight: Self::AWS_EBS_MAX_IN_FLIGHT,
            rds_max_in_flight: Self::AWS_RDS_MAX_IN_FLIGHT,
            rds_cluster_max_in_flight: Self::AWS_RDS_CLUSTER_MAX_IN_FLIGHT,
            ami_max_in_flight: Self::AWS_AMI_MAX_IN_FLIGHT,
            keep_per_volume: 2,
            keep_per_db: 2,
            keep_per_image: 2,
            rds_manual_snapshot_quota: 100,
            kms_key_map: BTreeMap::new(),
            dr_default_kms_key: None,
            copy_timeout_secs: 172_800,
        }
    }
}

/// `[tiers]`: recovery tiers (1 comes back first) and their RPO targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TiersConfig {
    /// Tag whose value (1 to 9) gives a primary resource's tier.
    pub tag_key: String,
    /// Tier of resources without a valid tier tag (1 to 9); must have an RPO target.
    pub default_tier: u8,
    /// Tier → RPO target in seconds (`1 = 3600`). Keys are tiers 1 to 9, values at least 1.
    /// Entries merge with the defaults (1 = 3600, 2 = 14400, 3 = 86400), tier by tier.
    #[serde(
        serialize_with = "serialize_rpo_secs",
        deserialize_with = "deserialize_rpo_secs"
    )]
    pub rpo_secs: BTreeMap<u8, u64>,
}

impl Default for TiersConfig {
    fn default() -> Self {
        Self {
            tag_key: "dr:tier".to_owned(),
            default_tier: 3,
            rpo_secs: BTreeMap::from([(1, 3_600), (2, 14_400), (3, 86_400)]),
        }
    }
}

/// `[inventory]`: the document a restore reads (SPEC R5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventoryConfig {
    /// Capture the primary estate and write the inventory document at all.
    pub enabled: bool,
    /// Seconds between captures (at least 1).
    pub cycle_secs: u64,
    /// DR-region bucket the documents are written to; created (tagged
    /// `pilotlight:managed=true`) when missing. Must be a valid S3 bucket name.
    pub bucket: String,
    /// Key prefix of the documents (`<prefix>v<version>-<digest>.json.gz`); must not start
    /// with `/`.
    pub prefix: String,
    /// Instance tag naming the cluster an instance belongs to (tenants ask for clusters); 1 to
    /// 128 characters.
    pub cluster_tag: String,
    /// Capture classic and v2 load balancers, their listeners and targets.
    pub load_balancers: bool,
    /// Capture Route 53 hosted zones and their records.
    pub route53: bool,
    /// Capture RDS DB instances.
    pub rds: bool,
    /// Collect CPU (and memory) utilisation of instances from the primary's CloudWatch.
    pub utilisation: bool,
    /// Window of the utilisation figures (peak and p95), in days (1 to 63).
    pub utilisation_window_days: u32,
    /// Seconds between utilisation collections (at least 60); figures between collections are
    /// carried over so an unchanged estate writes no new document.
    pub utilisation_refresh_secs: u64,
    /// Period of the utilisation data points asked of CloudWatch, in seconds (60 or a multiple;
    /// a multiple of 300 when `utilisation_window_days` exceeds 15, since CloudWatch returns
    /// data points older than 15 days only for such periods).
    pub utilisation_period_secs: u32,
    /// CloudWatch namespace of the memory metric the CloudWatch agent publishes.
    pub memory_namespace: String,
    /// Name of that memory metric (percent used, dimension `InstanceId`).
    pub memory_metric: String,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cycle_secs: 300,
            bucket: "pilotlight-inventory".to_owned(),
            prefix: "inventory/".to_owned(),
            cluster_tag: "dr:cluster".to_owned(),
            load_balancers: true,
            route53: true,
            rds: true,
            utilisation: true,
            utilisation_window_days: 14,
            utilisation_refresh_secs: 3_600,
            utilisation_period_secs: 3_600,
            memory_namespace: "CWAgent".to_owned(),
            memory_metric: "mem_used_percent".to_owned(),
        }
    }
}

/// `[s3]`: the S3 cross-region replication watch (SPEC R6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3WatchConfig {
    /// Primary-region buckets whose replication to the DR region is watched (empty: none).
    /// Valid S3 bucket names, no duplicates.
    pub buckets: Vec<String>,
    /// Seconds between checks (at least 1).
    pub cycle_secs: u64,
    /// Newest objects sampled per bucket to measure the lag (1 to 1000).
    pub sample_objects: u32,
    /// Lag above which a bucket counts as behind, in seconds (S3 RTC promises 900).
    pub lag_target_secs: u64,
}

impl Default for S3WatchConfig {
    fn default() -> Self {
        Self {
            buckets: Vec::new(),
            cycle_secs: 60,
            sample_objects: 20,
            lag_target_secs: 900,
        }
    }
}

/// `[[tenants]]`: a tenant (a partner of the case study) and the clusters it needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// Unique name (required): 1 to 128 letters, digits, `-`, `_` and `.`, as for the tenants
    /// managed through the admin API.
    pub name: String,
    /// Values of the cluster tag (`inventory.cluster_tag`) this tenant needs (required; at
    /// least one, none empty); clusters may be shared with other tenants.
    pub clusters: Vec<String>,
}

/// `[quotas]`: the DR region's quotas. Set them to your account's Service Quotas values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// On-Demand vCPU quota per group: `standard` (A, C, D, H, I, M, R, T, Z), `g`, `p`, `x`,
    /// `f`, `inf`, `dl`, `trn`, `high-memory`. Entries merge with the defaults (`standard` =
    /// 1152, `g`, `p` and `x` = 64) group by group; a group in neither has a quota of 0.
    pub vcpus: BTreeMap<String, u32>,
    /// Classic load balancers per region (AWS default 20).
    pub classic_load_balancers: u32,
    /// Application load balancers per region (AWS default 50).
    pub application_load_balancers: u32,
    /// Network load balancers per region (AWS default 50).
    pub network_load_balancers: u32,
    /// DB instances per region (AWS default 40).
    pub db_instances: u32,
    /// Records per hosted zone (AWS default 10,000).
    pub records_per_zone: u32,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        Self {
            vcpus: BTreeMap::from([
                ("standard".to_owned(), 1_152),
                ("g".to_owned(), 64),
                ("p".to_owned(), 64),
                ("x".to_owned(), 64),
            ]),
            classic_load_balancers: 20,
            application_load_balancers: 50,
            network_load_balancers: 50,
            db_instances: 40,
            records_per_zone: 10_000,
        }
    }
}

/// The vCPU quota groups `[quotas.vcpus]` may name.
pub const VCPU_QUOTA_GROUPS: [&str; 9] = [
    "standard",
    "g",
    "p",
    "x",
    "f",
    "inf",
    "dl",
    "trn",
    "high-memory",
];

/// `[readiness]`: continuous checks that a restore could start now (SPEC R10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadinessConfig {
    /// Seconds between evaluations (at least 1).
    pub cycle_secs: u64,
    /// DR-region instance tag naming the always-on service an instance provides (1 to 128
    /// characters).
    pub always_on_tag: String,
    /// Always-on services of the pilot light (`["directory", "build", "monitoring"]`): each
    /// needs a running DR instance tagged `<always_on_tag>=<service>`. Not empty, unique.
    pub always_on: Vec<String>,
    /// Primary certificate ARN → DR certificate ARN, for certificates whose DR counterpart is
    /// not found by domain name. Keys and values must be ARNs (`arn:…`).
    pub certificate_map: BTreeMap<String, String>,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            cycle_secs: 60,
            always_on_tag: "dr:always-on".to_owned(),
            always_on: Vec::new(),
            certificate_map: BTreeMap::new(),
        }
    }
}

/// How per-instance data volumes come back (SPEC D3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeStrategy {
    /// Whichever the plan shows is faster under the API limits.
    #[default]
    Auto,
    /// In the launch's block-device mappings (one launch spec per instance).
    BlockDeviceMapping,
    /// `CreateVolume` + `AttachVolume` after batched launches.
    CreateAttach,
}

/// When the next tier starts (SPEC D3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierGate {
    /// When every instance of the tier is running.
    #[default]
    Running,
    /// When every instance of the tier passes its status checks.
    Healthy,
}

/// `[restore]`: how a restore is planned and run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreConfig {
    /// Most instances asked of one `RunInstances` (1 to 1000; AWS advises batches of 100).
    pub max_instances_per_call: u32,
    /// `"auto"`, `"block_device_mapping"` or `"create_attach"`.
    pub data_volumes: VolumeStrategy,
    /// `"running"` or `"healthy"`: when tier N+1 starts.
    pub gate: TierGate,
    /// Ask for each instance's primary private IP in its DR subnet. A launch with a fixed IP
    /// takes one instance, so this trades batching (and RTO) for stable addresses.
    pub preserve_private_ips: bool,
    /// Most changes in one `ChangeResourceRecordSets` batch (1 to 1000).
    pub route53_max_changes_per_batch: u32,
    /// Estimated seconds from launch to running, added once per tier in the RTO estimate.
    pub instance_boot_secs: u64,
    /// Estimated seconds for a new load balancer to become active.
    pub load_balancer_provision_secs: u64,
    /// Estimated seconds for an RDS restore from a snapshot to become available.
    pub db_restore_secs: u64,
    /// Estimated seconds for a Route 53 change to reach `INSYNC`.
    pub dns_sync_secs: u64,
    /// Two-person rule (D1): a declared disaster waits for `POST /v1/restores/{id}/approve` by
    /// a different principal with the approver role.
    pub require_approval: bool,
    /// How often the executor polls what it waits for (instances running, load balancers
    /// active, DB instances available, Route 53 changes in sync), in milliseconds (10 to
    /// 600,000). One poll covers every outstanding resource of a kind.
    pub poll_interval_ms: u64,
    /// How long describe results stay cached during a restore (D9), in seconds; 0 turns the
    /// cache off.
    pub cache_ttl_secs: u64,
    /// Most AWS calls of a restore in flight at once (1 to 256): sent and not yet answered, on
    /// top of the throttle's token buckets (D8); a call waiting for its bucket holds no slot.
    /// `CreateVolume` and `AttachVolume` also run at most this many each.
    pub concurrency: u32,
    /// Plan B when capacity runs out (SPEC D4).
    pub fallback: crate::fallback::FallbackPolicy,
    /// Webhooks called after each stage of a run (SPEC D13), `[[restore.hooks]]` entries.
    pub hooks: Vec<HookConfig>,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        Self {
            max_instances_per_call: 100,
            data_volumes: VolumeStrategy::Auto,
            gate: TierGate::Running,
            preserve_private_ips: false,
            route53_max_changes_per_batch: 1_000,
            instance_boot_secs: 90,
            load_balancer_provision_secs: 120,
            db_restore_secs: 900,
            dns_sync_secs: 60,
            require_approval: false,
            poll_interval_ms: 5_000,
            cache_ttl_secs: 300,
            concurrency: 16,
            fallback: crate::fallback::FallbackPolicy::default(),
            hooks: Vec::new(),
        }
    }
}

/// `[drill]`: drills, full restores into the DR region that never touch production DNS and
/// tear down everything they created (SPEC D12).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrillConfig {
    /// When the leader declares a drill by itself: a five-field cron expression in UTC
    /// (`"0 3 * * 1"` is Mondays 03:00), or empty for no scheduled drills. A scheduled drill
    /// is skipped while another run is active.
    pub schedule: String,
    /// Tiers a scheduled drill restores (empty: every tier).
    pub tiers: Vec<u8>,
    /// Tenants whose clusters a scheduled drill restores (empty: the whole estate).
    pub tenants: Vec<String>,
    /// How long a drill's restored estate stays up before the teardown starts, in seconds
    /// (0 to 86,400): time for smoke tests against it.
    pub hold_secs: u64,
    /// DNS for a drill: empty to skip DNS, or a domain (`drill.example.internal`) for a private
    /// hosted zone the drill creates in the DR VPCs of its instances and writes every restored
    /// record into, under `<record name>.<domain>`. Production zones are never touched.
    pub dns_zone: String,
}

/// Parses a tier number as written in a table key: exactly one of `"1"` to `"9"`.
pub fn parse_tier(key: &str) -> Option<u8> {
    match key.as_bytes() {
        [digit @ b'1'..=b'9'] => Some(digit - b'0'),
        _ => None,
    }
}

/// Tiers are written as table keys, which TOML requires to be strings.
fn serialize_rpo_secs<S: Serializer>(rpo: &BTreeMap<u8, u64>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(rpo.iter().map(|(tier, secs)| (tier.to_string(), secs)))
}

fn deserialize_rpo_secs<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u8, u64>, D::Error> {
    let raw = BTreeMap::<String, u64>::deserialize(d)?;
    raw.into_iter()
        .map(|(key, secs)| match parse_tier(&key) {
            Some(tier) => Ok((tier, secs)),
            None => Err(serde::de::Error::custom(format!(
                "`{key}` is not a tier: expected 1 to 9"
            ))),
        })
        .collect()
}

/// The services a `[throttle.overrides]` key may name.
pub const THROTTLE_SERVICES: [&str; 8] = [
    "ec2",
    "rds",
    "s3",
    "route53",
    "elb",
    "elbv2",
    "cloudwatch",
    "acm",
];

/// Splits a `[throttle.overrides]` key into its service (one of [`THROTTLE_SERVICES`]) and the
/// rest, which names one token bucket exactly as `aws_limits::charges` keys it: an action
/// (`ec2:RunInstances`), an EC2 resource or unfiltered bucket (`ec2:RunInstances#resource`),
/// a category (`elbv2:category:registration`) or a shared bucket (`elb:account`,
/// `route53:changes`, `s3:write`). The rest is letters, digits, `-`, `_`, `:` and `#`.
pub fn parse_throttle_key(key: &str) -> Option<(&str, &str)> {
    let (service, action) = key.split_once(':')?;
    let action_ok = !action.is_empty()
        && !action.starts_with([':', '#'])
        && action
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '#'));
    (THROTTLE_SERVICES.contains(&service) && action_ok).then_some((service, action))
}

/// One token bucket override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleOverride {
    /// Bucket size: calls that may be made at once after a quiet period (at least 1).
    pub burst: u32,
    /// Tokens added per second (greater than 0).
    pub refill_per_sec: f64,
}

/// `[throttle]`: adjustments to the token buckets sized from AWS's documented limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Factor by which every AWS limit runs faster (the lab compresses time with it); greater
    /// than 0. Production: 1.0.
    pub time_scale: f64,
    /// `"service:ActionOrCategory"` → `{ burst, refill_per_sec }`, replacing AWS's documented
    /// bucket for that action or category. Services: ec2, rds, s3, route53, elb, elbv2,
    /// cloudwatch, acm.
    pub overrides: BTreeMap<String, ThrottleOverride>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            overrides: BTreeMap::new(),
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` or `"json"`.
    pub format: LogFormat,
    /// Filter in `tracing` EnvFilter syntax: a level (`"info"`) or comma-separated
    /// `target=level` directives (`"info,pilotlight_aws=debug"`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[daemon]`: process-level settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Directory for local state (the embedded SQLite store). Not empty.
    pub data_dir: PathBuf,
    /// After SIGTERM, how long in-flight AWS mutations may run to a journalled point before
    /// the daemon exits anyway, in seconds (at least 1).
    pub shutdown_grace_secs: u64,
    /// Leader lease lifetime, in seconds (at least 1); a follower takes over within about
    /// this time after the leader dies.
    pub lease_ttl_secs: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/pilotlight"),
            shutdown_grace_secs: 30,
            lease_ttl_secs: 15,
        }
    }
}

/// Where the value behind a [`ConfigError`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The config file (or a default the file did not override).
    File,
    /// The environment variable of that name.
    Env(String),
    /// A command-line `path=value` override.
    Cli,
    /// A rule relating several keys (e.g. `regions.primary` and `regions.dr` must differ).
    Validation,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File => f.write_str("config file"),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::Cli => f.write_str("command line"),
            Source::Validation => f.write_str("validation"),
        }
    }
}

/// One configuration problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted TOML path of the offending key (`api.tokens[0].role`,
    /// `throttle.overrides."ec2:RunInstances".burst`); empty for a file syntax error.
    pub path: String,
    /// Where the offending value came from.
    pub source_kind: Source,
    /// What is wrong, without the path or the source. Never contains a secret value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} ({})", self.message, self.source_kind)
        } else {
            write!(f, "{}: {} ({})", self.path, self.message, self.source_kind)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration; `Display` prints one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The process exit code for an invalid configuration (`EX_USAGE`).
    pub const EXIT_CODE: u8 = 64;
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
