//! `events/http/<function>.json` is what `cargo lambda invoke <function>` sends: every
//! HTTP function has one, it parses as the runtime parses it, names its own route, and
//! its token is accepted by the local stack.

use livestream::auth::Authenticator;
use livestream::routes::ROUTES;
use livestream::testing::TEST_SECRET;
use std::collections::BTreeSet;

#[tokio::test]
async fn every_http_function_has_a_sample_event_that_parses_and_authenticates() {
    let dir = format!("{}/../../events/http", env!("CARGO_MANIFEST_DIR"));
    let functions: BTreeSet<&str> = ROUTES.iter().map(|r| r.function).collect();
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    let expected: BTreeSet<String> = functions.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        files, expected,
        "run `python3 events/generate_http.py` after changing routes"
    );
    let auth = Authenticator::hs256(TEST_SECRET, None, None).unwrap();
    for function in functions {
        let text = std::fs::read_to_string(format!("{dir}/{function}.json")).unwrap();
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let route_key = event["routeKey"].as_str().unwrap();
        assert!(
            ROUTES
                .iter()
                .any(|r| format!("{} {}", r.method, r.path) == route_key && r.function == function),
            "{function}: {route_key}"
        );
        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{function}: {e}"));
        auth.authenticate_headers(request.headers())
            .await
            .unwrap_or_else(|e| panic!("{function}: {e}"));
    }
}
