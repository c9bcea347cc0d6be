//! Tests of the proxy's mechanics against a stand-in upstream that records what reaches it
//! (the AWS-facing behaviour is tested through the real SDK and moto in `tests/e2e/lab.rs`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::*;

/// A stand-in upstream on a loopback port: each request is handed to `answer` with the shared
/// log the caller inspects afterwards.
async fn stand_in<T, F, Fut>(answer: F) -> (SocketAddr, Arc<Mutex<Vec<T>>>)
where
    T: Send + 'static,
    F: Fn(Request<hyper::body::Incoming>, Arc<Mutex<Vec<T>>>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<T>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, log.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
}

/// An upstream that answers `<ok n="N"/>` (N = requests so far) and records each request.
async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    stand_in(
        |req: Request<hyper::body::Incoming>, log: Arc<Mutex<Vec<Seen>>>| async move {
            let n = {
                let mut log = log.lock().expect("log");
                log.push(Seen {
                    headers: req.headers().clone(),
                });
                log.len()
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "<ok n=\"{n}\"/>"
            )))))
        },
    )
    .await
}

async fn send(
    endpoint: &str,
    method: Method,
    path: &str,
    service: Option<(&str, &str)>,
    body: &str,
) -> Result<(StatusCode, String), hyper_util::client::legacy::Error> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{endpoint}{path}"));
    if let Some((region, svc)) = service {
        builder = builder
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=AK/20260101/{region}/{svc}/aws4_request, \
                     SignedHeaders=host, Signature=x"
                ),
            )
            .header("content-type", "application/x-www-form-urlencoded");
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let response = client.request(request).await?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

const EC2_WEST: Option<(&str, &str)> = Some(("us-west-2", "ec2"));

#[tokio::test]
async fn forwards_with_account_header_and_counts() {
    let (up, seen) = upstream().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            account_id: Some("000000000042".into()),
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let (status, body) = send(
        &proxy.endpoint(),
        Method::POST,
        "/",
        EC2_WEST,
        "Action=DescribeVpcs&Version=2016-11-15",
    )
    .await
    .expect("call");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<ok n=\"1\"/>"));
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0]
            .headers
            .get(ACCOUNT_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some("000000000042")
    );
    let counts = proxy.counters();
    assert_eq!(counts.count("ec2", "DescribeVpcs", "us-west-2"), 1);
    assert_eq!(counts.mutating_calls_in("us-west-2"), 0);
    proxy.reset_counters();
    assert_eq!(proxy.counters().total(), 0);
}

#[tokio::test]
async fn admin_api_over_http() {
    let (up, _) = upstream().await;
    let proxy = RealismProxy::start(up, ProxyOptions::default())
        .await
        .expect("proxy");
    let ep = proxy.endpoint();
    send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=CreateVpc&CidrBlock=10.0.0.0%2F16",
    )
    .await
    .expect("call");
    let (status, text) = send(&ep, Method::GET, "/__lab/counters", None, "")
        .await
        .expect("counters");
    assert_eq!(status, StatusCode::OK);
    let counts: CallCounts = serde_json::from_str(&text).expect("json");
    assert_eq!(counts.mutating_calls_in("us-west-2"), 1);

    let rule = FaultRule::new(FaultAction::Throttle)
        .service("ec2")
        .operation("CreateVpc")
        .times(1);
    let (status, text) = send(
        &ep,
        Method::POST,
        "/__lab/faults",
        None,
        &serde_json::to_string(&rule).expect("json"),
    )
    .await
    .expect("add");
    assert_eq!(status, StatusCode::CREATED);
    let id: FaultId = serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(&text).expect("json")["id"].clone(),
    )
    .expect("id");
    let (status, body) = send(&ep, Method::POST, "/", EC2_WEST, "Action=CreateVpc")
        .await
        .expect("call");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("<Code>RequestLimitExceeded</Code>"));
    assert_eq!(proxy.fault_hits(id), 1);
    let (_, text) = send(&ep, Method::GET, "/__lab/faults", None, "")
        .await
        .expect("list");
    let listed: Vec<FaultStatus> = serde_json::from_str(&text).expect("json");
    assert_eq!(
        (listed.len(), listed[0].hits, listed[0].remaining),
        (1, 1, Some(0))
    );

    let (status, _) = send(&ep, Method::DELETE, "/__lab/faults", None, "")
        .await
        .expect("clear");
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(proxy.faults().is_empty());
    let (status, _) = send(&ep, Method::POST, "/__lab/faults", None, "{not json")
        .await
        .expect("bad");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(&ep, Method::POST, "/__lab/counters/reset", None, "")
        .await
        .expect("reset");
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(proxy.counters().total(), 0);
    let (status, _) = send(&ep, Method::GET, "/__lab/nope", None, "")
        .await
        .expect("404");
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn drop_response_forwards_then_closes() {
    let (up, seen) = upstream().await;
    let proxy = RealismProxy::start(up, ProxyOptions::default())
        .await
        .expect("proxy");
    let id = proxy.add_fault(
        FaultRule::new(FaultAction::DropResponse)
            .operation("CreateVpc")
            .times(1),
    );
    let dropped = send(
        &proxy.endpoint(),
        Method::POST,
        "/",
        EC2_WEST,
        "Action=CreateVpc",
    )
    .await;
    assert!(
        dropped.is_err(),
        "expected a closed connection, got {dropped:?}"
    );
    assert_eq!(
        seen.lock().expect("seen").len(),
        1,
        "the call reached upstream"
    );
    assert_eq!(proxy.fault_hits(id), 1);
    let row = proxy.counters();
    let row = row.row("ec2", "CreateVpc", "us-west-2").expect("row");
    assert_eq!((row.calls, row.faulted), (1, 1));
    // The rule is spent: the next call is answered.
    let ok = send(
        &proxy.endpoint(),
        Method::POST,
        "/",
        EC2_WEST,
        "Action=CreateVpc",
    )
    .await;
    assert_eq!(ok.expect("answered").0, StatusCode::OK);
}

#[tokio::test]
async fn client_token_replay_and_mismatch() {
    let (up, seen) = upstream().await;
    let proxy = RealismProxy::start(up, ProxyOptions::default())
        .await
        .expect("proxy");
    let ep = proxy.endpoint();
    let run = "Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1&ClientToken=tok-1";
    let first = send(&ep, Method::POST, "/", EC2_WEST, run)
        .await
        .expect("first");
    let again = send(&ep, Method::POST, "/", EC2_WEST, run)
        .await
        .expect("again");
    assert_eq!(first, again);
    assert_eq!(seen.lock().expect("seen").len(), 1);
    let other_region = send(&ep, Method::POST, "/", Some(("us-east-1", "ec2")), run)
        .await
        .expect("other region");
    assert_eq!(other_region.1, "<ok n=\"2\"/>");
    let changed = "Action=RunInstances&ImageId=ami-2&MinCount=1&MaxCount=1&ClientToken=tok-1";
    let (status, body) = send(&ep, Method::POST, "/", EC2_WEST, changed)
        .await
        .expect("changed");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<Code>IdempotentParameterMismatch</Code>"));
    assert_eq!(seen.lock().expect("seen").len(), 2);
}

#[tokio::test]
async fn a_launch_the_client_abandons_still_answers_its_token() {
    // moto answers only when the test opens the gate: the client gives up before that, as a
    // daemon killed mid-call does.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let upstream_gate = gate.clone();
    let (up, seen) = stand_in(
        move |_req: Request<hyper::body::Incoming>, log: Arc<Mutex<Vec<()>>>| {
            let gate = upstream_gate.clone();
            async move {
                let n = {
                    let mut log = log.lock().expect("log");
                    log.push(());
                    log.len()
                };
                let _permit = gate.acquire().await.expect("gate");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                    "<ok n=\"{n}\"/>"
                )))))
            }
        },
    )
    .await;
    let proxy = RealismProxy::start(up, ProxyOptions::default())
        .await
        .expect("proxy");
    let ep = proxy.endpoint();
    let run = "Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1&ClientToken=tok-gone";
    let abandoned = tokio::spawn({
        let ep = ep.clone();
        async move { send(&ep, Method::POST, "/", EC2_WEST, run).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().expect("seen").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the launch never reached moto"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    abandoned.abort();
    let _ = abandoned.await;
    gate.add_permits(10);
    let (status, body) = send(&ep, Method::POST, "/", EC2_WEST, run)
        .await
        .expect("repeat");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body, "<ok n=\"1\"/>",
        "the repeat gets the first launch's answer"
    );
    assert_eq!(seen.lock().expect("seen").len(), 1, "moto launched once");
}

#[tokio::test]
async fn rate_limit_throttles_the_sixth_run_instances() {
    let (up, seen) = upstream().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            // Refill so slow that a loaded machine cannot earn a token mid-test.
            time_scale: 0.001,
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let ep = proxy.endpoint();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _) = send(
            &ep,
            Method::POST,
            "/",
            EC2_WEST,
            "Action=RunInstances&MaxCount=1",
        )
        .await
        .expect("call");
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 503]);
    assert_eq!(seen.lock().expect("seen").len(), 5);
    let counts = proxy.counters();
    assert_eq!(counts.count("ec2", "RunInstances", "us-west-2"), 6);
    assert_eq!(counts.throttled("ec2", "RunInstances", "us-west-2"), 1);
    // Limits off: nothing is throttled.
    let free = RealismProxy::start(
        up,
        ProxyOptions {
            enforce_limits: false,
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    for _ in 0..8 {
        let (status, _) = send(
            &free.endpoint(),
            Method::POST,
            "/",
            EC2_WEST,
            "Action=RunInstances",
        )
        .await
        .expect("call");
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn invalid_options_are_rejected() {
    let (up, _) = upstream().await;
    for opts in [
        ProxyOptions {
            time_scale: 0.0,
            ..ProxyOptions::default()
        },
        ProxyOptions {
            time_scale: f64::NAN,
            ..ProxyOptions::default()
        },
        ProxyOptions {
            account_id: Some("12".into()),
            ..ProxyOptions::default()
        },
    ] {
        assert!(matches!(
            RealismProxy::start(up, opts).await,
            Err(LabError::InvalidOptions { .. })
        ));
    }
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let (up, _) = upstream().await;
    let proxy = RealismProxy::start(up, ProxyOptions::default())
        .await
        .expect("proxy");
    let ep = proxy.endpoint();
    proxy.shutdown().await;
    assert!(
        send(&ep, Method::GET, "/__lab/health", None, "")
            .await
            .is_err()
    );
}

/// A request as the fake moto saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MotoCall {
    action: String,
    region: String,
    account: String,
    params: Vec<(String, String)>,
}

/// A stand-in for moto's copy-related answers (moto 5.2.1's element names): copies complete
/// at once, sources are 4 GiB snapshots and 1-GiB-reported Aurora snapshots.
async fn fake_moto() -> (SocketAddr, Arc<Mutex<Vec<MotoCall>>>) {
    stand_in(|req: Request<hyper::body::Incoming>, log: Arc<Mutex<Vec<MotoCall>>>| async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.expect("body").to_bytes();
                        let call = identify(&parts.method, &parts.uri, &parts.headers, &body);
                        let account = parts
                            .headers
                            .get(ACCOUNT_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let copies = {
                            let mut log = log.lock().expect("log");
                            log.push(MotoCall {
                                action: call.operation.clone(),
                                region: call.region.clone(),
                                account,
                                params: call.params.clone(),
                            });
                            log.iter()
                                .filter(|c| {
                                    c.action == "CopySnapshot"
                                        && !c.params.contains(&(
                                            "SourceSnapshotId".to_owned(),
                                            "snap-missing".to_owned(),
                                        ))
                                })
                                .count()
                        };
                        let item = |id: &str| {
                            format!(
                                "<item><tagSet><item><key>k</key><value>v</value></item></tagSet>\
                                 <snapshotId>{id}</snapshotId><status>completed</status>\
                                 <progress>100%</progress><volumeSize>4</volumeSize></item>"
                            )
                        };
                        let (status, text) = match call.operation.as_str() {
                            "CopySnapshot" if call.param("SourceSnapshotId") == Some("snap-missing") => (
                                400,
                                "<Response><Errors><Error><Code>InvalidSnapshot.NotFound</Code>\
                                 <Message>no</Message></Error></Errors></Response>"
                                    .to_owned(),
                            ),
                            "CopySnapshot" => (
                                200,
                                format!(
                                    "<CopySnapshotResponse><tagSet/><snapshotId>snap-copy-{copies}\
                                     </snapshotId></CopySnapshotResponse>"
                                ),
                            ),
                            "DescribeSnapshots" => {
                                let ids: Vec<String> = match call.param("SnapshotId.1") {
                                    Some(id) => vec![id.to_owned()],
                                    None => (1..=copies).map(|n| format!("snap-copy-{n}")).collect(),
                                };
                                let items: String = ids.iter().map(|id| item(id)).collect();
                                (
                                    200,
                                    format!(
                                        "<DescribeSnapshotsResponse><snapshotSet>{items}\
                                         </snapshotSet></DescribeSnapshotsResponse>"
                                    ),
                                )
                            }
                            "CopyDBClusterSnapshot" => (
                                200,
                                format!(
                                    "<CopyDBClusterSnapshotResponse><CopyDBClusterSnapshotResult>\
                                     <DBClusterSnapshot><DBClusterSnapshotIdentifier>{}\
                                     </DBClusterSnapshotIdentifier><AllocatedStorage>1\
                                     </AllocatedStorage><Status>available</Status>\
                                     <PercentProgress>100</PercentProgress></DBClusterSnapshot>\
                                     </CopyDBClusterSnapshotResult></CopyDBClusterSnapshotResponse>",
                                    call.param("TargetDBClusterSnapshotIdentifier")
                                        .unwrap_or_default()
                                ),
                            ),
                            "DescribeDBClusterSnapshots" => (
                                200,
                                "<DescribeDBClusterSnapshotsResponse><DescribeDBClusterSnapshotsResult>\
                                 <DBClusterSnapshots><DBClusterSnapshot><DBClusterSnapshotIdentifier>\
                                 cl-1</DBClusterSnapshotIdentifier><AllocatedStorage>1</AllocatedStorage>\
                                 <Status>available</Status></DBClusterSnapshot></DBClusterSnapshots>\
                                 </DescribeDBClusterSnapshotsResult></DescribeDBClusterSnapshotsResponse>"
                                    .to_owned(),
                            ),
                            _ => (200, "<ok/>".to_owned()),
                        };
                        let mut response = Response::new(Full::new(Bytes::from(text)));
                        *response.status_mut() = StatusCode::from_u16(status).expect("status");
                        Ok::<_, Infallible>(response)
    })
    .await
}

fn calls_of(seen: &Mutex<Vec<MotoCall>>, action: &str) -> Vec<MotoCall> {
    seen.lock()
        .expect("seen")
        .iter()
        .filter(|c| c.action == action)
        .cloned()
        .collect()
}

const COPY: &str = "Action=CopySnapshot&SourceRegion=us-east-1&SourceSnapshotId=snap-src";

/// The `<status>` and `<progress>` of `id` in a DescribeSnapshots answer.
fn state_of(xml: &str, id: &str) -> Option<(String, String)> {
    let at = xml.find(&format!("<snapshotId>{id}</snapshotId>"))?;
    let rest = &xml[at..];
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = rest.find(&open)? + open.len();
        let end = start + rest[start..].find('<')?;
        Some(rest[start..end].to_owned())
    };
    Some((field("status")?, field("progress")?))
}

#[tokio::test]
async fn copies_stay_pending_count_against_the_limit_and_end_when_deleted() {
    let (up, seen) = fake_moto().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            account_id: Some("000000000042".into()),
            enforce_limits: false,
            // 4 GiB at 2 GiB/s: 2 s per copy.
            copy_gib_per_sec: 2.0,
            copy_min_secs: 0.0,
            copy_limits: BTreeMap::from([("ebs".to_owned(), 2)]),
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let ep = proxy.endpoint();

    // A copy moto refuses takes no place.
    let (status, _) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=CopySnapshot&SourceRegion=us-east-1&SourceSnapshotId=snap-missing",
    )
    .await
    .expect("copy");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(proxy.copies_in_flight("ebs", "us-west-2"), 0);

    let first_sent = std::time::Instant::now();
    let (status, body) = send(&ep, Method::POST, "/", EC2_WEST, COPY)
        .await
        .expect("copy 1");
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<snapshotId>snap-copy-1</snapshotId>"),
        "{body}"
    );
    // The size came from a describe of the source, in the source region, as the account.
    let lookups = calls_of(&seen, "DescribeSnapshots");
    assert_eq!(lookups.len(), 1);
    assert_eq!(
        (lookups[0].region.as_str(), lookups[0].account.as_str()),
        ("us-east-1", "000000000042")
    );
    assert!(
        lookups[0]
            .params
            .contains(&("SnapshotId.1".to_owned(), "snap-src".to_owned()))
    );

    // The DR describe shows it pending below 100 %; other items stay as moto says.
    let (_, listed) = send(&ep, Method::POST, "/", EC2_WEST, "Action=DescribeSnapshots")
        .await
        .expect("describe");
    let (state, progress) = state_of(&listed, "snap-copy-1").expect("copy listed");
    assert_eq!(state, "pending");
    let pct: u32 = progress.trim_end_matches('%').parse().expect("pct");
    assert!(pct < 100, "{progress}");
    assert!(listed.contains("<item><key>k</key><value>v</value></item>"));

    let (status, _) = send(&ep, Method::POST, "/", EC2_WEST, COPY)
        .await
        .expect("copy 2");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(proxy.copies_in_flight("ebs", "us-west-2"), 2);
    // The third is refused without reaching moto.
    let copies_before = calls_of(&seen, "CopySnapshot").len();
    let (status, body) = send(&ep, Method::POST, "/", EC2_WEST, COPY)
        .await
        .expect("copy 3");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("<Code>ResourceLimitExceeded</Code>"),
        "{body}"
    );
    assert!(body.contains("The limit is 2 for this destination region."));
    assert_eq!(calls_of(&seen, "CopySnapshot").len(), copies_before);
    // Other regions have their own limit.
    let (status, _) = send(&ep, Method::POST, "/", Some(("eu-west-1", "ec2")), COPY)
        .await
        .expect("copy to another region");
    assert_eq!(status, StatusCode::OK);

    let (_, text) = send(&ep, Method::GET, "/__lab/counters", None, "")
        .await
        .expect("counters");
    let counts: CallCounts = serde_json::from_str(&text).expect("json");
    let row = counts.copy_row("ebs", "us-west-2").expect("row");
    assert_eq!(
        (
            row.in_flight,
            row.max_in_flight,
            row.limit,
            row.started,
            row.refused
        ),
        (2, 2, 2, 2, 1)
    );
    assert_eq!(counts.copies_in_flight("ebs", "eu-west-1"), 1);

    // Deleting an in-flight copy frees its place.
    let (status, _) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=DeleteSnapshot&SnapshotId=snap-copy-2",
    )
    .await
    .expect("delete");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(proxy.copies_in_flight("ebs", "us-west-2"), 1);
    let (status, _) = send(&ep, Method::POST, "/", EC2_WEST, COPY)
        .await
        .expect("copy 4");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(proxy.max_copies_in_flight("ebs", "us-west-2"), 2);

    // After 2 s the first copy shows moto's completed answer.
    let deadline = first_sent + Duration::from_secs(20);
    loop {
        let (_, listed) = send(&ep, Method::POST, "/", EC2_WEST, "Action=DescribeSnapshots")
            .await
            .expect("describe");
        let (state, progress) = state_of(&listed, "snap-copy-1").expect("listed");
        if state == "completed" {
            assert_eq!(progress, "100%");
            assert!(first_sent.elapsed() >= Duration::from_secs(2));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "copy never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.reset_counters();
    let counts = proxy.counters();
    let row = counts.copy_row("ebs", "us-west-2").expect("row");
    assert_eq!((row.started, row.refused), (0, 0));
    assert!(row.max_in_flight <= 2);
}

#[tokio::test]
async fn aurora_copy_answer_is_rewritten_and_sized_as_10_gib() {
    let (up, seen) = fake_moto().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            enforce_limits: false,
            copy_min_secs: 0.0,
            // 10 GiB at 0.01 GiB/s: 1,000 s, in flight for the whole test.
            copy_gib_per_sec: 0.01,
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let (status, body) = send(
        &proxy.endpoint(),
        Method::POST,
        "/",
        Some(("us-west-2", "rds")),
        "Action=CopyDBClusterSnapshot&SourceDBClusterSnapshotIdentifier=\
         arn%3Aaws%3Ards%3Aus-east-1%3A123456789012%3Acluster-snapshot%3Acl-1&\
         TargetDBClusterSnapshotIdentifier=cl-1-dr",
    )
    .await
    .expect("copy");
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<Status>copying</Status>"), "{body}");
    assert!(
        body.contains("<PercentProgress>0</PercentProgress>"),
        "{body}"
    );
    let lookup = calls_of(&seen, "DescribeDBClusterSnapshots");
    assert_eq!(lookup.len(), 1);
    assert_eq!(lookup[0].region, "us-east-1");
    assert_eq!(lookup[0].account, DEFAULT_ACCOUNT);
    assert!(
        lookup[0]
            .params
            .contains(&("DBClusterSnapshotIdentifier".to_owned(), "cl-1".to_owned()))
    );
    assert_eq!(proxy.copies_in_flight("aurora", "us-west-2"), 1);
    assert_eq!(proxy.copies_in_flight("nope", "us-west-2"), 0);
}

#[tokio::test]
async fn copy_options_are_validated() {
    let (up, _) = upstream().await;
    for opts in [
        ProxyOptions {
            copy_gib_per_sec: 0.0,
            ..ProxyOptions::default()
        },
        ProxyOptions {
            copy_min_secs: -1.0,
            ..ProxyOptions::default()
        },
        ProxyOptions {
            copy_min_secs: f64::INFINITY,
            ..ProxyOptions::default()
        },
        ProxyOptions {
            copy_limits: BTreeMap::from([("efs".to_owned(), 3)]),
            ..ProxyOptions::default()
        },
    ] {
        assert!(matches!(
            RealismProxy::start(up, opts).await,
            Err(LabError::InvalidOptions { .. })
        ));
    }
}

/// One JSON 1.0 request as the JSON stand-in saw it.
#[derive(Debug, Clone)]
struct JsonCall {
    path: String,
    target: Option<String>,
    content_type: Option<String>,
    account: Option<String>,
    body: serde_json::Value,
}

/// A stand-in for moto's CloudWatch JSON 1.0: `GetMetricStatistics` answers one datapoint,
/// `DescribeAlarmHistory` moto's HTML 500, anything else a JSON `InvalidParameterValue` 400
/// with moto's `x-amzn-query-error` header.
async fn json_moto() -> (SocketAddr, Arc<Mutex<Vec<JsonCall>>>) {
    stand_in(|req: Request<hyper::body::Incoming>, log: Arc<Mutex<Vec<JsonCall>>>| async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.expect("body").to_bytes();
                        let header = |name: &str| {
                            parts
                                .headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        let target = header("x-amz-target");
                        log.lock().expect("log").push(JsonCall {
                            path: parts.uri.path().to_owned(),
                            target: target.clone(),
                            content_type: header("content-type"),
                            account: header(ACCOUNT_HEADER),
                            body: serde_json::from_slice(&body).expect("JSON request"),
                        });
                        let op = target.as_deref().and_then(|t| t.rsplit('.').next());
                        let mut response = match op {
                            Some("GetMetricStatistics") => Response::new(Full::new(
                                Bytes::from_static(
                                    br#"{"Label": "CPUUtilization", "Datapoints": [{"Timestamp": 1795552165, "SampleCount": 5.0, "Maximum": 87.5, "Unit": "Percent"}]}"#,
                                ),
                            )),
                            Some("DescribeAlarmHistory") => {
                                let mut r = Response::new(Full::new(Bytes::from_static(
                                    b"<!doctype html><title>500 Internal Server Error</title>",
                                )));
                                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                                r
                            }
                            _ => {
                                let mut r = Response::new(Full::new(Bytes::from_static(
                                    br#"{"__type": "GraniteServiceVersion20100801#InvalidParameterValueException", "message": "bad value"}"#,
                                )));
                                *r.status_mut() = StatusCode::BAD_REQUEST;
                                r.headers_mut().insert(
                                    "x-amzn-query-error",
                                    http::HeaderValue::from_static("InvalidParameterValue;Sender"),
                                );
                                r
                            }
                        };
                        response
                            .headers_mut()
                            .insert("content-type", http::HeaderValue::from_static("text"));
                        Ok::<_, Infallible>(response)
    })
    .await
}

/// Sends a CBOR call for `op` signed for CloudWatch in us-east-1; returns status, headers
/// and the decoded CBOR answer.
async fn send_cbor(
    endpoint: &str,
    op: &str,
    body: &cbor::Value,
) -> (StatusCode, HeaderMap, cbor::Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "{endpoint}/service/GraniteServiceVersion20100801/operation/{op}"
        ))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/monitoring/aws4_request, \
             SignedHeaders=host, Signature=x",
        )
        .header("content-type", "application/cbor")
        .header("smithy-protocol", "rpc-v2-cbor")
        .body(Full::new(Bytes::from(cbor::encode(body))))
        .expect("request");
    let response = client.request(request).await.expect("call");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, cbor::decode(&bytes).expect("CBOR answer"))
}

fn cbor_map(entries: Vec<(&str, cbor::Value)>) -> cbor::Value {
    cbor::Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (cbor::Value::text(k), v))
            .collect(),
    )
}

#[tokio::test]
async fn cbor_calls_reach_moto_as_json_and_answer_in_cbor() {
    let (up, seen) = json_moto().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            account_id: Some("000000000077".into()),
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let ep = proxy.endpoint();
    let request = cbor_map(vec![
        ("Namespace", cbor::Value::text("AWS/EC2")),
        ("MetricName", cbor::Value::text("CPUUtilization")),
        ("StartTime", cbor::Value::Timestamp(1_795_548_565.0)),
        ("EndTime", cbor::Value::Timestamp(1_795_552_165.5)),
        ("Period", cbor::Value::Integer(3600)),
        (
            "Statistics",
            cbor::Value::Array(vec![cbor::Value::text("Maximum")]),
        ),
    ]);
    let (status, headers, answer) = send_cbor(&ep, "GetMetricStatistics", &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/cbor")
    );
    assert_eq!(
        headers.get("smithy-protocol").and_then(|v| v.to_str().ok()),
        Some("rpc-v2-cbor")
    );
    let Some(cbor::Value::Array(points)) = answer.get("Datapoints") else {
        panic!("no datapoints: {answer:?}");
    };
    assert_eq!(
        points[0].get("Timestamp"),
        Some(&cbor::Value::Timestamp(1_795_552_165.0))
    );
    assert_eq!(points[0].get("Maximum"), Some(&cbor::Value::Float(87.5)));

    let call = seen.lock().expect("seen")[0].clone();
    assert_eq!(call.path, "/");
    assert_eq!(
        call.target.as_deref(),
        Some("GraniteServiceVersion20100801.GetMetricStatistics")
    );
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/x-amz-json-1.0")
    );
    assert_eq!(call.account.as_deref(), Some("000000000077"));
    assert_eq!(call.body["StartTime"], 1_795_548_565_u64);
    assert_eq!(call.body["EndTime"], 1_795_552_165.5);
    assert_eq!(call.body["Period"], 3600);
    assert_eq!(call.body["Statistics"][0], "Maximum");

    // moto's JSON error keeps its status and query-compatible code.
    let (status, headers, answer) = send_cbor(&ep, "ListMetrics", &cbor_map(vec![])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        headers
            .get("x-amzn-query-error")
            .and_then(|v| v.to_str().ok()),
        Some("InvalidParameterValue;Sender")
    );
    assert_eq!(answer.get("message"), Some(&cbor::Value::text("bad value")));
    // moto's HTML 500 becomes a CBOR InternalFailure.
    let (status, _, answer) = send_cbor(&ep, "DescribeAlarmHistory", &cbor_map(vec![])).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        answer.get("__type"),
        Some(&cbor::Value::text("InternalFailure"))
    );

    // Faults fire before the translation and answer in CBOR; moto is not called.
    let rule = proxy.add_fault(
        FaultRule::new(FaultAction::Throttle)
            .service("cloudwatch")
            .operation("GetMetricData")
            .times(1),
    );
    let (status, headers, answer) = send_cbor(&ep, "GetMetricData", &cbor_map(vec![])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.get("__type"), Some(&cbor::Value::text("Throttling")));
    assert_eq!(
        headers
            .get("x-amzn-query-error")
            .and_then(|v| v.to_str().ok()),
        Some("Throttling;Sender")
    );
    assert_eq!(proxy.fault_hits(rule), 1);
    assert_eq!(seen.lock().expect("seen").len(), 3);

    // A body that is not CBOR never reaches moto.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let bad = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "{ep}/service/GraniteServiceVersion20100801/operation/PutMetricData"
        ))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/monitoring/aws4_request, \
             SignedHeaders=host, Signature=x",
        )
        .body(Full::new(Bytes::from_static(&[0xbf, 0x61])))
        .expect("request");
    let response = client.request(bad).await.expect("call");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        cbor::decode(&bytes).expect("CBOR").get("__type"),
        Some(&cbor::Value::text("SerializationException"))
    );
    assert_eq!(seen.lock().expect("seen").len(), 3);

    let counts = proxy.counters();
    for (op, n) in [
        ("GetMetricStatistics", 1),
        ("ListMetrics", 1),
        ("DescribeAlarmHistory", 1),
        ("GetMetricData", 1),
        ("PutMetricData", 1),
    ] {
        assert_eq!(counts.count("cloudwatch", op, "us-east-1"), n, "{op}");
    }
    assert_eq!(
        counts.throttled("cloudwatch", "GetMetricData", "us-east-1"),
        1
    );
    assert_eq!(counts.mutating_calls_in("us-east-1"), 1);
}

/// A request as the restore stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RestoreCall {
    operation: String,
    region: String,
    account: String,
    params: Vec<(String, String)>,
    path: String,
}

/// A stand-in for moto's restore-related answers (moto 5.2.1's element names): `RunInstances`
/// launches `MinCount` instances (`i-N`) in the placement AZ, the subnet's AZ or `<region>a`,
/// and fails for `ImageId=ami-bad`; `DescribeSubnets` puts `subnet-c` in `us-west-2c`;
/// `DescribeInstances` and `DescribeInstanceStatus` show every instance running; Route 53
/// answers every change with moto's one id and `GetChange` with `INSYNC`, echoing the id.
async fn restore_moto() -> (SocketAddr, Arc<Mutex<Vec<RestoreCall>>>) {
    stand_in(
        |req: Request<hyper::body::Incoming>, log: Arc<Mutex<Vec<RestoreCall>>>| async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            let call = identify(&parts.method, &parts.uri, &parts.headers, &body);
            let account = parts
                .headers
                .get(ACCOUNT_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let mut log = log.lock().expect("log");
            log.push(RestoreCall {
                operation: call.operation.clone(),
                region: call.region.clone(),
                account,
                params: call.params.clone(),
                path: parts.uri.path().to_owned(),
            });
            // Every instance launched so far: (id, AZ), one reservation per call.
            let mut reservations: Vec<Vec<(String, String)>> = Vec::new();
            let mut n = 0;
            for c in log.iter().filter(|c| {
                c.operation == "RunInstances"
                    && !c.params.contains(&("ImageId".into(), "ami-bad".into()))
            }) {
                let p = |k: &str| {
                    c.params
                        .iter()
                        .find(|(pk, _)| pk == k)
                        .map(|(_, v)| v.clone())
                };
                let az = p("Placement.AvailabilityZone").unwrap_or_else(|| {
                    if p("SubnetId").as_deref() == Some("subnet-c") {
                        "us-west-2c".into()
                    } else {
                        format!("{}a", c.region)
                    }
                });
                let count: usize = p("MinCount").and_then(|v| v.parse().ok()).unwrap_or(1);
                reservations.push(
                    (0..count)
                        .map(|_| {
                            n += 1;
                            (format!("i-{n}"), az.clone())
                        })
                        .collect(),
                );
            }
            drop(log);
            let item = |(id, az): &(String, String), state: &str, code: u8| {
                format!(
                    "<item><instanceId>{id}</instanceId><instanceState><code>{code}\
                                 </code><name>{state}</name></instanceState><placement>\
                                 <availabilityZone>{az}</availabilityZone></placement></item>"
                )
            };
            let (status, text) = match call.operation.as_str() {
                "RunInstances" if call.param("ImageId") == Some("ami-bad") => (
                    400,
                    "<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code>\
                                 <Message>no</Message></Error></Errors></Response>"
                        .to_owned(),
                ),
                "RunInstances" => {
                    let items: String = reservations
                        .last()
                        .map(|r| r.iter().map(|i| item(i, "pending", 0)).collect())
                        .unwrap_or_default();
                    (
                        200,
                        format!(
                            "<RunInstancesResponse><reservationId>r-{}\
                                         </reservationId><instancesSet>{items}</instancesSet>\
                                         </RunInstancesResponse>",
                            reservations.len()
                        ),
                    )
                }
                "DescribeInstances" => {
                    let sets: String = reservations
                        .iter()
                        .map(|r| {
                            let items: String = r.iter().map(|i| item(i, "running", 16)).collect();
                            format!("<item><instancesSet>{items}</instancesSet></item>")
                        })
                        .collect();
                    (
                        200,
                        format!(
                            "<DescribeInstancesResponse><reservationSet>{sets}\
                                         </reservationSet></DescribeInstancesResponse>"
                        ),
                    )
                }
                "DescribeInstanceStatus" => {
                    let items: String = reservations
                        .iter()
                        .flatten()
                        .map(|(id, az)| {
                            format!(
                                "<item><availabilityZone>{az}</availabilityZone>\
                                             <instanceId>{id}</instanceId><instanceState><code>16\
                                             </code><name>running</name></instanceState>\
                                             <instanceStatus><details><item><name>reachability\
                                             </name><status>passed</status></item></details>\
                                             <status>ok</status></instanceStatus><systemStatus>\
                                             <status>ok</status></systemStatus></item>"
                            )
                        })
                        .collect();
                    (
                        200,
                        format!(
                            "<DescribeInstanceStatusResponse><instanceStatusSet>\
                                         {items}</instanceStatusSet>\
                                         </DescribeInstanceStatusResponse>"
                        ),
                    )
                }
                "DescribeSubnets" => (
                    200,
                    "<DescribeSubnetsResponse><subnetSet><item><availabilityZoneId>\
                                 usw2-az3</availabilityZoneId><subnetId>subnet-c</subnetId>\
                                 <availabilityZone>us-west-2c</availabilityZone></item>\
                                 </subnetSet></DescribeSubnetsResponse>"
                        .to_owned(),
                ),
                "ChangeResourceRecordSets" => (
                    200,
                    "<ChangeResourceRecordSetsResponse><ChangeInfo><Id>\
                                 /change/C2682N5HXP0BZ4</Id><Status>INSYNC</Status>\
                                 </ChangeInfo></ChangeResourceRecordSetsResponse>"
                        .to_owned(),
                ),
                "GetChange" => (
                    200,
                    format!(
                        "<GetChangeResponse><ChangeInfo><Id>{}</Id><Status>INSYNC\
                                     </Status></ChangeInfo></GetChangeResponse>",
                        parts.uri.path().rsplit('/').next().unwrap_or_default()
                    ),
                ),
                _ => (200, "<ok/>".to_owned()),
            };
            let mut response = Response::new(Full::new(Bytes::from(text)));
            *response.status_mut() = StatusCode::from_u16(status).expect("status");
            Ok::<_, Infallible>(response)
        },
    )
    .await
}

fn restore_calls(seen: &Mutex<Vec<RestoreCall>>, operation: &str) -> Vec<RestoreCall> {
    seen.lock()
        .expect("seen")
        .iter()
        .filter(|c| c.operation == operation)
        .cloned()
        .collect()
}

fn param_of<'a>(call: &'a RestoreCall, name: &str) -> Option<&'a str> {
    call.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The instance ids of an EC2 answer, in order.
fn instance_ids(xml: &str) -> Vec<String> {
    xml.split("<instanceId>")
        .skip(1)
        .filter_map(|s| s.split_once("</instanceId>").map(|(id, _)| id.to_owned()))
        .collect()
}

#[tokio::test]
async fn launches_take_max_count_and_capacity_cuts_or_refuses_them() {
    let (up, seen) = restore_moto().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            account_id: Some("000000000042".into()),
            enforce_limits: false,
            launch_max_count: true,
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let ep = proxy.endpoint();

    // MaxCount: moto is asked for 5 (MinCount = MaxCount = 5) and launches 5.
    let (status, body) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=RunInstances&ImageId=ami-1&InstanceType=m5.large&MinCount=1&MaxCount=5",
    )
    .await
    .expect("launch");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(instance_ids(&body).len(), 5);
    let runs = restore_calls(&seen, "RunInstances");
    assert_eq!(
        (
            param_of(&runs[0], "MinCount"),
            param_of(&runs[0], "MaxCount")
        ),
        (Some("5"), Some("5"))
    );
    // Nothing else reached moto: no rule, no subnet lookup.
    assert_eq!(seen.lock().expect("seen").len(), 1);

    // After 2 r5.2xlarge in us-west-2c, none: a launch into subnet-c (AZ from a lookup of the
    // subnet, as the account, uncounted) is cut to 2, the next one refused before moto.
    let rule = proxy
        .add_capacity_rule(CapacityRule::new("r5.2xlarge", "us-west-2c", 2))
        .expect("rule");
    let into_c = "Action=RunInstances&ImageId=ami-1&InstanceType=r5.2xlarge&SubnetId=subnet-c&\
                  MinCount=1&MaxCount=5";
    let (status, body) = send(&ep, Method::POST, "/", EC2_WEST, into_c)
        .await
        .expect("launch into c");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(instance_ids(&body).len(), 2);
    let lookups = restore_calls(&seen, "DescribeSubnets");
    assert_eq!(lookups.len(), 1);
    assert_eq!(
        (lookups[0].region.as_str(), lookups[0].account.as_str()),
        ("us-west-2", "000000000042")
    );
    assert_eq!(param_of(&lookups[0], "SubnetId.1"), Some("subnet-c"));
    let runs_before = restore_calls(&seen, "RunInstances").len();
    let (status, body) = send(&ep, Method::POST, "/", EC2_WEST, into_c)
        .await
        .expect("refused");
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("<Code>InsufficientInstanceCapacity</Code>"),
        "{body}"
    );
    assert!(
        body.contains(
            "We currently do not have sufficient r5.2xlarge capacity in the Availability Zone \
             you requested (us-west-2c)."
        ),
        "{body}"
    );
    assert_eq!(restore_calls(&seen, "RunInstances").len(), runs_before);
    // The same type placed in another AZ still launches.
    let (status, _) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=RunInstances&ImageId=ami-1&InstanceType=r5.2xlarge&\
         Placement.AvailabilityZone=us-west-2b&MinCount=3&MaxCount=3",
    )
    .await
    .expect("other AZ");
    assert_eq!(status, StatusCode::OK);
    let status = &proxy.capacity_rules()[0];
    assert_eq!(status.id, rule);
    assert_eq!((status.launched, status.refused), (2, 1));
    // The proxy's own lookup is not counted; the calls are.
    let counts = proxy.counters();
    assert_eq!(counts.count("ec2", "DescribeSubnets", "us-west-2"), 0);
    assert_eq!(counts.count("ec2", "RunInstances", "us-west-2"), 4);

    // A launch moto fails gives its reservation back.
    proxy.clear_capacity_rules();
    proxy
        .add_capacity_rule(CapacityRule::new("c5.large", "us-west-2a", 0).available(4))
        .expect("rule");
    let (status, _) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=RunInstances&ImageId=ami-bad&InstanceType=c5.large&\
         Placement.AvailabilityZone=us-west-2a&MinCount=1&MaxCount=3",
    )
    .await
    .expect("bad AMI");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(proxy.capacity_rules()[0].launched, 0);
}

#[tokio::test]
async fn client_token_replay_survives_the_rewrite_and_refusals_are_not_cached() {
    let (up, seen) = restore_moto().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            enforce_limits: false,
            launch_max_count: true,
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let ep = proxy.endpoint();
    let run = "Action=RunInstances&ImageId=ami-1&InstanceType=t3.micro&MinCount=1&MaxCount=3&\
               ClientToken=tok-1";
    let first = send(&ep, Method::POST, "/", EC2_WEST, run)
        .await
        .expect("first");
    assert_eq!(instance_ids(&first.1).len(), 3);
    let again = send(&ep, Method::POST, "/", EC2_WEST, run)
        .await
        .expect("again");
    assert_eq!(first, again);
    assert_eq!(restore_calls(&seen, "RunInstances").len(), 1);
    // Changing MaxCount is a different request.
    let (status, body) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        &run.replace("MaxCount=3", "MaxCount=4"),
    )
    .await
    .expect("mismatch");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("IdempotentParameterMismatch"));

    // Refused for capacity, then retried with the same token once capacity is back.
    proxy
        .add_capacity_rule(CapacityRule::in_region("t3.micro", "us-west-2", 0))
        .expect("rule");
    let retry = run.replace("tok-1", "tok-2");
    let (status, _) = send(&ep, Method::POST, "/", EC2_WEST, &retry)
        .await
        .expect("refused");
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    proxy.clear_capacity_rules();
    let (status, body) = send(&ep, Method::POST, "/", EC2_WEST, &retry)
        .await
        .expect("launched");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(instance_ids(&body), vec!["i-4", "i-5", "i-6"]);
    assert_eq!(restore_calls(&seen, "RunInstances").len(), 2);
}

#[tokio::test]
async fn without_options_launches_and_answers_are_moto_s() {
    let (up, seen) = restore_moto().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            enforce_limits: false,
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let ep = proxy.endpoint();
    let (_, body) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=RunInstances&ImageId=ami-1&MinCount=2&MaxCount=5",
    )
    .await
    .expect("launch");
    assert_eq!(instance_ids(&body).len(), 2);
    let runs = restore_calls(&seen, "RunInstances");
    assert_eq!(param_of(&runs[0], "MaxCount"), Some("5"));
    let (_, listed) = send(&ep, Method::POST, "/", EC2_WEST, "Action=DescribeInstances")
        .await
        .expect("describe");
    assert_eq!(listed.matches("<name>running</name>").count(), 2);
    let r53 = Some(("us-east-1", "route53"));
    let (_, change) = send(
        &ep,
        Method::POST,
        "/2013-04-01/hostedzone/Z1/rrset",
        r53,
        "<x/>",
    )
    .await
    .expect("change");
    assert!(change.contains("<Id>/change/C2682N5HXP0BZ4</Id><Status>INSYNC</Status>"));
    let (_, got) = send(
        &ep,
        Method::GET,
        "/2013-04-01/change/C2682N5HXP0BZ4",
        r53,
        "",
    )
    .await
    .expect("get change");
    assert!(
        got.contains("<Id>C2682N5HXP0BZ4</Id>"),
        "moto's echo untouched: {got}"
    );
}

/// The `<name>` of `id`'s `instanceState` in an EC2 answer.
fn state_name(xml: &str, id: &str) -> Option<String> {
    let at = xml.find(&format!("<instanceId>{id}</instanceId>"))?;
    let rest = &xml[at..];
    let start = rest.find("<instanceState>")?;
    let rest = &rest[start..];
    let name = rest.find("<name>")? + "<name>".len();
    let end = rest[name..].find('<')?;
    Some(rest[name..name + end].to_owned())
}

#[tokio::test]
async fn instances_and_dns_changes_stay_pending_for_their_scaled_time() {
    let (up, _) = restore_moto().await;
    let proxy = RealismProxy::start(
        up,
        ProxyOptions {
            enforce_limits: false,
            // 100 s and 150 s of AWS time at 100×: 1 s and 1.5 s.
            time_scale: 100.0,
            instance_pending_secs: 100.0,
            dns_pending_secs: 150.0,
            ..ProxyOptions::default()
        },
    )
    .await
    .expect("proxy");
    let ep = proxy.endpoint();
    let launched_at = std::time::Instant::now();
    let (_, body) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=RunInstances&ImageId=ami-1&MinCount=2&MaxCount=2",
    )
    .await
    .expect("launch");
    assert_eq!(instance_ids(&body), vec!["i-1", "i-2"]);
    let describe = || send(&ep, Method::POST, "/", EC2_WEST, "Action=DescribeInstances");
    let (_, listed) = describe().await.expect("describe");
    assert_eq!(state_name(&listed, "i-1").as_deref(), Some("pending"));
    assert_eq!(state_name(&listed, "i-2").as_deref(), Some("pending"));
    assert!(listed.contains("<code>0</code><name>pending</name>"));
    // Another region's describe is not touched.
    let (_, east) = send(
        &ep,
        Method::POST,
        "/",
        Some(("us-east-1", "ec2")),
        "Action=DescribeInstances",
    )
    .await
    .expect("describe east");
    assert!(!east.contains("pending"));
    // Instance status: left out unless all instances are asked for.
    let (_, statuses) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=DescribeInstanceStatus",
    )
    .await
    .expect("status");
    assert!(instance_ids(&statuses).is_empty(), "{statuses}");
    let (_, all) = send(
        &ep,
        Method::POST,
        "/",
        EC2_WEST,
        "Action=DescribeInstanceStatus&IncludeAllInstances=true",
    )
    .await
    .expect("status all");
    assert_eq!(instance_ids(&all).len(), 2);
    assert_eq!(
        all.matches("<status>not-applicable</status>").count(),
        4,
        "{all}"
    );
    assert!(!all.contains("reachability"));

    // Route 53: each change its own id, PENDING in the answer and in GetChange.
    let r53 = Some(("us-east-1", "route53"));
    let change = |zone: &'static str| {
        let ep = ep.clone();
        async move {
            send(
                &ep,
                Method::POST,
                &format!("/2013-04-01/hostedzone/{zone}/rrset"),
                r53,
                "<x/>",
            )
            .await
            .expect("change")
            .1
        }
    };
    let changed_at = std::time::Instant::now();
    let (a, b) = (change("Z1").await, change("Z2").await);
    let id_of = |xml: &str| {
        xml.split_once("<Id>/change/")
            .and_then(|(_, rest)| rest.split_once("</Id>"))
            .map(|(id, _)| id.to_owned())
            .expect("change id")
    };
    let (id_a, id_b) = (id_of(&a), id_of(&b));
    assert_ne!(id_a, id_b);
    assert_ne!(id_a, "C2682N5HXP0BZ4");
    assert!(a.contains("<Status>PENDING</Status>"), "{a}");
    let get = |id: String| {
        let ep = ep.clone();
        async move {
            send(
                &ep,
                Method::GET,
                &format!("/2013-04-01/change/{id}"),
                r53,
                "",
            )
            .await
            .expect("get change")
            .1
        }
    };
    let got = get(id_a.clone()).await;
    assert!(
        got.contains(&format!("<Id>/change/{id_a}</Id><Status>PENDING</Status>")),
        "{got}"
    );

    // Then running and INSYNC, not before their time.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed) = describe().await.expect("describe");
        if state_name(&listed, "i-1").as_deref() == Some("running") {
            assert!(launched_at.elapsed() >= Duration::from_secs(1));
            assert!(listed.contains("<code>16</code><name>running</name>"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let got = get(id_b.clone()).await;
        if got.contains("<Status>INSYNC</Status>") {
            assert!(changed_at.elapsed() >= Duration::from_millis(1500));
            assert!(got.contains(&format!("<Id>/change/{id_b}</Id>")), "{got}");
            break;
        }
        assert!(got.contains("<Status>PENDING</Status>"), "{got}");
        assert!(std::time::Instant::now() < deadline, "never INSYNC");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_region_down_gets_no_answer_until_it_is_up_again() {
    let (up, seen) = upstream().await;
    let proxy = RealismProxy::start(up, ProxyOptions::default())
        .await
        .expect("proxy");
    let ep = proxy.endpoint();
    let east = Some(("us-east-1", "ec2"));
    let (status, text) = send(&ep, Method::POST, "/__lab/regions/us-east-1/down", None, "")
        .await
        .expect("down");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<RegionsDown>(&text)
            .expect("json")
            .down,
        vec!["us-east-1"]
    );
    let lost = send(&ep, Method::POST, "/", east, "Action=DescribeVpcs").await;
    assert!(lost.is_err(), "expected a closed connection, got {lost:?}");
    assert!(
        seen.lock().expect("seen").is_empty(),
        "nothing reached moto"
    );
    let (status, _) = send(&ep, Method::POST, "/", EC2_WEST, "Action=DescribeVpcs")
        .await
        .expect("other region");
    assert_eq!(status, StatusCode::OK);
    let counts = proxy.counters();
    let row = counts.row("ec2", "DescribeVpcs", "us-east-1").expect("row");
    assert_eq!((row.calls, row.faulted), (1, 1));

    let (_, text) = send(&ep, Method::GET, "/__lab/regions", None, "")
        .await
        .expect("list");
    assert!(text.contains("us-east-1"));
    let (status, _) = send(
        &ep,
        Method::POST,
        "/__lab/regions/Bad_Region/down",
        None,
        "",
    )
    .await
    .expect("bad");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, text) = send(&ep, Method::POST, "/__lab/regions/us-east-1/up", None, "")
        .await
        .expect("up");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<RegionsDown>(&text).expect("json"),
        RegionsDown::default()
    );
    let (status, _) = send(&ep, Method::POST, "/", east, "Action=DescribeVpcs")
        .await
        .expect("back");
    assert_eq!(status, StatusCode::OK);
    // The handle's methods do the same.
    proxy.region_down("us-west-2").expect("down");
    assert_eq!(proxy.regions_down(), vec!["us-west-2"]);
    assert!(
        send(&ep, Method::POST, "/", EC2_WEST, "Action=DescribeVpcs")
            .await
            .is_err()
    );
    assert!(proxy.region_up("us-west-2"));
    assert!(proxy.region_down("no/such").is_err());
}

#[tokio::test]
async fn capacity_admin_validates_and_bounds_rules() {
    let (up, _) = upstream().await;
    let proxy = RealismProxy::start(up, ProxyOptions::default())
        .await
        .expect("proxy");
    let ep = proxy.endpoint();
    let rule =
        serde_json::to_string(&CapacityRule::new("r5.2xlarge", "us-west-2a", 3)).expect("json");
    let (status, text) = send(&ep, Method::POST, "/__lab/capacity", None, &rule)
        .await
        .expect("add");
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let (status, text) = send(&ep, Method::GET, "/__lab/capacity", None, "")
        .await
        .expect("list");
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<CapacityStatus> = serde_json::from_str(&text).expect("json");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].phase, CapacityPhase::Available);
    let (status, text) = send(
        &ep,
        Method::POST,
        "/__lab/capacity",
        None,
        r#"{"instance_type":"r5.2xlarge"}"#,
    )
    .await
    .expect("no place");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("availability_zone or region"), "{text}");
    for _ in 1..MAX_CAPACITY_RULES {
        proxy
            .add_capacity_rule(CapacityRule::new("x", "us-west-2a", 1))
            .expect("fits");
    }
    let (status, _) = send(&ep, Method::POST, "/__lab/capacity", None, &rule)
        .await
        .expect("full");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = send(&ep, Method::DELETE, "/__lab/capacity", None, "")
        .await
        .expect("clear");
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(proxy.capacity_rules().is_empty());
}

#[tokio::test]
async fn pending_options_are_validated() {
    let (up, _) = upstream().await;
    for opts in [
        ProxyOptions {
            instance_pending_secs: -1.0,
            ..ProxyOptions::default()
        },
        ProxyOptions {
            lb_provisioning_secs: f64::INFINITY,
            ..ProxyOptions::default()
        },
        ProxyOptions {
            dns_pending_secs: f64::NAN,
            ..ProxyOptions::default()
        },
    ] {
        assert!(matches!(
            RealismProxy::start(up, opts).await,
            Err(LabError::InvalidOptions { .. })
        ));
    }
}
