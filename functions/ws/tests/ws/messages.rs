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

#[tokio::test]
async fn chat_over_the_socket_follows_the_http_rules_and_catch_up_is_exact() {
    let app = WsApp::spawn().await;
    let stream = app.stream(true, true).await;
    app.connect("c1", &query(&token("s1", Role::Student), &stream.id))
        .await;
    app.connect("c2", &query(&token("s2", Role::Student), &stream.id))
        .await;
    for i in 1..=5 {
        app.send(
            "c1",
            &format!(r#"{{"action":"chat","message":"message {i}"}}"#),
        )
        .await;
    }
    let accepted: Vec<i64> = app
        .management
        .events("c1")
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "chat.accepted", "{e}");
            e["data"]["seq"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(accepted, [1, 2, 3, 4, 5]);

    app.send("c2", r#"{"action":"chat","message":"   "}"#).await;
    app.send(
        "c2",
        r#"{"action":"chat","message":"hi","message_type":"announcement"}"#,
    )
    .await;
    let errors: Vec<String> = app
        .management
        .events("c2")
        .iter()
        .map(|e| e["data"]["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(errors, ["validation_failed", "announcement_not_allowed"]);

    // A client that saw up to seq 2 catches up with exactly 3, 4, 5.
    app.management.clear();
    app.send("c2", r#"{"action":"catch_up","since":2}"#).await;
    let events = app.management.events("c2");
    let seqs: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "chat.message")
        .map(|e| e["data"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "chat.history");
    // The refused announcement had taken number 6: a gap, which the reader moves past.
    assert_eq!(
        (
            last["data"]["last_seq"].as_i64(),
            last["data"]["has_more"].as_bool()
        ),
        (Some(6), Some(false))
    );

    app.management.clear();
    app.send("c2", r#"{"action":"catch_up","since":0,"limit":2}"#)
        .await;
    let last = app.management.events("c2").pop().unwrap();
    assert_eq!(
        (
            last["data"]["last_seq"].as_i64(),
            last["data"]["has_more"].as_bool()
        ),
        (Some(2), Some(true))
    );
}

#[tokio::test]
async fn chat_over_one_connection_is_limited_by_a_token_bucket() {
    let app = WsApp::spawn().await;
    let stream = app.stream(true, true).await;
    app.connect("c1", &query(&token("s1", Role::Student), &stream.id))
        .await;
    app.connect("c2", &query(&token("s2", Role::Student), &stream.id))
        .await;
    // Sent concurrently, as API Gateway invokes `$default` for a flooding client.
    let sends = (0..25).map(|i| {
        let body = format!(r#"{{"action":"chat","message":"flood {i}"}}"#);
        let app = &app;
        async move { app.send("c1", &body).await }
    });
    futures::future::join_all(sends).await;
    let events = app.management.events("c1");
    let accepted = events
        .iter()
        .filter(|e| e["type"] == "chat.accepted")
        .count();
    let limited: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "error" && e["data"]["code"] == "rate_limited")
        .collect();
    // A burst of 10; the 25 arrive within far less than the 3 s that would refill 15.
    assert!((10..=12).contains(&accepted), "accepted {accepted}");
    assert_eq!(accepted + limited.len(), 25);
    assert!(limited[0]["data"]["retry_after_seconds"].as_u64().unwrap() >= 1);
    assert_eq!(limited[0]["data"]["action"], "chat");

    // The bucket is per connection: another student is not held back.
    app.send("c2", r#"{"action":"chat","message":"hello"}"#)
        .await;
    let theirs = app.management.events("c2");
    assert_eq!(
        theirs.last().unwrap()["type"],
        "chat.accepted",
        "{theirs:?}"
    );
    let stored = app
        .store()
        .chat_after(&stream.id, 0, 100)
        .await
        .unwrap()
        .messages
        .len();
    assert_eq!(stored, accepted + 1);
}

#[tokio::test]
async fn every_reply_has_the_documented_envelope_with_a_null_sequence() {
    let app = WsApp::spawn().await;
    let stream = app.stream(true, true).await;
    app.connect("c1", &query(&token("s1", Role::Student), &stream.id))
        .await;
    for message in [
        r#"{"action":"ping"}"#,
        r#"{"action":"chat","message":"hello"}"#,
        r#"{"action":"catch_up","since":0}"#,
        r#"{"action":"dance"}"#,
    ] {
        app.send("c1", message).await;
    }
    let events = app.management.events("c1");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "pong",
            "chat.accepted",
            "chat.message",
            "chat.history",
            "error"
        ]
    );
    for event in &events {
        let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{event}");
        assert!(event["sequence"].is_null(), "{event}");
        assert_eq!(event["stream_id"], stream.id.as_str());
    }
}
