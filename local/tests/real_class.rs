//! A real class against the local stack, with real clients: a process killed with
//! sockets open, a client flooding its socket, a stream that ends or turns private
//! while sockets are open.

mod common;

use common::{
    Client, TEACHER, connect, has, has_kind, read_until, read_until_closed, spawn_stack, token,
};
use futures::SinkExt;
use livestream::auth::Role;
use local::{Config, LocalStack};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_viewer_left_counted_by_a_killed_stack_is_not_counted_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_stack(dir.path()).await;
    let api = Client::new(&first.http);
    let id = api.live_stream(true, &[]).await;
    let mut socket = connect(&first.ws, &token("s1", Role::Student), &id)
        .await
        .unwrap();
    socket
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    read_until(&mut socket, |e| has_kind(e, "pong")).await;
    api.wait_for_viewers(&id, 1).await;

    // kill -9: no `$disconnect`, no clean shutdown.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(socket);

    let second = spawn_stack(dir.path()).await;
    let api = Client::new(&second.http);
    let stream = api.stream(&id).await;
    assert_eq!(stream["viewer_count"], 0, "{stream}");
    assert_eq!(stream["max_viewers"], 1);
    // The viewer comes back and leaves cleanly: counted once, then not at all.
    let mut socket = connect(&second.ws, &token("s1", Role::Student), &id)
        .await
        .unwrap();
    api.wait_for_viewers(&id, 1).await;
    socket.close(None).await.unwrap();
    api.wait_for_viewers(&id, 0).await;
}

#[tokio::test]
async fn a_clean_shutdown_ends_open_sockets_presence_before_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..Config::on_free_ports(None)
    };
    let stack = LocalStack::start(config.clone()).await.unwrap();
    let api = Client::new(&stack.http_url);
    let id = api.live_stream(true, &[]).await;
    let _a = connect(&stack.ws_url, &token("s1", Role::Student), &id)
        .await
        .unwrap();
    let _b = connect(&stack.ws_url, &token("s2", Role::Student), &id)
        .await
        .unwrap();
    api.wait_for_viewers(&id, 2).await;
    stack.shutdown().await;

    let stack = LocalStack::start(config).await.unwrap();
    let api = Client::new(&stack.http_url);
    assert_eq!(api.stream(&id).await["viewer_count"], 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn stopping_sends_the_end_then_closes_every_socket() {
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let api = Client::new(&stack.http_url);
    let id = api.live_stream(true, &[]).await;
    let mut socket = connect(&stack.ws_url, &token("s1", Role::Student), &id)
        .await
        .unwrap();
    api.wait_for_viewers(&id, 1).await;
    let stopped = api.stop(&id).await;
    assert_eq!(stopped["viewer_count"], 0);
    assert_eq!(stopped["max_viewers"], 1);
    // The server closes the socket.
    let (events, _) = read_until_closed(&mut socket).await;
    assert!(
        has(&events, "stream.status", "status", "ended"),
        "no stream.status ended before the close: {events:?}"
    );
    assert_eq!(api.stream(&id).await, stopped);
    // Connecting to an ended stream is refused.
    assert!(
        connect(&stack.ws_url, &token("s1", Role::Student), &id)
            .await
            .is_err()
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_stream_turning_private_closes_outsiders_sockets() {
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let api = Client::new(&stack.http_url);
    let id = api.live_stream(true, &["enrolled"]).await;
    let mut insider = connect(&stack.ws_url, &token("enrolled", Role::Student), &id)
        .await
        .unwrap();
    let mut outsider = connect(&stack.ws_url, &token("outsider", Role::Student), &id)
        .await
        .unwrap();
    api.wait_for_viewers(&id, 2).await;
    let teacher = token(TEACHER, Role::Teacher);
    let (status, _) = api
        .call(
            "PUT",
            &format!("/api/livestream/{id}"),
            &teacher,
            Some(json!({"is_public": false})),
        )
        .await;
    assert_eq!(status, 200);
    api.chat(&id, &teacher, "for the course only").await;

    let (events, _) = read_until_closed(&mut outsider).await;
    assert!(!has_kind(&events, "chat.message"), "{events:?}");
    read_until(&mut insider, |e| has_kind(e, "chat.message")).await;
    api.wait_for_viewers(&id, 1).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn a_flooding_client_is_limited_and_does_not_hold_back_another() {
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let api = Client::new(&stack.http_url);
    let id = api.live_stream(true, &[]).await;
    let mut flooder = connect(&stack.ws_url, &token("flooder", Role::Student), &id)
        .await
        .unwrap();
    let mut other = connect(&stack.ws_url, &token("other", Role::Student), &id)
        .await
        .unwrap();
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
    read_until(&mut other, |e| has_kind(e, "chat.accepted")).await;

    // The flooder is told, and stays connected: its keepalive is answered.
    flooder
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    let events = read_until(&mut flooder, |e| has_kind(e, "pong")).await;
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
