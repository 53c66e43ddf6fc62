//! A real class against the local stack, with real clients: a process killed with
//! sockets open, a client flooding its socket, a stream that ends or turns private
//! while sockets are open.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use livestream::auth::Role;
use local::{Config, LOCAL_JWT_SECRET, LocalStack, dev_token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn token(user: &str, role: Role) -> String {
    dev_token(LOCAL_JWT_SECRET, user, role, user, 1)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_string(),
        }
    }

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

    /// A live stream of `teacher-1` in a new course, with `enrolled` enrolled.
    async fn live_stream(&self, public: bool, enrolled: &[&str]) -> String {
        let teacher = token("teacher-1", Role::Teacher);
        let (_, course) = self
            .call(
                "POST",
                "/api/courses",
                &teacher,
                Some(json!({"title": "Rust"})),
            )
            .await;
        let course_id = course["id"].as_str().unwrap().to_string();
        for student in enrolled {
            let (status, _) = self
                .call(
                    "POST",
                    &format!("/api/courses/{course_id}/enrollments"),
                    &teacher,
                    Some(json!({"user_id": student})),
                )
                .await;
            assert_eq!(status, 201);
        }
        let (status, stream) = self
            .call(
                "POST",
                "/api/livestream/",
                &teacher,
                Some(json!({"title": "Lecture", "course_id": course_id, "is_public": public})),
            )
            .await;
        assert_eq!(status, 201, "{stream}");
        let id = stream["id"].as_str().unwrap().to_string();
        let (status, _) = self
            .call(
                "POST",
                &format!("/api/livestream/{id}/start"),
                &teacher,
                None,
            )
            .await;
        assert_eq!(status, 200);
        id
    }

    async fn stream(&self, id: &str) -> Value {
        let teacher = token("teacher-1", Role::Teacher);
        self.call("GET", &format!("/api/livestream/{id}"), &teacher, None)
            .await
            .1
    }

    /// Waits until the stream's viewer count is `expected` (the change is asynchronous
    /// only where a socket is involved); fails after a generous bound.
    async fn wait_for_viewers(&self, id: &str, expected: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let count = self.stream(id).await["viewer_count"].as_i64();
            if count == Some(expected) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "viewer_count stayed {count:?}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn connect(ws_url: &str, token: &str, stream_id: &str) -> Socket {
    let url = format!("{ws_url}/?token={token}&stream_id={stream_id}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Events (frames of one event or arrays of them) until `done`, or the socket's end.
async fn read_until(
    socket: &mut Socket,
    mut done: impl FnMut(&[Value]) -> bool,
) -> (Vec<Value>, bool) {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(&events) {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {events:?}"));
        match frame {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<Value>(&text).unwrap() {
                Value::Array(many) => events.extend(many),
                one => events.push(one),
            },
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return (events, true),
            Some(Ok(_)) => {}
        }
    }
    (events, false)
}

fn has(events: &[Value], kind: &str) -> bool {
    events.iter().any(|e| e["type"] == kind)
}

fn in_process() -> Config {
    Config::on_free_ports(None)
}

/// The `local` binary on free ports over `data_dir`, as `cargo run -p local` runs it.
struct Process {
    child: Child,
    http: String,
    ws: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn spawn_stack(data_dir: &std::path::Path) -> Process {
    let (http, ws, dynamo) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_local"))
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .args(["--http-port", &http.to_string()])
        .args(["--ws-port", &ws.to_string()])
        .args(["--dynamo-port", &dynamo.to_string()])
        // Ports no test reads: any free one.
        .args(["--sqs-port", "0", "--rtmp-port", "0", "--ivs-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let process = Process {
        child,
        http: format!("http://127.0.0.1:{http}"),
        ws: format!("ws://127.0.0.1:{ws}"),
    };
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{}/api/livestream/active", process.http))
        .send()
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stack did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    process
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_viewer_left_counted_by_a_killed_stack_is_not_counted_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_stack(dir.path()).await;
    let api = Api::new(&first.http);
    let id = api.live_stream(true, &[]).await;
    let mut socket = connect(&first.ws, &token("s1", Role::Student), &id).await;
    socket
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    read_until(&mut socket, |e| has(e, "pong")).await;
    api.wait_for_viewers(&id, 1).await;

    // kill -9: no `$disconnect`, no clean shutdown.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(socket);

    let second = spawn_stack(dir.path()).await;
    let api = Api::new(&second.http);
    let stream = api.stream(&id).await;
    assert_eq!(stream["viewer_count"], 0, "{stream}");
    assert_eq!(stream["max_viewers"], 1);
    // The viewer comes back and leaves cleanly: counted once, then not at all.
    let mut socket = connect(&second.ws, &token("s1", Role::Student), &id).await;
    api.wait_for_viewers(&id, 1).await;
    socket.close(None).await.unwrap();
    api.wait_for_viewers(&id, 0).await;
}

#[tokio::test]
async fn a_clean_shutdown_ends_open_sockets_presence_before_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..in_process()
    };
    let stack = LocalStack::start(config.clone()).await.unwrap();
    let api = Api::new(&stack.http_url);
    let id = api.live_stream(true, &[]).await;
    let _a = connect(&stack.ws_url, &token("s1", Role::Student), &id).await;
    let _b = connect(&stack.ws_url, &token("s2", Role::Student), &id).await;
    api.wait_for_viewers(&id, 2).await;
    stack.shutdown().await;

    let stack = LocalStack::start(config).await.unwrap();
    let api = Api::new(&stack.http_url);
    assert_eq!(api.stream(&id).await["viewer_count"], 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn stopping_sends_the_end_then_closes_every_socket() {
    let stack = LocalStack::start(in_process()).await.unwrap();
    let api = Api::new(&stack.http_url);
    let id = api.live_stream(true, &[]).await;
    let mut socket = connect(&stack.ws_url, &token("s1", Role::Student), &id).await;
    api.wait_for_viewers(&id, 1).await;
    let teacher = token("teacher-1", Role::Teacher);
    let (status, stopped) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/stop"),
            &teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(stopped["viewer_count"], 0);
    assert_eq!(stopped["max_viewers"], 1);
    let (events, closed) = read_until(&mut socket, |_| false).await;
    assert!(closed, "the server closes the socket");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "stream.status" && e["data"]["status"] == "ended"),
        "no stream.status ended before the close: {events:?}"
    );
    assert_eq!(api.stream(&id).await, stopped);
    // Connecting to an ended stream is refused.
    let url = format!(
        "{}/?token={}&stream_id={id}",
        stack.ws_url,
        token("s1", Role::Student)
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    stack.shutdown().await;
}

#[tokio::test]
async fn a_stream_turning_private_closes_outsiders_sockets() {
    let stack = LocalStack::start(in_process()).await.unwrap();
    let api = Api::new(&stack.http_url);
    let id = api.live_stream(true, &["enrolled"]).await;
    let mut insider = connect(&stack.ws_url, &token("enrolled", Role::Student), &id).await;
    let mut outsider = connect(&stack.ws_url, &token("outsider", Role::Student), &id).await;
    api.wait_for_viewers(&id, 2).await;
    let teacher = token("teacher-1", Role::Teacher);
    let (status, _) = api
        .call(
            "PUT",
            &format!("/api/livestream/{id}"),
            &teacher,
            Some(json!({"is_public": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/chat"),
            &teacher,
            Some(json!({"message": "for the course only"})),
        )
        .await;
    assert_eq!(status, 201);

    let (events, closed) = read_until(&mut outsider, |_| false).await;
    assert!(closed);
    assert!(!has(&events, "chat.message"), "{events:?}");
    let (events, closed) = read_until(&mut insider, |e| has(e, "chat.message")).await;
    assert!(!closed, "{events:?}");
    api.wait_for_viewers(&id, 1).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn a_flooding_client_is_limited_and_does_not_hold_back_another() {
    let stack = LocalStack::start(in_process()).await.unwrap();
    let api = Api::new(&stack.http_url);
    let id = api.live_stream(true, &[]).await;
    let mut flooder = connect(&stack.ws_url, &token("flooder", Role::Student), &id).await;
    let mut other = connect(&stack.ws_url, &token("other", Role::Student), &id).await;
    api.wait_for_viewers(&id, 2).await;

    let frames: Vec<Result<Message, _>> = (0..1000)
        .map(|i| {
            Ok(Message::Text(
                format!(r#"{{"action":"chat","message":"spam {i}"}}"#).into(),
            ))
        })
        .collect();
    flooder
        .send_all(&mut futures::stream::iter(frames))
        .await
        .unwrap();
    // While the flood is being worked off, the other student's chat goes through.
    other
        .send(Message::Text(
            r#"{"action":"chat","message":"can you hear me?"}"#.into(),
        ))
        .await
        .unwrap();
    let (events, closed) = read_until(&mut other, |e| has(e, "chat.accepted")).await;
    assert!(!closed, "{events:?}");

    // The flooder is told, and stays connected: its keepalive is answered.
    flooder
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    let (events, closed) = read_until(&mut flooder, |e| has(e, "pong")).await;
    assert!(!closed);
    let limited = events
        .iter()
        .filter(|e| e["type"] == "error" && e["data"]["code"] == "rate_limited")
        .count();
    let accepted = events
        .iter()
        .filter(|e| e["type"] == "chat.accepted")
        .count();
    assert!(limited > 900, "limited {limited}, accepted {accepted}");
    assert!(accepted <= 40, "accepted {accepted}");
    stack.shutdown().await;
}
