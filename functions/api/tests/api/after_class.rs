//! The replay and attendance routes through their handlers: query parameters and the
//! CSV download as API Gateway delivers them.

use http::StatusCode;
use livestream::apigw::{HttpRequestSpec, http_request};
use livestream::routes::match_route;
use serde_json::json;

use crate::helpers::{TestApp, student, teacher};

/// The attendance as `user` asks for it with `accept`: status, headers and body text.
async fn attendance(
    app: &TestApp,
    id: &str,
    user: &str,
    accept: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let path = format!("/api/livestream/{id}/attendance");
    let (route, params) = match_route("GET", &path).unwrap();
    let request = http_request(&HttpRequestSpec {
        method: "GET",
        route_path: route.path,
        path: &path,
        path_parameters: params,
        query: "",
        headers: vec![
            ("accept".into(), accept.into()),
            ("authorization".into(), format!("Bearer {user}")),
        ],
        body: None,
        ..Default::default()
    });
    let response = livestream_api::invoke(route.function, &app.env.state, request)
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = match response.into_body() {
        lambda_http::Body::Text(text) => text,
        other => panic!("a text body, not {other:?}"),
    };
    (status, headers, body)
}

#[tokio::test]
async fn the_attendance_is_json_or_a_csv_download_for_the_instructor_only() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, course) = app.live_stream(&t, json!({"is_public": false})).await;
    for s in ["s1", "s2"] {
        app.enroll(&t, &course, s).await;
    }
    app.post(
        &format!("/api/livestream/{id}/join"),
        &student("s1"),
        json!({}),
    )
    .await;
    app.post(
        &format!("/api/livestream/{id}/chat"),
        &student("s1"),
        json!({"message": "hi, \"all\""}),
    )
    .await;
    app.post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;

    let (status, headers, body) = attendance(&app, &id, &t, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["totals"]["attended"], 1);
    assert_eq!(report["totals"]["enrolled_absent"], 1);
    assert_eq!(report["rows"][0]["user_id"], "s1");
    assert_eq!(report["rows"][0]["chat_messages_count"], 1);

    let (status, headers, csv) = attendance(&app, &id, &t, "text/html, text/csv;q=0.9").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"attendance-{id}.csv\"").as_str()
    );
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(lines[0].starts_with("user_id,display_name,role,enrolled,"));
    assert!(lines[1].starts_with("s1,s1,student,true,"), "{csv}");
    assert!(
        lines[2].starts_with("s2,,student,true,,,false,0,0,0,0,0"),
        "{csv}"
    );
    assert!(lines[3].starts_with("TOTAL,"), "{csv}");

    let (status, _, body) = attendance(&app, &id, &student("s1"), "text/csv").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("not_stream_owner"), "{body}");
}

#[tokio::test]
async fn replay_ranges_are_query_parameters_checked_before_anything_is_read() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.live_stream(&t, json!({"is_recording": true})).await;
    app.post(
        &format!("/api/livestream/{id}/join"),
        &student("s1"),
        json!({}),
    )
    .await;
    for m in ["one", "two", "three"] {
        app.post(
            &format!("/api/livestream/{id}/chat"),
            &student("s1"),
            json!({"message": m}),
        )
        .await;
    }
    let replay = format!("/api/livestream/{id}/replay");
    let all = app
        .get(&format!("{replay}?from_ms=0&limit=2"), &student("s1"))
        .await;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.body);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    let cursor = all.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("{replay}?limit=2&cursor={cursor}"), &student("s1"))
        .await;
    let texts: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.body["items"].as_array().unwrap())
        .map(|e| e["message"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert!(rest.body["next_cursor"].is_null());

    let bad = app
        .get(&format!("{replay}?from_ms=10&to_ms=5"), &student("s1"))
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(bad.body["error"]["details"][0]["field"], "to_ms");
    let bad = app
        .get(&format!("{replay}?cursor=nonsense"), &student("s1"))
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_cursor")
    );
}
