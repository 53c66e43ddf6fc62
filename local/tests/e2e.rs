//! End to end: the local stack on random ports, driven by a real HTTP client and real
//! WebSocket clients, as a frontend would.

mod common;

use std::time::Duration;

use common::{
    Client, TEACHER, connect, connection_id, has, has_kind, read_until, read_until_closed, store,
    token,
};
use futures::SinkExt;
use livestream::auth::Role;
use local::{Config, LocalStack};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn chat_seqs(events: &[Value]) -> Vec<(String, i64)> {
    events
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("chat."))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["data"]["seq"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_whole_class_runs_through_http_and_websockets() {
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let api = Client::new(&stack.http_url);
    let teacher = token(TEACHER, Role::Teacher);
    let (s1, s2) = (
        token("student-1", Role::Student),
        token("student-2", Role::Student),
    );
    let course_id = api.course(&["student-1", "student-2"]).await;
    let id = api.scheduled_stream(&course_id, false).await;
    let other_id = api.scheduled_stream(&course_id, true).await;

    // Refused connections: no token, not enrolled in a private stream, unknown stream.
    assert_eq!(connect(&stack.ws_url, "", &id).await.err(), Some(401));
    assert_eq!(
        connect(&stack.ws_url, &token("outsider", Role::Student), &id)
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        connect(&stack.ws_url, &s1, "01J00000000000000000000000")
            .await
            .err(),
        Some(404)
    );

    // The teacher and students connect while it is scheduled, then it goes live.
    let mut t_ws = connect(&stack.ws_url, &teacher, &id).await.unwrap();
    let mut s1_ws = connect(&stack.ws_url, &s1, &id).await.unwrap();
    let mut s2_ws = connect(&stack.ws_url, &s2, &id).await.unwrap();
    let mut other_ws = connect(&stack.ws_url, &token("student-3", Role::Student), &other_id)
        .await
        .unwrap();
    api.start(&id).await;
    for socket in [&mut t_ws, &mut s1_ws, &mut s2_ws] {
        let events = read_until(socket, |e| has(e, "viewers.updated", "viewer_count", 2)).await;
        assert_eq!(events[0]["type"], "stream.status");
        assert_eq!(events[0]["data"]["status"], "live");
    }
    let (status, joined) = api
        .call("POST", &format!("/api/livestream/{id}/join"), &s1, None)
        .await;
    assert_eq!(
        (status, joined["viewer_count"].as_i64()),
        (200, Some(2)),
        "one viewer however many sessions"
    );

    // Chat over HTTP and over the socket; the teacher hides the first message.
    api.chat(&id, &s1, "Hello from HTTP").await;
    s2_ws
        .send(Message::Text(
            r#"{"action":"chat","message":"Hello from a socket"}"#.into(),
        ))
        .await
        .unwrap();
    // Live events may come before the acknowledgement: keep them.
    let mut s2_seen = read_until(&mut s2_ws, |e| has_kind(e, "chat.accepted")).await;
    s2_seen.retain(|e| e["type"] != "chat.accepted");
    let everyone_saw = |e: &[Value]| chat_seqs(e).len() == 2;
    let before_hide = read_until(&mut t_ws, everyone_saw).await;
    assert_eq!(
        chat_seqs(&before_hide),
        [("chat.message".into(), 1), ("chat.message".into(), 2)]
    );
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/chat/1/hide"),
            &teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);

    let expected: Vec<(String, i64)> = vec![
        ("chat.message".into(), 1),
        ("chat.message".into(), 2),
        ("chat.hidden".into(), 1),
    ];
    let s1_events = read_until(&mut s1_ws, |e| chat_seqs(e).len() == 3).await;
    assert_eq!(chat_seqs(&s1_events), expected);
    let s2_rest = read_until(&mut s2_ws, |e| {
        chat_seqs(&s2_seen).len() + chat_seqs(e).len() == 3
    })
    .await;
    assert_eq!(chat_seqs(&[s2_seen, s2_rest].concat()), expected);
    let hidden = s1_events
        .iter()
        .find(|e| e["type"] == "chat.hidden")
        .unwrap();
    assert!(!hidden.to_string().contains("Hello from HTTP"));
    let t_rest = read_until(&mut t_ws, |e| chat_seqs(e).len() == 1).await;
    assert_eq!(chat_seqs(&t_rest), [("chat.hidden".into(), 1)]);

    // A reconnecting client catches up exactly from the last seq it saw.
    s2_ws
        .send(Message::Text(r#"{"action":"catch_up","since":1}"#.into()))
        .await
        .unwrap();
    let history = read_until(&mut s2_ws, |e| has_kind(e, "chat.history")).await;
    let replayed: Vec<i64> = history
        .iter()
        .filter(|e| e["type"] == "chat.message")
        .map(|e| e["data"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(replayed, [2]);

    // Q&A: s1 asks anonymously, s2 upvotes, the teacher answers.
    let (status, question) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/questions"),
            &s1,
            Some(json!({"text": "What is 'static?", "anonymous": true})),
        )
        .await;
    assert_eq!(status, 201);
    let qid = question["id"].as_str().unwrap().to_string();
    let (status, voted) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/questions/{qid}/upvote"),
            &s2,
            None,
        )
        .await;
    assert_eq!((status, voted["upvotes"].as_i64()), (200, Some(1)));
    let (status, _) = api
        .call(
            "PUT",
            &format!("/api/livestream/{id}/questions/{qid}/answer"),
            &teacher,
            Some(json!({"answer": "The whole program."})),
        )
        .await;
    assert_eq!(status, 200);
    let answered = |e: &[Value]| has(e, "question.updated", "status", "answered");
    let s2_questions = read_until(&mut s2_ws, answered).await;
    let s2_questions: Vec<&Value> = s2_questions
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("question."))
        .collect();
    assert_eq!(s2_questions[0]["type"], "question.created");
    assert!(
        s2_questions.iter().all(|e| e["data"]["user_id"].is_null()),
        "the asker stays anonymous to other students"
    );
    let t_questions = read_until(&mut t_ws, answered).await;
    let created = t_questions
        .iter()
        .find(|e| e["type"] == "question.created")
        .unwrap();
    assert_eq!(
        created["data"]["user_id"], "student-1",
        "moderators see who asked"
    );

    // s2 leaves by closing the socket; everyone left hears the count drop.
    s2_ws.close(None).await.unwrap();
    read_until(&mut s1_ws, |e| has(e, "viewers.updated", "viewer_count", 1)).await;

    api.stop(&id).await;
    for socket in [&mut t_ws, &mut s1_ws] {
        let events = read_until(socket, |e| has_kind(e, "stream.status")).await;
        let status_event = events
            .iter()
            .find(|e| e["type"] == "stream.status")
            .unwrap();
        assert_eq!(status_event["data"]["status"], "ended");
        assert!(
            !serde_json::to_string(&events)
                .unwrap()
                .contains("stream_key")
        );
    }
    let (status, stats) = api
        .call(
            "GET",
            &format!("/api/livestream/{id}/stats"),
            &teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(stats["unique_viewers"], 2);
    assert_eq!(stats["max_viewers"], 2);
    assert_eq!(stats["chat_messages_count"], 2);
    assert_eq!(
        (
            stats["questions_count"].as_i64(),
            stats["questions_answered_count"].as_i64(),
            stats["upvotes_count"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(stats["is_final"], true);

    // The other stream's client heard only about its own stream.
    other_ws
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    let others = read_until(&mut other_ws, |e| has_kind(e, "pong")).await;
    assert!(
        others.iter().all(|e| e["stream_id"] == other_id.as_str()),
        "{others:?}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn connections_api_posts_reports_and_closes_like_api_gateway() {
    let stack = LocalStack::start(Config {
        limits: local::websocket::Limits {
            idle_timeout: Duration::from_secs(2),
            ..Default::default()
        },
        ..Config::on_free_ports(None)
    })
    .await
    .unwrap();
    let api = Client::new(&stack.http_url);
    let http = &api.http;
    let course_id = api.course(&[]).await;
    let id = &api.scheduled_stream(&course_id, true).await;
    let mut socket = connect(&stack.ws_url, &token("student-1", Role::Student), id)
        .await
        .unwrap();
    // The connection id is what the function stored; find it through the table.
    let store = store(&stack);
    let connection_id = connection_id(&store, id).await;
    let url = format!(
        "{}/@connections/{}",
        stack.connections_url,
        urlencode(&connection_id)
    );

    let response = http
        .post(&url)
        .body(r#"{"type":"hello"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = read_until(&mut socket, |e| !e.is_empty()).await;
    assert_eq!(events[0]["type"], "hello");
    let info: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    // API Gateway's shape: camelCase members, ISO 8601 date-times, a nested identity.
    for at in ["connectedAt", "lastActiveAt"] {
        let stamp = info[at]
            .as_str()
            .unwrap_or_else(|| panic!("{at} in {info}"));
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
            "{at}: {stamp}"
        );
    }
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert!(info["identity"]["userAgent"].is_string());
    let staged = format!(
        "{}/local/@connections/{}",
        stack.connections_url,
        urlencode(&connection_id)
    );
    assert_eq!(
        http.get(&staged).send().await.unwrap().status(),
        200,
        "a stage prefix is accepted"
    );
    let gone = http
        .post(format!("{}/@connections/nobody", stack.connections_url))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 410);

    assert_eq!(http.delete(&url).send().await.unwrap().status(), 204);
    read_until_closed(&mut socket).await;
    // $disconnect ran: the record is gone.
    common::eventually("$disconnect removes the record", || async {
        store
            .connection(&connection_id)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        http.post(&url).body("x").send().await.unwrap().status(),
        410
    );

    // An idle connection is closed after the idle timeout (2 s here).
    let mut idle = connect(&stack.ws_url, &token("student-2", Role::Student), id)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (_, close) = read_until_closed(&mut idle).await;
    assert_eq!(close, Some(1001));
    assert!(started.elapsed() >= Duration::from_secs(2));
    stack.shutdown().await;
}

fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let persistent = Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..Config::on_free_ports(None)
    };
    let teacher = token(TEACHER, Role::Teacher);
    let stack = LocalStack::start(persistent.clone()).await.unwrap();
    let api = Client::new(&stack.http_url);
    let id = api.live_stream(true, &[]).await;
    api.chat(&id, &teacher, "still here").await;
    stack.shutdown().await;

    let stack = LocalStack::start(persistent).await.unwrap();
    let api = Client::new(&stack.http_url);
    let again = api.stream(&id).await;
    assert_eq!(
        (again["title"].as_str(), again["status"].as_str()),
        (Some("Lecture"), Some("live"))
    );
    let (_, chat) = api
        .call("GET", &format!("/api/livestream/{id}/chat"), &teacher, None)
        .await;
    assert_eq!(chat["items"][0]["message"], "still here");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_http_api_answers_like_api_gateway_for_unknown_routes_and_cors() {
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", stack.http_url);
    let unknown = http.get(url("/api/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found");
    let wrong_method = http.delete(url("/api/courses")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    let body: serde_json::Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let preflight = http
        .request(reqwest::Method::OPTIONS, url("/api/livestream/active"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let foreign = http
        .get(url("/api/livestream/active"))
        .header("origin", "https://evil.example")
        .bearer_auth(token("student-1", Role::Student))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 200);
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let unauthorized = http
        .get(url("/api/livestream/active"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let body: Value = unauthorized.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let openapi: Value = http
        .get(url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        openapi["paths"]["/api/livestream/{id}/start"]["post"]["operationId"],
        "start-stream"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_stream_above_the_fan_out_threshold_reaches_real_sockets_through_the_queue() {
    let stack = LocalStack::start(Config {
        fan_out_threshold: 2,
        fan_out_page_size: 2,
        ..Config::on_free_ports(None)
    })
    .await
    .unwrap();
    let api = Client::new(&stack.http_url);
    let teacher = token(TEACHER, Role::Teacher);
    let id = api.live_stream(true, &[]).await;
    let mut sockets = Vec::new();
    for i in 0..5 {
        let student = token(&format!("student-{i}"), Role::Student);
        sockets.push(connect(&stack.ws_url, &student, &id).await.unwrap());
    }
    let sent_before = stack.fan_out_queue.sent();
    for message in ["first", "second"] {
        api.chat(&id, &teacher, message).await;
    }
    for socket in &mut sockets {
        let events = read_until(socket, |e| {
            chat_seqs(e).contains(&("chat.message".into(), 2))
        })
        .await;
        let chats = chat_seqs(&events);
        assert_eq!(
            chats,
            [("chat.message".into(), 1), ("chat.message".into(), 2)],
            "each message once, in order"
        );
    }
    assert!(
        stack.fan_out_queue.sent() > sent_before,
        "delivered through the queue"
    );
    assert!(stack.fan_out_queue.dead_letters().is_empty());
    stack.shutdown().await;
}
