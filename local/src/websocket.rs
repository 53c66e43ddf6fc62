//! The WebSocket API as API Gateway runs it: `$connect` decides whether the upgrade
//! happens, every text frame goes to `$default`, closing runs `$disconnect`; limits of
//! 2 hours per connection, 10 minutes idle and 128 KB per frame; and the
//! `@connections/{id}` management API (POST, GET, DELETE; 410 for unknown ids).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use livestream::apigw::{WebSocketEventSpec, websocket_event};
use tokio::sync::{mpsc, watch};

use crate::invoker::Invoker;

/// Each socket's read and write buffer.
const SOCKET_BUFFER_BYTES: usize = 8 * 1024;

/// API Gateway's limits, configurable for tests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_duration: Duration,
    pub idle_timeout: Duration,
    pub max_frame_bytes: usize,
    /// Frames of one connection waiting for `$default`; a frame arriving when this
    /// many wait is dropped and the client gets an `error` event (`rate_limited`).
    /// Bounds the memory and the store load one flooding client can cause.
    pub max_pending_frames: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(2 * 3600),
            idle_timeout: Duration::from_secs(10 * 60),
            max_frame_bytes: 128 * 1024,
            max_pending_frames: 32,
        }
    }
}

enum Outbound {
    Text(String),
    Close,
}

struct Client {
    outbound: mpsc::UnboundedSender<Outbound>,
    connected_at: DateTime<Utc>,
    last_active: Arc<Mutex<DateTime<Utc>>>,
    source_ip: String,
    user_agent: String,
}

/// The WebSocket API's shared state.
pub struct WebSocketApi {
    pub invoker: Arc<Invoker>,
    pub limits: Limits,
    pub stage: String,
    clients: Mutex<HashMap<String, Client>>,
    shutdown: watch::Receiver<bool>,
}

impl WebSocketApi {
    pub fn new(invoker: Arc<Invoker>, limits: Limits, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            invoker,
            limits,
            stage: "local".into(),
            clients: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Open connections right now.
    pub fn connection_count(&self) -> usize {
        self.clients.lock().unwrap().len()
    }
}

fn new_connection_id() -> String {
    use base64::Engine;
    let bytes: [u8; 10] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn route_function(route_key: &str) -> &'static str {
    livestream_ws::ROUTES
        .iter()
        .find(|(key, _)| *key == route_key)
        .or_else(|| {
            livestream_ws::ROUTES
                .iter()
                .find(|(key, _)| *key == "$default")
        })
        .map(|(_, f)| *f)
        .unwrap_or("ws-default")
}

/// The route key of a message: `$request.body.action` when a route has that key,
/// else `$default`.
fn select_route(body: &str) -> &'static str {
    let action = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(str::to_string));
    match action {
        Some(a) => livestream_ws::ROUTES
            .iter()
            .find(|(key, _)| *key == a)
            .map_or("$default", |(key, _)| key),
        None => "$default",
    }
}

/// `GET /` with an upgrade: runs `$connect`, then upgrades only if it answered 2xx.
pub async fn upgrade(
    State(api): State<Arc<WebSocketApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let started = Instant::now();
    let connection_id = new_connection_id();
    let connected_at = Utc::now();
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Registered before `$connect` runs: a live event posted right after the
    // function accepts waits in the queue instead of finding the connection gone.
    let (outbound, queue) = mpsc::unbounded_channel();
    let last_active = Arc::new(Mutex::new(connected_at));
    api.clients.lock().unwrap().insert(
        connection_id.clone(),
        Client {
            outbound,
            connected_at,
            last_active: last_active.clone(),
            source_ip: peer.ip().to_string(),
            user_agent,
        },
    );
    let source_ip = peer.ip().to_string();
    let event = websocket_event(&WebSocketEventSpec {
        route_key: "$connect",
        connection_id: &connection_id,
        connected_at: connected_at.timestamp_millis(),
        query: uri.query().unwrap_or(""),
        headers: header_pairs,
        body: None,
        source_ip: &source_ip,
        domain_name: "localhost",
        stage: &api.stage,
    });
    let function = route_function("$connect");
    let status = api.invoker.websocket(function, event).await;
    tracing::info!(
        route = "$connect",
        status,
        latency_ms = started.elapsed().as_millis() as u64,
        function,
        connection = %connection_id,
        "websocket"
    );
    if !(200..300).contains(&status) {
        api.clients.lock().unwrap().remove(&connection_id);
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok());
        return status.unwrap_or(StatusCode::FORBIDDEN).into_response();
    }
    let stream_id = livestream::apigw::query_parameters(uri.query().unwrap_or(""))
        .get("stream_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let limits = api.limits;
    ws.max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        // The frames are small: tungstenite's default 128 KiB buffers each way were
        // allocated and zeroed for every socket, a quarter of a gigabyte for a class
        // of 1,000 and a large share of a connect storm's CPU. A larger message is
        // still read whole, in more reads.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            serve_connection(
                api,
                socket,
                Opened {
                    connection_id,
                    stream_id,
                    connected_at,
                    last_active,
                },
                queue,
            )
        })
}

/// What `$connect` established for a socket.
struct Opened {
    connection_id: String,
    stream_id: String,
    connected_at: DateTime<Utc>,
    last_active: Arc<Mutex<DateTime<Utc>>>,
}

/// Whether a frame is the keepalive action, which never waits behind other frames.
fn is_keepalive(text: &str) -> bool {
    text.len() < 64 && select_action(text).as_deref() == Some("ping")
}

fn select_action(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("action")?
        .as_str()
        .map(str::to_string)
}

/// Runs `$default` for one frame.
async fn dispatch(api: &WebSocketApi, opened: &Opened, text: &str) {
    let started = Instant::now();
    let route_key = select_route(text);
    let function = route_function(route_key);
    let event = websocket_event(&WebSocketEventSpec {
        route_key,
        connection_id: &opened.connection_id,
        connected_at: opened.connected_at.timestamp_millis(),
        body: Some(text),
        domain_name: "localhost",
        stage: &api.stage,
        ..Default::default()
    });
    let status = api.invoker.websocket(function, event).await;
    tracing::info!(route = route_key, status, latency_ms = started.elapsed().as_millis() as u64, function, connection = %opened.connection_id, "websocket");
}

/// What the socket's reader tells the task that writes to it.
enum FromReader {
    /// A frame was dropped: this `error` event goes to the client.
    Dropped(String),
    /// The frame was too big or the socket failed: close with 1009.
    Failed,
}

/// The socket's reader and writer. Frames are handed to a worker through a bounded
/// queue, so reading (and the protocol's ping/pong) never waits for `$default`; the
/// keepalive action has its own lane ahead of the queue.
async fn serve_connection(
    api: Arc<WebSocketApi>,
    socket: WebSocket,
    opened: Opened,
    mut queue: mpsc::UnboundedReceiver<Outbound>,
) {
    use futures::{SinkExt, StreamExt};

    let limits = api.limits;
    let started = tokio::time::Instant::now();
    let ends_at = started + limits.max_duration;
    // Milliseconds from `started` to the last frame either way, for the idle limit.
    let last_activity = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let touch = move |activity: &std::sync::atomic::AtomicU64| {
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.fetch_max(elapsed, std::sync::atomic::Ordering::Relaxed);
    };
    let mut shutdown = api.shutdown.clone();
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    let opened = Arc::new(opened);
    let (frames, mut pending) = mpsc::channel::<String>(limits.max_pending_frames.max(1));
    let (pings, mut pending_pings) = mpsc::channel::<String>(4);
    let worker = {
        let api = api.clone();
        let opened = opened.clone();
        tokio::spawn(async move {
            loop {
                let text = tokio::select! {
                    biased;
                    Some(ping) = pending_pings.recv() => ping,
                    Some(frame) = pending.recv() => frame,
                    else => break,
                };
                dispatch(&api, &opened, &text).await;
            }
        })
    };
    // Reading in a task of its own: in one `select!` with the writes, every frame sent
    // polled the socket for input too, and each poll readied (zeroed) its read buffer.
    let (mut sink, mut stream) = socket.split();
    let (to_writer, mut from_reader) = mpsc::channel::<FromReader>(4);
    // It ends when the client closes or fails; then `from_reader` ends.
    let reader = {
        let opened = opened.clone();
        let last_activity = last_activity.clone();
        tokio::spawn(async move {
            while let Some(incoming) = stream.next().await {
                let text = match incoming {
                    Ok(Message::Text(text)) => text.to_string(),
                    Ok(Message::Binary(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                    Ok(Message::Ping(_) | Message::Pong(_)) => {
                        touch(&last_activity);
                        continue;
                    }
                    Ok(Message::Close(_)) => break,
                    Err(err) => {
                        tracing::info!(connection = %opened.connection_id, error = %err, "socket error");
                        let _ = to_writer.send(FromReader::Failed).await;
                        break;
                    }
                };
                touch(&last_activity);
                *opened.last_active.lock().unwrap() = Utc::now();
                let lane = if is_keepalive(&text) { &pings } else { &frames };
                if let Err(mpsc::error::TrySendError::Full(text)) = lane.try_send(text) {
                    let dropped = dropped_frame_event(&opened.stream_id, &text);
                    if to_writer.send(FromReader::Dropped(dropped)).await.is_err() {
                        break;
                    }
                }
            }
        })
    };
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            from = from_reader.recv() => match from {
                Some(FromReader::Dropped(event)) => {
                    if sink.send(Message::Text(event.into())).await.is_err() {
                        break;
                    }
                }
                Some(FromReader::Failed) => {
                    let _ = sink.send(close(1009, "Message too big")).await;
                    break;
                }
                None => break,
            },
            outbound = queue.recv() => match outbound {
                Some(Outbound::Text(text)) => {
                    touch(&last_activity);
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.send(close(1000, "Closed by the server")).await;
                    break;
                }
            },
            // The timer is moved on only when it fires, not at every frame.
            _ = &mut idle => {
                let last = last_activity.load(std::sync::atomic::Ordering::Relaxed);
                let idle_until = started + Duration::from_millis(last) + limits.idle_timeout;
                if idle_until > tokio::time::Instant::now() {
                    idle.as_mut().reset(idle_until);
                    continue;
                }
                let _ = sink.send(close(1001, "Going away: idle timeout")).await;
                break;
            }
            _ = tokio::time::sleep_until(ends_at) => {
                let _ = sink.send(close(1001, "Going away: connection duration limit")).await;
                break;
            }
            _ = shutdown.changed() => {
                let _ = sink.send(close(1001, "Going away: server shutting down")).await;
                break;
            }
        }
    }
    // Posts from now on answer 410, as for a closed connection.
    drop(queue);
    // The reader holds the lanes' senders: ending it closes them.
    reader.abort();
    let _ = reader.await;
    // Frames already accepted finish first (at most the queue's bound), as in-flight
    // invocations do on API Gateway; then `$disconnect`. The connection stays listed
    // until that returns, so a shutdown waits for it.
    let _ = worker.await;
    disconnect(&api, &opened.connection_id, opened.connected_at).await;
    api.clients.lock().unwrap().remove(&opened.connection_id);
}

/// The `error` event for a frame dropped because too many were waiting.
fn dropped_frame_event(stream_id: &str, text: &str) -> String {
    serde_json::json!({
        "type": "error",
        "stream_id": stream_id,
        "data": {
            "code": "rate_limited",
            "message": "too many messages are waiting on this connection; this one was dropped",
            "action": select_action(text).unwrap_or_default(),
            "retry_after_seconds": 1,
        },
    })
    .to_string()
}

async fn disconnect(api: &WebSocketApi, connection_id: &str, connected_at: DateTime<Utc>) {
    let started = Instant::now();
    let event = websocket_event(&WebSocketEventSpec {
        route_key: "$disconnect",
        connection_id,
        connected_at: connected_at.timestamp_millis(),
        domain_name: "localhost",
        stage: &api.stage,
        ..Default::default()
    });
    let function = route_function("$disconnect");
    let status = api.invoker.websocket(function, event).await;
    tracing::info!(route = "$disconnect", status, latency_ms = started.elapsed().as_millis() as u64, function, connection = %connection_id, "websocket");
}

/// An error of the management API as API Gateway sends it (restJson1): the shape's
/// name in `x-amzn-ErrorType`, which is what the SDKs match on, and a `message`.
fn management_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", error_type),
            ("content-type", "application/json"),
        ],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// `GoneException` (410): no such connection, or it has closed.
pub(crate) fn gone() -> Response {
    management_error(StatusCode::GONE, "GoneException", "Gone")
}

/// `POST @connections/{id}`: sends the body to the client as one frame.
pub async fn post_to_connection(
    State(api): State<Arc<WebSocketApi>>,
    Path(params): Path<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let Some(id) = connection_param(&params) else {
        return gone();
    };
    if body.len() > 128 * 1024 {
        return management_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "Message too long",
        );
    }
    let clients = api.clients.lock().unwrap();
    match clients.get(&id) {
        Some(client)
            if client
                .outbound
                .send(Outbound::Text(String::from_utf8_lossy(&body).into_owned()))
                .is_ok() =>
        {
            StatusCode::OK.into_response()
        }
        _ => gone(),
    }
}

/// `GET @connections/{id}`: when it connected, who, when it was last active, in API
/// Gateway's shape: `connectedAt` and `lastActiveAt` as ISO 8601 date-times (UTC,
/// milliseconds), `identity` with `sourceIp` and `userAgent`.
pub async fn get_connection(
    State(api): State<Arc<WebSocketApi>>,
    Path(params): Path<Vec<(String, String)>>,
) -> Response {
    let Some(id) = connection_param(&params) else {
        return gone();
    };
    let clients = api.clients.lock().unwrap();
    let Some(client) = clients.get(&id) else {
        return gone();
    };
    let last_active = *client.last_active.lock().unwrap();
    let timestamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    axum::Json(serde_json::json!({
        "connectedAt": timestamp(client.connected_at),
        "lastActiveAt": timestamp(last_active),
        "identity": { "sourceIp": client.source_ip, "userAgent": client.user_agent },
    }))
    .into_response()
}

/// `DELETE @connections/{id}`: closes the connection (its `$disconnect` runs).
pub async fn delete_connection(
    State(api): State<Arc<WebSocketApi>>,
    Path(params): Path<Vec<(String, String)>>,
) -> Response {
    let Some(id) = connection_param(&params) else {
        return gone();
    };
    let clients = api.clients.lock().unwrap();
    match clients.get(&id) {
        Some(client) if client.outbound.send(Outbound::Close).is_ok() => {
            StatusCode::NO_CONTENT.into_response()
        }
        _ => gone(),
    }
}

fn connection_param(params: &[(String, String)]) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
}

/// The WebSocket endpoint and `@connections`, with or without a stage prefix.
pub fn router(api: Arc<WebSocketApi>) -> axum::Router {
    use axum::routing::{any, get};
    let management = || {
        axum::routing::post(post_to_connection)
            .get(get_connection)
            .delete(delete_connection)
    };
    axum::Router::new()
        .route("/", any(upgrade))
        .route("/{stage}", get(upgrade))
        .route("/@connections/{id}", management())
        .route("/{stage}/@connections/{id}", management())
        .with_state(api)
}
