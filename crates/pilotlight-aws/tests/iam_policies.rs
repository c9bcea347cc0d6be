//! The least-privilege IAM policies in `deploy/iam/` allow exactly what pilotlight can call.
//!
//! Every AWS call pilotlight makes goes through a handle of this crate: a struct holding a
//! private `client: aws_sdk_<service>::Client`, named `Primary…` (primary region, read-only) or
//! `Dr…` (DR region). This test reads the handles' source, collects each handle's operations
//! (the `sdk_ops!` entries `method => module::Builder -> Output, "OpName";`, the macros that
//! expand to such entries, and the hand-written calls `self.ctx.call(Service, &self.region,
//! "OpName", …)` / `owned_call("OpName", …)`), maps each to its IAM action and compares the sets
//! with `deploy/iam/primary-readonly.json` and `deploy/iam/dr.json`:
//!
//! - every action a handle of a role can call is allowed by that role's policy, plus the actions
//!   AWS checks on pilotlight's behalf for some calls ([`IMPLIED`]);
//! - the policy allows nothing else, and no action has a wildcard;
//! - the primary policy has only `Describe*` / `List*` / `Get*` actions, pinned to the primary
//!   region;
//! - every DR deletion (`Delete*`, `Terminate*`, `Deregister*`) is allowed only on resources
//!   tagged `pilotlight:managed = "true"` where AWS supports that condition.
//!
//! When someone adds an operation to a handle, this test names the action and the file to add
//! it to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Regions the policies are written for: those of `deploy/pilotlight.example.toml`.
const PRIMARY_REGION: &str = "us-east-1";
const DR_REGION: &str = "us-west-2";

const PRIMARY_POLICY: &str = "deploy/iam/primary-readonly.json";
const DR_POLICY: &str = "deploy/iam/dr.json";

/// S3 operations whose IAM action is not `s3:<OperationName>`. S3 has no default: an S3
/// operation missing here fails the test, because S3's action names often differ.
const S3_ACTIONS: &[(&str, &str)] = &[
    ("CreateBucket", "s3:CreateBucket"),
    ("DeleteBucket", "s3:DeleteBucket"),
    ("DeleteObject", "s3:DeleteObject"),
    ("DeleteObjects", "s3:DeleteObject"),
    ("GetBucketLocation", "s3:GetBucketLocation"),
    ("GetBucketReplication", "s3:GetReplicationConfiguration"),
    ("GetBucketTagging", "s3:GetBucketTagging"),
    ("GetBucketVersioning", "s3:GetBucketVersioning"),
    ("GetObject", "s3:GetObject"),
    // HeadBucket is authorised as ListBucket, HeadObject as GetObject.
    ("HeadBucket", "s3:ListBucket"),
    ("HeadObject", "s3:GetObject"),
    ("ListBuckets", "s3:ListAllMyBuckets"),
    ("ListObjectsV2", "s3:ListBucket"),
    ("PutBucketTagging", "s3:PutBucketTagging"),
    ("PutObject", "s3:PutObject"),
];

/// KMS actions AWS performs with the caller's permissions (through the service: `kms:ViaService`)
/// when a call reads or writes an encrypted snapshot, image, volume or database.
const KMS_FOR_ENCRYPTION: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// Actions AWS authorises on pilotlight's behalf when it calls the action on the left (in the
/// DR policy): tags given at creation need the tagging action, an instance profile needs
/// `iam:PassRole`, encrypted resources need KMS.
const IMPLIED: &[(&str, &[&str], &str)] = &[
    (
        "ec2:RunInstances",
        &["ec2:CreateTags", "iam:PassRole"],
        "tags at launch (TagSpecifications); the instance profile passes its role",
    ),
    ("ec2:CreateVolume", &["ec2:CreateTags"], "tags at creation"),
    ("ec2:CopySnapshot", &["ec2:CreateTags"], "tags at creation"),
    ("ec2:CopyImage", &["ec2:CreateTags"], "tags at creation"),
    ("ec2:CreateVpc", &["ec2:CreateTags"], "tags at creation"),
    ("ec2:CreateSubnet", &["ec2:CreateTags"], "tags at creation"),
    (
        "ec2:CreateSecurityGroup",
        &["ec2:CreateTags"],
        "tags at creation",
    ),
    (
        "rds:CopyDBSnapshot",
        &["rds:AddTagsToResource"],
        "tags at creation",
    ),
    (
        "rds:CopyDBClusterSnapshot",
        &["rds:AddTagsToResource"],
        "tags at creation",
    ),
    (
        "rds:RestoreDBInstanceFromDBSnapshot",
        &["rds:AddTagsToResource"],
        "tags at creation",
    ),
    (
        "rds:RestoreDBClusterFromSnapshot",
        &["rds:AddTagsToResource"],
        "tags at creation",
    ),
    (
        "rds:CreateDBInstance",
        &["rds:AddTagsToResource"],
        "tags at creation",
    ),
    (
        "rds:CreateDBSubnetGroup",
        &["rds:AddTagsToResource"],
        "tags at creation",
    ),
    (
        "elasticloadbalancing:CreateLoadBalancer",
        &["elasticloadbalancing:AddTags"],
        "tags at creation",
    ),
    (
        "elasticloadbalancing:CreateTargetGroup",
        &["elasticloadbalancing:AddTags"],
        "tags at creation",
    ),
];

/// Calls whose KMS use [`KMS_FOR_ENCRYPTION`] covers.
const ENCRYPTED_DATA_CALLS: &[&str] = &[
    "ec2:CopySnapshot",
    "ec2:CopyImage",
    "ec2:CreateVolume",
    "ec2:RunInstances",
    "rds:CopyDBSnapshot",
    "rds:CopyDBClusterSnapshot",
    "rds:RestoreDBInstanceFromDBSnapshot",
    "rds:RestoreDBClusterFromSnapshot",
];

/// Services without the `aws:ResourceTag` condition on their deletions (Route 53 record
/// changes; S3 objects carry object tags, not resource tags), and global services (no
/// `aws:RequestedRegion` pinning: Route 53 and IAM answer in us-east-1 whatever the region).
const NO_RESOURCE_TAG: &[&str] = &["route53", "s3"];
const GLOBAL_SERVICES: &[&str] = &["route53", "iam"];

/// Operation-name prefixes that destroy a resource.
const DESTRUCTIVE: &[&str] = &["Delete", "Terminate", "Deregister"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Primary,
    Dr,
}

impl Role {
    fn policy(self) -> &'static str {
        match self {
            Role::Primary => PRIMARY_POLICY,
            Role::Dr => DR_POLICY,
        }
    }
}

/// One operation a handle can call.
#[derive(Debug, Clone)]
struct Call {
    handle: String,
    file: String,
    operation: String,
    action: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The source without `//` comment lines (doc comments mention operations in prose).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index of the `}` closing the `{` at `open`, skipping string and char literals.
fn block_end(src: &str, open: usize) -> usize {
    let b = src.as_bytes();
    assert_eq!(b[open], b'{');
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'\'' if i + 2 < b.len() && b[i + 2] == b'\'' => i += 2,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced braces");
}

/// `(name, body)` of every item starting with `keyword` followed by a name and `{`, e.g.
/// `impl DrEc2 {` (not `impl Trait for X {` nor `impl<…>`).
fn items<'a>(src: &'a str, keyword: &str) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = src[from..].find(keyword) {
        let start = from + at;
        from = start + keyword.len();
        if start > 0 && !src[..start].ends_with(char::is_whitespace) {
            continue;
        }
        let rest = &src[from..];
        let trimmed = rest.trim_start();
        if trimmed.len() == rest.len() {
            continue;
        }
        let name: String = trimmed
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || !trimmed[name.len()..].trim_start().starts_with('{') {
            continue;
        }
        let after_name = from + (rest.len() - trimmed.len()) + name.len();
        let open = after_name + src[after_name..].find('{').expect("brace");
        let end = block_end(src, open);
        out.push((name, &src[open + 1..end]));
    }
    out
}

/// The operation names of the `sdk_ops!` entries in `body`: lines
/// `method => module::Builder -> Output, "OpName";`.
fn sdk_ops_entries(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (method, rest) = line.split_once(" => ")?;
            if method.is_empty()
                || !method
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return None;
            }
            let rest = rest.strip_suffix("\";")?;
            let (_, op) = rest.rsplit_once(", \"")?;
            assert!(rest.contains(" -> "), "unexpected sdk_ops! entry: {line}");
            Some(op.to_owned())
        })
        .collect()
}

/// Every quoted name that directly follows `marker` in `compact` (whitespace removed).
fn literals_after(compact: &str, marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = compact[from..].find(marker) {
        let start = from + at + marker.len();
        from = start;
        if let Some(rest) = compact[start..].strip_prefix('"') {
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            out.push(name);
        }
    }
    out
}

/// The SDK client methods called as `self.client.<method>(` in `compact`.
fn client_methods(compact: &str) -> BTreeSet<String> {
    let marker = "self.client.";
    let mut out = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = compact[from..].find(marker) {
        let start = from + at + marker.len();
        from = start;
        let name: String = compact[start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if compact[start + name.len()..].starts_with('(') {
            out.insert(name);
        }
    }
    out
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn iam_prefix(sdk: &str) -> &'static str {
    match sdk {
        "aws_sdk_ec2" => "ec2",
        "aws_sdk_rds" => "rds",
        "aws_sdk_s3" => "s3",
        "aws_sdk_route53" => "route53",
        "aws_sdk_elasticloadbalancing" | "aws_sdk_elasticloadbalancingv2" => "elasticloadbalancing",
        "aws_sdk_cloudwatch" => "cloudwatch",
        "aws_sdk_acm" => "acm",
        "aws_sdk_sts" => "sts",
        "aws_sdk_kms" => "kms",
        other => panic!(
            "a handle uses {other}: add its IAM service prefix to iam_prefix in {}",
            file!()
        ),
    }
}

fn iam_action(sdk: &str, operation: &str) -> String {
    let prefix = iam_prefix(sdk);
    if prefix == "s3" {
        return S3_ACTIONS
            .iter()
            .find(|(op, _)| *op == operation)
            .map(|(_, action)| (*action).to_owned())
            .unwrap_or_else(|| {
                panic!(
                    "S3 operation {operation} has no entry in S3_ACTIONS ({}): add its IAM action \
                     (S3 action names differ from operation names)",
                    file!()
                )
            });
    }
    format!("{prefix}:{operation}")
}

/// The operations of every handle, by role, read from `crates/pilotlight-aws/src`.
fn handle_calls() -> BTreeMap<Role, Vec<Call>> {
    let dir = repo().join("crates/pilotlight-aws/src");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("src dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            (
                format!(
                    "crates/pilotlight-aws/src/{}",
                    p.file_name().unwrap().to_string_lossy()
                ),
                strip_comments(&read(p)),
            )
        })
        .collect();

    // Macros that expand to sdk_ops! entries (`describe_ops!()` and the like).
    let mut macros: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, src) in &sources {
        for (name, body) in items(src, "macro_rules!") {
            let ops = sdk_ops_entries(body);
            if !ops.is_empty() {
                macros.insert(name, ops);
            }
        }
    }
    // Handles: structs with a `client: aws_sdk_<service>::Client` field.
    let mut handles: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (file, src) in &sources {
        for (name, body) in items(src, "struct") {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            if let Some(at) = compact.find("client:aws_sdk_") {
                let sdk: String = compact[at + "client:".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                handles.insert(name, (file.clone(), sdk));
            }
        }
    }
    assert!(
        handles.len() >= 15,
        "found only {} handle types: {handles:?}",
        handles.len()
    );

    let mut out: BTreeMap<Role, Vec<Call>> = BTreeMap::new();
    for (handle, (file, sdk)) in &handles {
        let role = if handle.starts_with("Primary") {
            Role::Primary
        } else if handle.starts_with("Dr") {
            Role::Dr
        } else {
            panic!(
                "{handle} ({file}) holds an AWS client but is neither Primary… nor Dr…: name it \
                 by the region it talks to so the IAM policy test can place its calls"
            );
        };
        let src = &sources.iter().find(|(f, _)| f == file).expect("file").1;
        let mut ops: Vec<String> = Vec::new();
        let mut methods = BTreeSet::new();
        for (name, body) in items(src, "impl") {
            if name != *handle {
                continue;
            }
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            ops.extend(sdk_ops_entries(body));
            for (mac, mac_ops) in &macros {
                let call = format!("{mac}!()");
                let invoked = compact.match_indices(&call).any(|(i, _)| {
                    !compact[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if invoked {
                    ops.extend(mac_ops.iter().cloned());
                }
            }
            ops.extend(literals_after(&compact, "&self.region,"));
            ops.extend(literals_after(&compact, "owned_call("));
            methods.extend(client_methods(&compact));
        }
        // Every SDK method called by hand must be one of the collected operations: a call whose
        // operation this parser cannot see would otherwise be missing from the policy.
        let known: BTreeSet<String> = ops.iter().map(|o| normalise(o)).collect();
        for method in &methods {
            assert!(
                known.contains(&normalise(method)),
                "{handle} ({file}) calls self.client.{method}() but the IAM policy test found no \
                 operation name for it: pass the operation as a literal to ctx.call(…, \
                 &self.region, \"OpName\", …) or owned_call(\"OpName\", …), or list it in sdk_ops!"
            );
        }
        assert!(!ops.is_empty(), "{handle} ({file}): no operation found");
        for op in ops {
            out.entry(role).or_default().push(Call {
                handle: handle.clone(),
                file: file.clone(),
                action: iam_action(sdk, &op),
                operation: op,
            });
        }
    }
    out
}

/// The actions `PrimaryRds::presign_copy` signs for the source (primary) region: the DR copy
/// carries that signed request, which AWS authorises against the caller in the primary region.
fn presigned_source_actions() -> Vec<String> {
    let src = strip_comments(&read(&repo().join("crates/pilotlight-aws/src/presign.rs")));
    let (_, body) = items(&src, "impl")
        .into_iter()
        .find(|(n, _)| n == "CopyAction")
        .expect("impl CopyAction");
    let start = body.find("fn action(").expect("CopyAction::action");
    let open = start + body[start..].find('{').expect("brace");
    let end = block_end(body, open);
    let compact: String = body[open..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let actions: Vec<String> = literals_after(&compact, "=>")
        .into_iter()
        .map(|op| format!("rds:{op}"))
        .collect();
    assert!(!actions.is_empty(), "no presigned action found");
    actions
}

/// One policy statement, as the checks need it.
#[derive(Debug)]
struct Statement {
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
    condition: Value,
}

impl Statement {
    fn condition_values(&self, operator: &str, key: &str) -> Option<Vec<String>> {
        strings(self.condition.get(operator)?.get(key)?)
    }

    fn regions(&self) -> Option<Vec<String>> {
        self.condition_values("StringEquals", "aws:RequestedRegion")
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

fn policy(path: &str, problems: &mut Vec<String>) -> Vec<Statement> {
    let doc: Value = serde_json::from_str(&read(&repo().join(path)))
        .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
    assert_eq!(doc["Version"], "2012-10-17", "{path}: Version");
    let mut sids = BTreeSet::new();
    let mut out = Vec::new();
    for s in doc["Statement"].as_array().expect("Statement array") {
        let sid = s["Sid"].as_str().unwrap_or_default().to_owned();
        if sid.is_empty() || !sids.insert(sid.clone()) {
            problems.push(format!(
                "{path}: every statement needs its own Sid ({sid:?})"
            ));
        }
        if s["Effect"] != "Allow" {
            problems.push(format!("{path} {sid}: only Allow statements are expected"));
        }
        for forbidden in ["NotAction", "NotResource", "Principal"] {
            if s.get(forbidden).is_some() {
                problems.push(format!("{path} {sid}: {forbidden} is not allowed"));
            }
        }
        let actions = strings(&s["Action"]).unwrap_or_default();
        let resources = strings(&s["Resource"]).unwrap_or_default();
        if actions.is_empty() || resources.is_empty() {
            problems.push(format!("{path} {sid}: needs Action and Resource"));
        }
        for a in &actions {
            let well_formed = a.split_once(':').is_some_and(|(p, n)| {
                !p.is_empty()
                    && n.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && n.chars().all(|c| c.is_ascii_alphanumeric())
            });
            if !well_formed {
                problems.push(format!(
                    "{path} {sid}: action {a:?} is not a single service:Action (no wildcards)"
                ));
            }
        }
        out.push(Statement {
            sid,
            actions,
            resources,
            condition: s.get("Condition").cloned().unwrap_or(Value::Null),
        });
    }
    out
}

fn service(action: &str) -> &str {
    action.split_once(':').map_or(action, |(p, _)| p)
}

fn name(action: &str) -> &str {
    action.split_once(':').map_or(action, |(_, n)| n)
}

#[test]
fn iam_policies_allow_exactly_the_calls_of_each_region() {
    let calls = handle_calls();
    let presigned = presigned_source_actions();
    let mut problems = Vec::new();

    for role in [Role::Primary, Role::Dr] {
        let path = role.policy();
        let statements = policy(path, &mut problems);
        let allowed: BTreeSet<&str> = statements
            .iter()
            .flat_map(|s| s.actions.iter().map(String::as_str))
            .collect();

        // What the code needs, with who needs it (for the messages).
        let mut needed: BTreeMap<String, String> = BTreeMap::new();
        for c in calls.get(&role).into_iter().flatten() {
            needed
                .entry(c.action.clone())
                .or_insert_with(|| format!("{} ({}) calls {}", c.handle, c.file, c.operation));
        }
        if role == Role::Dr {
            for a in &presigned {
                needed.entry(a.clone()).or_insert_with(|| {
                    "PrimaryRds::presign_copy signs it for the DR copy (crates/pilotlight-aws/src/presign.rs)"
                        .to_owned()
                });
            }
            let called: Vec<String> = needed.keys().cloned().collect();
            for (trigger, implied, why) in IMPLIED {
                if called.iter().any(|c| c == trigger) {
                    for a in *implied {
                        needed
                            .entry((*a).to_owned())
                            .or_insert_with(|| format!("AWS checks it for {trigger}: {why}"));
                    }
                }
            }
            if let Some(trigger) = ENCRYPTED_DATA_CALLS
                .iter()
                .find(|t| called.iter().any(|c| c == *t))
            {
                for a in KMS_FOR_ENCRYPTION {
                    needed.entry((*a).to_owned()).or_insert_with(|| {
                        format!("AWS uses KMS with pilotlight's permissions for encrypted data ({trigger} and others)")
                    });
                }
            }
        }

        for (action, who) in &needed {
            if !allowed.contains(action.as_str()) {
                let hint = if role == Role::Dr
                    && DESTRUCTIVE.iter().any(|d| name(action).starts_with(d))
                    && !NO_RESOURCE_TAG.contains(&service(action))
                {
                    format!(
                        " (a deletion: put it in the statement conditioned on aws:ResourceTag/{} = \"true\")",
                        pilotlight_aws::tags::MANAGED
                    )
                } else {
                    String::new()
                };
                problems.push(format!(
                    "{path} does not allow {action}, which pilotlight needs: {who}; add it{hint}"
                ));
            }
        }
        for action in &allowed {
            if !needed.contains_key(*action) {
                problems.push(format!(
                    "{path} allows {action}, which no {} handle calls (nor does AWS check it for \
                     one: see IMPLIED in {}); remove it",
                    match role {
                        Role::Primary => "Primary…",
                        Role::Dr => "Dr…",
                    },
                    file!()
                ));
            }
        }

        for s in &statements {
            let regional = s
                .actions
                .iter()
                .any(|a| !GLOBAL_SERVICES.contains(&service(a)) && service(a) != "kms");
            let regions = s.regions();
            match role {
                Role::Primary => {
                    for a in &s.actions {
                        if !["Describe", "List", "Get"]
                            .iter()
                            .any(|p| name(a).starts_with(p))
                        {
                            problems.push(format!(
                                "{path} {}: {a} is not a read (Describe*/List*/Get*): the primary \
                                 region is read-only",
                                s.sid
                            ));
                        }
                    }
                    if regional && regions != Some(vec![PRIMARY_REGION.to_owned()]) {
                        problems.push(format!(
                            "{path} {}: regional reads must be pinned with aws:RequestedRegion = \
                             {PRIMARY_REGION}",
                            s.sid
                        ));
                    }
                }
                Role::Dr => {
                    let signed_for_source = s.actions.iter().any(|a| presigned.contains(a));
                    let expected: Vec<String> = if signed_for_source {
                        vec![PRIMARY_REGION.to_owned(), DR_REGION.to_owned()]
                    } else {
                        vec![DR_REGION.to_owned()]
                    };
                    if regional
                        && regions.as_ref().map(|r| r.iter().collect::<BTreeSet<_>>())
                            != Some(expected.iter().collect())
                    {
                        problems.push(format!(
                            "{path} {}: must be pinned with aws:RequestedRegion = {expected:?}",
                            s.sid
                        ));
                    }
                    if signed_for_source
                        && !s
                            .resources
                            .iter()
                            .any(|r| r.starts_with(&format!("arn:aws:rds:{PRIMARY_REGION}:")))
                    {
                        problems.push(format!(
                            "{path} {}: the presigned copy is authorised on the source snapshot \
                             in {PRIMARY_REGION}: list its ARN pattern",
                            s.sid
                        ));
                    }
                    let destructive = s.actions.iter().any(|a| {
                        DESTRUCTIVE.iter().any(|d| name(a).starts_with(d))
                            && !NO_RESOURCE_TAG.contains(&service(a))
                    });
                    let tag_key = format!("aws:ResourceTag/{}", pilotlight_aws::tags::MANAGED);
                    if destructive
                        && s.condition_values("StringEquals", &tag_key)
                            != Some(vec!["true".to_owned()])
                    {
                        problems.push(format!(
                            "{path} {}: deletions must be conditioned on {tag_key} = \"true\"",
                            s.sid
                        ));
                    }
                    if destructive
                        && s.actions
                            .iter()
                            .any(|a| !DESTRUCTIVE.iter().any(|d| name(a).starts_with(d)))
                    {
                        problems.push(format!(
                            "{path} {}: keep deletions in statements of their own",
                            s.sid
                        ));
                    }
                }
            }
            if s.actions.iter().any(|a| service(a) == "kms")
                && s.condition_values("StringEquals", "kms:ViaService")
                    .is_none()
            {
                problems.push(format!(
                    "{path} {}: KMS must be limited to use through EC2 and RDS (kms:ViaService)",
                    s.sid
                ));
            }
            if s.actions.iter().any(|a| a == "iam:PassRole")
                && s.condition_values("StringEquals", "iam:PassedToService")
                    != Some(vec!["ec2.amazonaws.com".to_owned()])
            {
                problems.push(format!(
                    "{path} {}: iam:PassRole must be limited to iam:PassedToService = ec2.amazonaws.com",
                    s.sid
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the IAM policies do not match the code:\n  {}",
        problems.join("\n  ")
    );
}

/// The parser finds what is known to be there, so the comparison cannot pass vacuously.
#[test]
fn the_handle_reader_finds_known_operations() {
    let calls = handle_calls();
    let has = |role: Role, handle: &str, op: &str| {
        calls[&role]
            .iter()
            .any(|c| c.handle == handle && c.operation == op)
    };
    assert!(has(Role::Primary, "PrimaryEc2", "DescribeInstances"));
    assert!(has(Role::Dr, "DrEc2", "DescribeInstances"));
    assert!(has(Role::Dr, "DrEc2", "RunInstances"));
    assert!(has(Role::Dr, "DrEc2", "CopySnapshot"));
    assert!(has(Role::Dr, "DrEc2", "DeleteSubnet"));
    assert!(has(Role::Primary, "PrimaryRds", "DescribeDBSnapshots"));
    assert!(has(Role::Dr, "DrRds", "CopyDBSnapshot"));
    assert!(has(Role::Dr, "DrRoute53", "ChangeResourceRecordSets"));
    assert!(has(Role::Primary, "PrimaryS3", "HeadObject"));
    assert!(!has(Role::Primary, "PrimaryEc2", "RunInstances"));
    let s3 = calls[&Role::Primary]
        .iter()
        .find(|c| c.operation == "GetBucketReplication")
        .expect("GetBucketReplication");
    assert_eq!(s3.action, "s3:GetReplicationConfiguration");
    assert_eq!(
        presigned_source_actions(),
        ["rds:CopyDBSnapshot", "rds:CopyDBClusterSnapshot"]
    );
}

/// No crate but this one builds an AWS SDK client (the lab, which seeds moto, excepted), so the
/// handles are the whole of what pilotlight can call.
#[test]
fn only_the_aws_crate_builds_sdk_clients() {
    for krate in [
        "pilotlight",
        "pilotlight-core",
        "pilotlight-store",
        "pilotlight-engine",
        "pilotlight-api",
    ] {
        let mut stack = vec![repo().join("crates").join(krate).join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let src = strip_comments(&read(&path));
                    let compact: String = src.chars().filter(|c| !c.is_whitespace()).collect();
                    for needle in ["::Client::new(", "::Client::from_conf("] {
                        assert!(
                            !compact.match_indices(needle).any(|(i, _)| compact[..i]
                                .rsplit(|c: char| !c.is_alphanumeric() && c != '_')
                                .next()
                                .is_some_and(|w| w.starts_with("aws_sdk_"))),
                            "{} builds an AWS SDK client: go through a pilotlight-aws handle",
                            path.display()
                        );
                    }
                }
            }
        }
    }
}
