//! The admin API's OpenAPI 3.1 document (P3): `docs/openapi.json`, compiled in and served at
//! `GET /v1/openapi.json` without a token (it describes the API and holds no data, like
//! `/healthz`).
//!
//! The document is hand-written; the tests below keep it true: every route of
//! [`crate::ROUTES`] (the table the router is built from) is documented and every documented
//! operation is routed, every `error.code` the handlers can answer is in the `Error` schema's
//! list, and each operation answers as its documented security and `x-pilotlight-role` say.

use axum::response::{IntoResponse, Response};

/// `docs/openapi.json`, as compiled into the daemon.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// `GET /v1/openapi.json`.
pub async fn document() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use pilotlight_core::config::{Config, Role};
    use pilotlight_engine::restore::{RestoreMode, RestoreService};
    use pilotlight_store::{Store, StoreOptions};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::DOCUMENT;
    use crate::{ApiLimits, ROUTES};

    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

    fn doc() -> Value {
        serde_json::from_str(DOCUMENT).expect("docs/openapi.json is not valid JSON")
    }

    /// Every documented (path, method), methods in lower case.
    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let paths = doc["paths"]
            .as_object()
            .expect("docs/openapi.json has no paths object");
        let mut out = BTreeSet::new();
        for (path, item) in paths {
            for method in item.as_object().expect("a path item is an object").keys() {
                if METHODS.contains(&method.as_str()) {
                    out.insert((path.clone(), method.clone()));
                }
            }
        }
        out
    }

    fn routed() -> BTreeSet<(String, String)> {
        ROUTES
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .iter()
                    .map(|m| ((*path).to_owned(), (*m).to_owned()))
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented = documented(&doc);
        let routed = routed();
        let mut problems = Vec::new();
        for (path, method) in routed.difference(&documented) {
            problems.push(format!(
                "route {} {path} missing from docs/openapi.json",
                method.to_uppercase()
            ));
        }
        for (path, method) in documented.difference(&routed) {
            problems.push(format!(
                "docs/openapi.json documents {} {path}, which the router does not serve",
                method.to_uppercase()
            ));
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The admin router is built from the `api_routes!` table only: a `.route("…")`, `.nest`
    /// or `.merge` written straight into `router` would escape [`ROUTES`] and these checks.
    #[test]
    fn routes_are_only_added_through_the_table() {
        let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs"))
            .expect("reading lib.rs");
        let start = lib
            .find("pub fn router(")
            .expect("lib.rs has no `pub fn router(`");
        let body = &lib[start..];
        let body = &body[..body.find("\n}\n").expect("the end of `router`")];
        assert!(
            body.contains("add_routes("),
            "`router` no longer builds on add_routes (the api_routes! table)"
        );
        for pattern in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".merge(",
        ] {
            assert!(
                !body.contains(pattern),
                "`router` in lib.rs adds a route with `{pattern}` outside api_routes!: add it to the api_routes! table and document it in docs/openapi.json"
            );
        }
    }

    /// The `error.code`s written in this crate's source: every string literal right after a
    /// `StatusCode::X,` (`ApiError::new(StatusCode::X, "code", …)`) or `StatusCode::X =>`.
    fn codes_in_source() -> BTreeSet<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut codes = BTreeSet::new();
        for entry in std::fs::read_dir(dir).expect("reading src") {
            let path = entry.expect("a src entry").path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("reading a source file");
            // Tests only read codes; they are not answers.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (at, _) in text.match_indices("StatusCode::") {
                let rest = &text[at + "StatusCode::".len()..];
                let rest = rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
                let rest = rest.trim_start();
                let Some(rest) = rest.strip_prefix(',').or_else(|| rest.strip_prefix("=>")) else {
                    continue;
                };
                let Some(rest) = rest.trim_start().strip_prefix('"') else {
                    continue;
                };
                let code = rest.split('"').next().unwrap_or_default();
                if !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    codes.insert(code.to_owned());
                }
            }
        }
        codes
    }

    #[test]
    fn every_error_code_is_documented() {
        let doc = doc();
        let documented: BTreeSet<String> =
            doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
                ["enum"]
                .as_array()
                .expect("the Error schema lists its codes in an enum")
                .iter()
                .map(|c| c.as_str().expect("a code is a string").to_owned())
                .collect();
        let in_source = codes_in_source();
        assert!(
            in_source.len() >= 15,
            "the source scan found too few codes: {in_source:?}"
        );
        let missing: Vec<_> = in_source.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "error codes missing from the Error schema of docs/openapi.json: {missing:?}"
        );
        let unused: Vec<_> = documented.difference(&in_source).collect();
        assert!(
            unused.is_empty(),
            "docs/openapi.json lists error codes no handler answers: {unused:?}"
        );
    }

    const VIEWER: &str = "viewer-token";
    const OPERATOR: &str = "operator-token";

    /// The real router over an empty store; the DR bucket is a closed port.
    async fn app() -> axum::Router {
        let store = Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let state = crate::testing::state(
            store,
            &[
                ("vera", Role::Viewer, VIEWER),
                ("otto", Role::Operator, OPERATOR),
            ],
            |store, planner| {
                RestoreService::new(
                    store,
                    planner,
                    Arc::new(Config::default().restore),
                    RestoreMode::default(),
                    Arc::new(tokio::sync::Notify::new()),
                )
            },
        )
        .await;
        crate::router(
            state,
            ApiLimits {
                max_body_bytes: 65_536,
                request_timeout: Duration::from_secs(30),
            },
        )
    }

    async fn call(
        app: &axum::Router,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    }

    #[tokio::test]
    async fn the_served_document_is_the_file() {
        let app = app().await;
        let (status, body) = call(&app, "get", "/v1/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK, "served without a token");
        let served: Value = serde_json::from_slice(&body).expect("the served document parses");
        let file = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .expect("reading docs/openapi.json");
        assert_eq!(
            body,
            file.as_bytes(),
            "served bytes equal docs/openapi.json"
        );
        assert_eq!(served, doc());
    }

    /// A concrete path for a documented template: `{param}` → `p-1`.
    fn concrete(path: &str) -> String {
        let mut out = String::new();
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').expect("an unclosed path parameter") + open;
            out.push_str("p-1");
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    fn is_router_miss(status: StatusCode, body: &[u8]) -> bool {
        status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND
                && serde_json::from_slice::<Value>(body)
                    .is_ok_and(|b| b["error"]["message"] == "no such route"))
    }

    /// Each documented operation, called on the real router: open ones answer without a
    /// token; the others answer 401 without one, and with a token of too low a role (viewer for
    /// an operator operation, operator for an approver one) 403 even with the documented
    /// example body; viewer operations answer a viewer.
    #[tokio::test]
    async fn operations_answer_as_their_security_and_role_say() {
        let doc = doc();
        let app = app().await;
        let mut checked = 0;
        for (path, method) in documented(&doc) {
            let op = &doc["paths"][&path][&method];
            let uri = concrete(&path);
            let example = op["requestBody"]["content"]["application/json"]["example"].clone();
            let body = (!example.is_null()).then_some(&example);
            if op["requestBody"]["required"] == true {
                assert!(
                    body.is_some(),
                    "{method} {path}: a required body needs an example"
                );
            }
            let open = op["security"].as_array().is_some_and(Vec::is_empty);
            let (status, answer) = call(&app, &method, &uri, None, body).await;
            let answer_text = String::from_utf8_lossy(&answer);
            assert!(
                !is_router_miss(status, &answer),
                "{method} {path}: not routed ({status})"
            );
            if open {
                assert!(
                    op.get("x-pilotlight-role").is_none(),
                    "{method} {path}: open yet has a role"
                );
                assert!(
                    op["responses"].get(status.as_str()).is_some(),
                    "{method} {path} is documented open, yet answered {status}: {answer_text}"
                );
                checked += 1;
                continue;
            }
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token: {answer_text}"
            );
            let role = op["x-pilotlight-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no x-pilotlight-role"));
            let (token, expect_forbidden) = match role {
                "viewer" => (VIEWER, false),
                "operator" => (VIEWER, true),
                "approver" => (OPERATOR, true),
                other => panic!("{method} {path}: unknown role {other:?}"),
            };
            let (status, answer) = call(&app, &method, &uri, Some(token), body).await;
            let answer_text = String::from_utf8_lossy(&answer);
            assert!(
                !is_router_miss(status, &answer),
                "{method} {path}: not routed ({status})"
            );
            if expect_forbidden {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} needs {role}: {answer_text}"
                );
            } else {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} is documented for viewers: {status} {answer_text}"
                );
                assert!(
                    op["responses"].get(status.as_str()).is_some(),
                    "{method} {path} answered {status}, which is not documented: {answer_text}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, documented(&doc).len());
    }
}
