//! End to end: the local stack on random ports, driven by a real HTTP client and real
//! WebSocket clients, as a frontend would.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use livestream::auth::Role;
use local::{Config, LOCAL_JWT_SECRET, LocalStack, dev_token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn config() -> Config {
    Config::on_free_ports(None)
}

fn token(user: &str, role: Role) -> String {
    dev_token(LOCAL_JWT_SECRET, user, role, user, 1)
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn connect(stack: &LocalStack, token: &str, stream_id: &str) -> Result<Socket, u16> {
    let url = format!("{}/?token={token}&stream_id={stream_id}", stack.ws_url);
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("{other}"),
    }
}

/// Reads events (frames of one event or arrays of them) until `done` says so.
async fn read_until(socket: &mut Socket, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&events) {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {events:?}"));
        match frame {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<Value>(&text).unwrap() {
                Value::Array(many) => events.extend(many),
                one => events.push(one),
            },
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}; got {events:?}"),
        }
    }
    events
}

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
    let stack = LocalStack::start(config()).await.unwrap();
    let api = Client {
        http: reqwest::Client::new(),
        base: stack.http_url.clone(),
    };
    let teacher = token("teacher-1", Role::Teacher);
    let (s1, s2) = (
        token("student-1", Role::Student),
        token("student-2", Role::Student),
    );

    let (status, course) = api
        .call(
            "POST",
            "/api/courses",
            &teacher,
            Some(json!({"title": "Rust"})),
        )
        .await;
    assert_eq!(status, 201);
    let course_id = course["id"].as_str().unwrap();
    for s in ["student-1", "student-2"] {
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/courses/{course_id}/enrollments"),
                &teacher,
                Some(json!({"user_id": s})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, stream) = api
        .call(
            "POST",
            "/api/livestream/",
            &teacher,
            Some(json!({"title": "Lifetimes", "course_id": course_id, "is_public": false})),
        )
        .await;
    assert_eq!(status, 201);
    let id = stream["id"].as_str().unwrap().to_string();
    let (_, other) = api
        .call(
            "POST",
            "/api/livestream/",
            &teacher,
            Some(json!({"title": "Other", "course_id": course_id})),
        )
        .await;
    let other_id = other["id"].as_str().unwrap().to_string();

    // Refused connections: no token, not enrolled in a private stream, unknown stream.
    assert_eq!(connect(&stack, "", &id).await.err(), Some(401));
    assert_eq!(
        connect(&stack, &token("outsider", Role::Student), &id)
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        connect(&stack, &s1, "01J00000000000000000000000")
            .await
            .err(),
        Some(404)
    );

    // The teacher and students connect while it is scheduled, then it goes live.
    let mut t_ws = connect(&stack, &teacher, &id).await.unwrap();
    let mut s1_ws = connect(&stack, &s1, &id).await.unwrap();
    let mut s2_ws = connect(&stack, &s2, &id).await.unwrap();
    let mut other_ws = connect(&stack, &token("student-3", Role::Student), &other_id)
        .await
        .unwrap();
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/start"),
            &teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    for socket in [&mut t_ws, &mut s1_ws, &mut s2_ws] {
        let events = read_until(socket, |e| {
            e.iter()
                .any(|e| e["type"] == "viewers.updated" && e["data"]["viewer_count"] == 2)
        })
        .await;
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
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/chat"),
            &s1,
            Some(json!({"message": "Hello from HTTP"})),
        )
        .await;
    assert_eq!(status, 201);
    s2_ws
        .send(Message::Text(
            r#"{"action":"chat","message":"Hello from a socket"}"#.into(),
        ))
        .await
        .unwrap();
    // Live events may come before the acknowledgement: keep them.
    let mut s2_seen = read_until(&mut s2_ws, |e| {
        e.iter().any(|e| e["type"] == "chat.accepted")
    })
    .await;
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
    let history = read_until(&mut s2_ws, |e| {
        e.iter().any(|e| e["type"] == "chat.history")
    })
    .await;
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
    let answered = |e: &[Value]| {
        e.iter()
            .any(|e| e["type"] == "question.updated" && e["data"]["status"] == "answered")
    };
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
    read_until(&mut s1_ws, |e| {
        e.iter()
            .any(|e| e["type"] == "viewers.updated" && e["data"]["viewer_count"] == 1)
    })
    .await;

    let (status, _) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/stop"),
            &teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    for socket in [&mut t_ws, &mut s1_ws] {
        let events = read_until(socket, |e| e.iter().any(|e| e["type"] == "stream.status")).await;
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
    let others = read_until(&mut other_ws, |e| e.iter().any(|e| e["type"] == "pong")).await;
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
        ..config()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let teacher = token("teacher-1", Role::Teacher);
    let api = Client {
        http: http.clone(),
        base: stack.http_url.clone(),
    };
    let (_, course) = api
        .call(
            "POST",
            "/api/courses",
            &teacher,
            Some(json!({"title": "c"})),
        )
        .await;
    let (_, stream) = api
        .call(
            "POST",
            "/api/livestream/",
            &teacher,
            Some(json!({"title": "t", "course_id": course["id"]})),
        )
        .await;
    let id = stream["id"].as_str().unwrap();
    let mut socket = connect(&stack, &token("student-1", Role::Student), id)
        .await
        .unwrap();
    // The connection id is what the function stored; find it through the table.
    let client = livestream::embedded::dynamo_config(&stack.dynamo_url);
    let store = livestream::store::Store::new(
        aws_sdk_dynamodb::Client::from_conf(client),
        local::TABLE_NAME,
    );
    let connection_id = store.stream_connections(id).await.unwrap()[0]
        .connection_id
        .clone();
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
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                return true;
            }
        }
        true
    })
    .await
    .unwrap();
    assert!(closed);
    // $disconnect ran: the record is gone.
    for _ in 0..50 {
        if store.connection(&connection_id).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.connection(&connection_id).await.unwrap().is_none());
    assert_eq!(
        http.post(&url).body("x").send().await.unwrap().status(),
        410
    );

    // An idle connection is closed after the idle timeout (2 s here).
    let mut idle = connect(&stack, &token("student-2", Role::Student), id)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match idle.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| f.code.into()).unwrap_or(0u16);
                }
                Some(Ok(_)) => continue,
                _ => return 0,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close, 1001);
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
        ..config()
    };
    let teacher = token("teacher-1", Role::Teacher);
    let stack = LocalStack::start(persistent.clone()).await.unwrap();
    let api = Client {
        http: reqwest::Client::new(),
        base: stack.http_url.clone(),
    };
    let (_, course) = api
        .call(
            "POST",
            "/api/courses",
            &teacher,
            Some(json!({"title": "Kept"})),
        )
        .await;
    let (_, stream) = api
        .call(
            "POST",
            "/api/livestream/",
            &teacher,
            Some(json!({"title": "Kept too", "course_id": course["id"]})),
        )
        .await;
    let id = stream["id"].as_str().unwrap().to_string();
    api.call(
        "POST",
        &format!("/api/livestream/{id}/start"),
        &teacher,
        None,
    )
    .await;
    api.call(
        "POST",
        &format!("/api/livestream/{id}/chat"),
        &teacher,
        Some(json!({"message": "still here"})),
    )
    .await;
    stack.shutdown().await;

    let stack = LocalStack::start(persistent).await.unwrap();
    let api = Client {
        http: reqwest::Client::new(),
        base: stack.http_url.clone(),
    };
    let (status, again) = api
        .call("GET", &format!("/api/livestream/{id}"), &teacher, None)
        .await;
    assert_eq!(
        (status, again["title"].as_str(), again["status"].as_str()),
        (200, Some("Kept too"), Some("live"))
    );
    let (_, chat) = api
        .call("GET", &format!("/api/livestream/{id}/chat"), &teacher, None)
        .await;
    assert_eq!(chat["items"][0]["message"], "still here");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_http_api_answers_like_api_gateway_for_unknown_routes_and_cors() {
    let stack = LocalStack::start(config()).await.unwrap();
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
        ..config()
    })
    .await
    .unwrap();
    let api = Client {
        http: reqwest::Client::new(),
        base: stack.http_url.clone(),
    };
    let teacher = token("teacher-1", Role::Teacher);
    let (_, course) = api
        .call(
            "POST",
            "/api/courses",
            &teacher,
            Some(json!({"title": "Big"})),
        )
        .await;
    let (_, stream) = api
        .call(
            "POST",
            "/api/livestream/",
            &teacher,
            Some(json!({"title": "Big class", "course_id": course["id"]})),
        )
        .await;
    let id = stream["id"].as_str().unwrap().to_string();
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/start"),
            &teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let mut sockets = Vec::new();
    for i in 0..5 {
        let student = token(&format!("student-{i}"), Role::Student);
        sockets.push(connect(&stack, &student, &id).await.unwrap());
    }
    let sent_before = stack.fan_out_queue.sent();
    for message in ["first", "second"] {
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/livestream/{id}/chat"),
                &teacher,
                Some(json!({"message": message})),
            )
            .await;
        assert_eq!(status, 201);
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
