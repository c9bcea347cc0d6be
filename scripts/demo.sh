#!/usr/bin/env bash
# The main job on embedded defaults, with no AWS account: ./scripts/demo.sh
#
# 1. starts the lab (moto behind pilotlight's realism proxy, AWS's rate limits enforced) and
#    seeds a sample primary estate in us-east-1 (network, instances in three tiers, load
#    balancers with certificates, DNS zones, databases) plus the always-on DR services;
# 2. runs the pilotlight daemon against it with the embedded SQLite store;
# 3. shows the DR network (us-west-2) converge, then a new primary subnet mirrored within one
#    cycle; EBS snapshots copied into the DR region within AWS's copy limits (the lab keeps
#    copies pending for a size-based time) and the RPO gauges converging; the inventory
#    document in the DR bucket; readiness with every failing item named; the restore plan
#    with its RTO estimate, per tenant and as a dry-run declaration;
# 4. takes the primary region down, declares a disaster, watches the tiered restore live
#    (EC2 tier by tier, load balancers, RDS, then DNS) and prints the RTO report; the metrics;
#    and the proof that the primary region was never mutated;
# 5. stops everything.
#
# Needs Rust (cargo), python3 with venv (the lab installs moto into ~/.cache/pilotlight), curl.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pilotlight/target}"
API_PORT="${PILOTLIGHT_DEMO_API_PORT:-18080}"
METRICS_PORT="${PILOTLIGHT_DEMO_METRICS_PORT:-19090}"
WORK="$(pwd)/.pilotlight/demo"

die() { echo "error: $*" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
command -v python3 >/dev/null || die "python3 not found: apt-get install python3 python3-venv"
command -v curl >/dev/null || die "curl not found: apt-get install curl"

say "building pilotlight and pilotlight-lab (the first build compiles the AWS SDK: ~5-12 min)"
cargo build -q -p pilotlight -p pilotlight-lab
BIN="$CARGO_TARGET_DIR/debug"

rm -rf "$WORK" && mkdir -p "$WORK"
LAB_PID="" DAEMON_PID=""
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  [ -n "$LAB_PID" ] && kill "$LAB_PID" 2>/dev/null && wait "$LAB_PID" 2>/dev/null
  true
}
trap cleanup EXIT

say "starting the lab (moto + realism proxy) and seeding a primary network in us-east-1"
"$BIN/pilotlight-lab" up --seed sample >"$WORK/lab.json" 2>"$WORK/lab.log" &
LAB_PID=$!
for _ in $(seq 1 600); do
  grep -q endpoint "$WORK/lab.json" 2>/dev/null && break
  kill -0 "$LAB_PID" 2>/dev/null || die "the lab failed to start; see $WORK/lab.log"
  sleep 0.2
done
grep -q endpoint "$WORK/lab.json" || die "the lab did not come up in 120 s; see $WORK/lab.log"
ENDPOINT=$(json 'print(d["endpoint"])' <"$WORK/lab.json")
MOTO=$(json 'print(d["moto_endpoint"])' <"$WORK/lab.json")
MGMT_VPC=$(json 'print(d["seeded"]["vpcs"]["mgmt"]["id"])' <"$WORK/lab.json")
echo "proxy: $ENDPOINT   (moto: $MOTO)"
json '
for name, v in d["seeded"]["vpcs"].items():
    print("  primary VPC %-5s %s: %d subnets, %d security groups" % (name, v["id"], len(v["subnets"]), len(v["security_groups"])))' <"$WORK/lab.json"
# Count only the daemon's calls from here on.
curl -fsS -X POST "$ENDPOINT/__lab/counters/reset" >/dev/null

echo testing >"$WORK/aws-key"
echo "demo-operator-token" >"$WORK/operator.token"
cat >"$WORK/pilotlight.toml" <<TOML
# Written by scripts/demo.sh: the lab's endpoint, SQLite under $WORK, one operator token.
[aws]
endpoint_url = "$ENDPOINT"
s3_force_path_style = true
access_key_id_file = "$WORK/aws-key"
secret_access_key_file = "$WORK/aws-key"

[api]
listen = "127.0.0.1:$API_PORT"
metrics_listen = "127.0.0.1:$METRICS_PORT"

[[api.tokens]]
name = "demo"
role = "operator"
token_file = "$WORK/operator.token"

[daemon]
data_dir = "$WORK/data"

[reconcile]
cycle_secs = 300

[copy]
# Short for the demo; production default is 60.
cycle_secs = 2

[inventory]
bucket = "pl-demo-inventory-$API_PORT"
cycle_secs = 30

[readiness]
cycle_secs = 5
always_on = ["directory", "build", "monitoring"]

[restore]
# The lab answers in milliseconds; production default is 5000.
poll_interval_ms = 250

# Two partners of the case study; "shared-services" is needed by both.
[[tenants]]
name = "acme"
clusters = ["web", "shared-services"]

[[tenants]]
name = "globex"
clusters = ["search", "shared-services"]
TOML

say "running the daemon: pilotlight --config $WORK/pilotlight.toml run   (store: sqlite)"
"$BIN/pilotlight" --config "$WORK/pilotlight.toml" run 2>"$WORK/daemon.log" &
DAEMON_PID=$!
API="http://127.0.0.1:$API_PORT"
AUTH=(-H "Authorization: Bearer demo-operator-token")

network_runs() {
  curl -fsS "${AUTH[@]}" "$API/v1/status" 2>/dev/null \
    | json 'r=[x for x in d["reconcilers"] if x["name"]=="network"][0]; print(r["runs"] if r["state"]=="idle" else 0)' \
    2>/dev/null || echo 0
}
wait_runs() {
  for _ in $(seq 1 600); do
    [ "$(network_runs)" -ge "$1" ] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited; see $WORK/daemon.log"
    sleep 0.2
  done
  die "no network cycle finished in 120 s; see $WORK/daemon.log"
}
show_network() {
  curl -fsS "${AUTH[@]}" "$API/v1/status" | json '
r=[x for x in d["reconcilers"] if x["name"]=="network"][0]
rep=r["last_report"]
print("cycle #%d: %s, %d changes, %d mutating calls in the DR region" % (r["runs"], r["last_outcome"], rep["applied"], rep["mutating_calls"]))
print("mapped primary -> DR:", ", ".join("%s: %d" % (k, v.get("active", 0)) for k, v in sorted(d["mappings"].items())))'
}

say "first reconcile cycle: mirroring the primary network into us-west-2"
wait_runs 1
show_network
curl -fsS "${AUTH[@]}" "$API/v1/mappings?kind=subnet&limit=100" | json '
for m in d["items"]:
    print("  %s -> %s  %s" % (m["primary_id"], m["dr_id"], m["fingerprint"]))'

say "a second cycle with nothing new in the primary: list calls only, no changes"
curl -fsS -X POST "$ENDPOINT/__lab/counters/reset" >/dev/null
curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"reason":"demo: quiet cycle"}' \
  "$API/v1/reconcilers/network/run" >/dev/null
wait_runs 2
show_network
echo "calls the network mirror made in that cycle (the copy reconciler runs alongside):"
"$BIN/pilotlight-lab" counters --endpoint "$ENDPOINT" --json | json '
net = ("DescribeVpcs", "DescribeSubnets", "DescribeSecurityGroups", "DescribeRouteTables", "DescribeInternetGateways")
rows = [r for r in d["rows"] if r["operation"] in net]
for r in sorted(rows, key=lambda r: (r["operation"], r["region"])):
    print("  %-26s %-10s %d" % (r["operation"], r["region"], r["calls"]))
print("  total %d list calls, 0 mutating" % sum(r["calls"] for r in rows))'

say "someone adds a subnet in the primary (10.30.9.0/24 in us-east-1b)"
NEW=$("$BIN/pilotlight-lab" add-subnet --endpoint "$MOTO" --vpc-id "$MGMT_VPC" --cidr 10.30.9.0/24 --az us-east-1b)
echo "primary subnet $NEW created; asking for a cycle"
curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"reason":"demo: new subnet"}' \
  "$API/v1/reconcilers/network/run" >/dev/null
wait_runs 3
show_network
curl -fsS "${AUTH[@]}" "$API/v1/mappings?kind=subnet&limit=100" | NEW="$NEW" json '
import os
m=[m for m in d["items"] if m["primary_id"]==os.environ["NEW"]][0]
print("  %s -> %s  %s   (mirrored within one cycle)" % (m["primary_id"], m["dr_id"], m["fingerprint"]))'

say "snapshots and AMIs: the newest per resource copied to us-west-2, RPO-aware, within AWS's copy limits"
for _ in $(seq 1 600); do
  done_=$(curl -fsS "${AUTH[@]}" "$API/v1/rpo" | json '
items = d["items"]
print(1 if items and all(r["lag_secs"] is not None and r["copied_source_ms"] == r["newest_source_ms"] for r in items) else 0)' 2>/dev/null || echo 0)
  [ "$done_" = 1 ] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited; see $WORK/daemon.log"
  sleep 0.5
done
[ "$done_" = 1 ] || die "copies did not converge in 300 s; see $WORK/daemon.log"
curl -fsS "${AUTH[@]}" "$API/v1/rpo" | json '
print("  %-20s %-24s %4s %8s %8s  %s" % ("kind", "resource", "tier", "rpo (s)", "lag (s)", "past target"))
for r in sorted(d["items"], key=lambda r: (r["kind"], r["tier"], r["resource_id"])):
    print("  %-20s %-24s %4d %8d %8d  %s" % (r["kind"], r["resource_id"][:24], r["tier"], r["rpo_secs"], r["lag_secs"], r["past_target"]))'
"$BIN/pilotlight-lab" counters --endpoint "$ENDPOINT" --json | json '
for c in d.get("copies", []):
    if c["region"] == "us-west-2" and c["max_in_flight"]:
        print("lab proxy: at most %d %s copies in flight at once (AWS limit %d); %d refused for exceeding it" % (c["max_in_flight"], c["kind"], c["limit"], c["refused"]))'

say "inventory: the primary estate captured into the DR region's S3 bucket (what a restore reads)"
for _ in $(seq 1 600); do
  curl -fsS "${AUTH[@]}" "$API/v1/inventory" >"$WORK/inventory.json" 2>/dev/null && break
  kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited; see $WORK/daemon.log"
  sleep 0.5
done
json 'print("  version %d: s3://%s/%s (%d bytes gzip)" % (d["version"], d["bucket"], d["key"], d["size_bytes"]))
print("  " + ", ".join("%s %d" % kv for kv in sorted(d["counts"].items())))' <"$WORK/inventory.json" \
  || die "no inventory after 300 s; see $WORK/daemon.log"

say "readiness: could a restore start now? (every failing item is named in GET /v1/readiness)"
curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"reason":"demo: readiness"}' \
  "$API/v1/reconcilers/readiness/run" >/dev/null
# Copies of the fleets' data volumes may still be in flight: give them up to a minute.
for _ in $(seq 1 120); do
  curl -fsS "${AUTH[@]}" "$API/v1/readiness" >"$WORK/readiness.json" 2>/dev/null \
    && json 'import sys; sys.exit(0 if [c for c in d["checks"] if c["name"] == "volume_copies"][0]["ok"] else 1)' \
      <"$WORK/readiness.json" && break
  sleep 0.5
done
json '
print("  ready to restore: %s" % d["ready"])
for c in d["checks"]:
    print("  %-18s %-4s %s" % (c["name"], "ok" if c["ok"] else "FAIL", "; ".join("%s: %s" % (i["id"], i["reason"]) for i in c["failing"][:3])))' <"$WORK/readiness.json"

say "the restore plan (pilotlight plan): what declaring a disaster now would do, and how long it would take"
"$BIN/pilotlight" --config "$WORK/pilotlight.toml" plan --token-file "$WORK/operator.token"
echo "scoped to tenant acme (its clusters, the shared one once):"
"$BIN/pilotlight" --config "$WORK/pilotlight.toml" plan --tenants acme --json --token-file "$WORK/operator.token" \
  | json 'c=d["capacity"]; print("  %d instances, %d vCPUs; clusters %s" % (c["total"]["count"], c["total"]["vcpus"], ", ".join(x["name"] for x in c["clusters"])))'
echo "dry run of a declared disaster (POST /v1/restores, audited, touches nothing):"
curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"mode":"disaster","dry_run":true}' \
  "$API/v1/restores" | json 'r=d["plan"]["restore"]; print("  estimated RTO %.0f s (API lower bound %.0f s), %d API calls planned" % (r["schedule"]["total_secs"], r["schedule"]["lower_bound"]["secs"], sum(r["calls"].values())))'

say "disaster: the primary region (us-east-1) goes dark"
"$BIN/pilotlight-lab" region --endpoint "$ENDPOINT" down us-east-1 >/dev/null
echo "  every call to us-east-1 now gets its connection closed; the plan still answers from the DR side:"
"$BIN/pilotlight" --config "$WORK/pilotlight.toml" plan --json --token-file "$WORK/operator.token" \
  | json 'r=d["restore"]; print("  %d instances in %d tiers, %d load balancers, %d records, %d problems" % (sum(t["instances"] for t in r["tiers"]), len(r["tiers"]), len(r["load_balancers"]), r["dns"]["records"], len(r["problems"])))'

say "declaring the disaster (pilotlight restore declare): the daemon enters restore mode and restores tier by tier"
"$BIN/pilotlight" --config "$WORK/pilotlight.toml" restore declare --token-file "$WORK/operator.token" \
  --idempotency-key "demo-$API_PORT" | tee "$WORK/declare.txt"
RUN_ID=$(grep -oE 'r-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}' "$WORK/declare.txt" | head -1)
[ -n "$RUN_ID" ] || die "no run id in the declare answer; see $WORK/daemon.log"
curl -fsS "${AUTH[@]}" "$API/v1/status" | json 'print("  /v1/status: mode %s, active run %s" % (d.get("mode"), d.get("active_run")))'

say "watching the restore (pilotlight restore watch $RUN_ID)"
"$BIN/pilotlight" --config "$WORK/pilotlight.toml" restore watch "$RUN_ID" --token-file "$WORK/operator.token" \
  || die "the restore did not succeed; see pilotlight restore status $RUN_ID and $WORK/daemon.log"

say "the RTO report (pilotlight restore status $RUN_ID)"
"$BIN/pilotlight" --config "$WORK/pilotlight.toml" restore status "$RUN_ID" --token-file "$WORK/operator.token"

say "metrics (http://127.0.0.1:$METRICS_PORT/metrics), a selection"
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" \
  | grep -E '^pilotlight_(network_mirrored_resources|reconcile_runs_total|leader|rpo_|copy_events_total|copy_copied_bytes_total|inventory_version|readiness_ready|plan_rto_estimate_seconds|plan_lower_bound_seconds|restore_mode|restore_elapsed_seconds|aws_cache_(hits|misses)_total|aws_calls_total\{service="(ec2|rds)",operation="(CreateSubnet|CopySnapshot|CopyImage|CopyDBSnapshot|CopyDBClusterSnapshot)")' || true

say "the primary region was only ever read (and was down for the restore)"
"$BIN/pilotlight-lab" counters --endpoint "$ENDPOINT" --json \
  | json 'rows=d["rows"]
m=sum(r["calls"] for r in rows if r["mutating"] and r["region"]=="us-east-1")
print("mutating calls to us-east-1 by pilotlight since seeding: %d" % m)
assert m == 0'

say "stopping (SIGTERM: the daemon finishes its cycle, releases the lease and exits)"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || die "the daemon exited with an error; see $WORK/daemon.log"
DAEMON_PID=""
echo "done. Logs and the SQLite store are in $WORK"
