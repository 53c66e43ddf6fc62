use livestream::auth::Role;
use livestream::testing::token;

use crate::helpers::{WsApp, query};

#[tokio::test]
async fn ping_is_answered_with_pong_on_the_same_connection() {
    let app = WsApp::spawn().await;
    let stream = app.stream(true, true).await;
    app.connect("c1", &query(&token("s1", Role::Student), &stream.id))
        .await;
    app.connect("c2", &query(&token("s2", Role::Student), &stream.id))
        .await;
    assert_eq!(app.send("c1", r#"{"action":"ping"}"#).await, 200);
    let events = app.management.events("c1");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "pong");
    assert_eq!(events[0]["stream_id"], stream.id.as_str());
    assert!(app.management.events("c2").is_empty());
}

#[tokio::test]
async fn unknown_and_malformed_messages_get_error_events() {
    let app = WsApp::spawn().await;
    let stream = app.stream(true, true).await;
    app.connect("c1", &query(&token("s1", Role::Student), &stream.id))
        .await;
    app.send("c1", r#"{"action":"dance"}"#).await;
    app.send("c1", "not json").await;
    app.send("c1", r#"{"hello":1}"#).await;
    let events = app.management.events("c1");
    let codes: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["unknown_action", "invalid_message", "invalid_message"]
    );
    assert!(events.iter().all(|e| e["type"] == "error"));
    assert_eq!(events[0]["data"]["action"], "dance");
}

#[tokio::test]
async fn messages_on_unknown_connections_are_refused() {
    let app = WsApp::spawn().await;
    assert_eq!(app.send("ghost", r#"{"action":"ping"}"#).await, 401);
    assert_eq!(app.management.post_count(), 0);
}
