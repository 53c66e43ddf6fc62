//! Live video end to end: the local stack on random ports, a real encoder (ffmpeg)
//! pushing with the stream key, real WebSocket clients, ffprobe reading what students
//! play. Without ffmpeg the tests say how to install it and pass, except under CI.

mod common;

use std::time::Duration;

use common::{
    Client, Encoder, Socket, connect, encoder_available, eventually, has, probe, read_until, token,
};
use livestream::auth::Role;
use local::{Config, LocalStack};
use serde_json::{Value, json};

struct Class {
    stack: LocalStack,
    api: Client,
    teacher: String,
    course_id: String,
}

impl Class {
    async fn start(config: Config) -> Self {
        let stack = LocalStack::start(config).await.unwrap();
        let api = Client::new(&stack.http_url);
        let teacher = token("teacher-1", Role::Teacher);
        let (status, course) = api
            .call(
                "POST",
                "/api/courses",
                &teacher,
                Some(json!({"title": "Rust"})),
            )
            .await;
        assert_eq!(status, 201);
        let course_id = course["id"].as_str().unwrap().to_string();
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/courses/{course_id}/enrollments"),
                &teacher,
                Some(json!({"user_id": "student-1"})),
            )
            .await;
        assert_eq!(status, 201);
        Self {
            stack,
            api,
            teacher,
            course_id,
        }
    }

    async fn stream(&self, public: bool) -> String {
        let (status, stream) = self
            .api
            .call(
                "POST",
                "/api/livestream",
                &self.teacher,
                Some(json!({
                    "title": "Live video", "course_id": self.course_id, "is_public": public,
                    "quality_settings": { "resolution": "720p", "frame_rate": 30, "bitrate_kbps": 2500 }
                })),
            )
            .await;
        assert_eq!(status, 201, "{stream}");
        assert!(stream["stream_key"].as_str().unwrap().starts_with("sk_"));
        stream["id"].as_str().unwrap().to_string()
    }

    /// The instructor's ingest: `(ingest_url, stream_key, whole answer)`.
    async fn ingest(&self, id: &str) -> (String, String, Value) {
        let (status, ingest) = self
            .api
            .call(
                "GET",
                &format!("/api/livestream/{id}/ingest"),
                &self.teacher,
                None,
            )
            .await;
        assert_eq!(status, 200, "{ingest}");
        (
            ingest["ingest_url"].as_str().unwrap().to_string(),
            ingest["stream_key"].as_str().unwrap().to_string(),
            ingest,
        )
    }

    async fn get(&self, id: &str) -> Value {
        let (status, stream) = self
            .api
            .call("GET", &format!("/api/livestream/{id}"), &self.teacher, None)
            .await;
        assert_eq!(status, 200);
        stream
    }

    async fn playback(&self, id: &str, who: &str) -> (u16, Value) {
        self.api
            .call("GET", &format!("/api/livestream/{id}/playback"), who, None)
            .await
    }

    /// Waits until the stream's playlist lists a segment (the first pushed frames are
    /// playable).
    async fn playable(&self, url: &str) {
        eventually("the playlist lists a segment", || async {
            let (status, body) = self.api.fetch(url).await;
            (status == 200 && body.contains(".m4s")).then_some(())
        })
        .await;
    }
}

fn ingest_event(events: &[Value], state: &str) -> bool {
    has(events, "stream.ingest", "state", state)
}

async fn student_socket(class: &Class, id: &str) -> Socket {
    connect(&class.stack.ws_url, &token("student-1", Role::Student), id)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_push_takes_the_class_live_students_play_it_and_a_dropped_push_comes_back() {
    if !encoder_available() {
        return;
    }
    let class = Class::start(Config::on_free_ports(None)).await;
    let id = class.stream(true).await;
    let mut socket = student_socket(&class, &id).await;
    let (ingest_url, key, ingest) = class.ingest(&id).await;
    assert_eq!(ingest["state"], "idle");
    assert_eq!(ingest_url, class.stack.rtmp_url);
    assert!(
        !class.get(&id).await["playback_url"]
            .as_str()
            .unwrap()
            .contains(&key),
        "no stream key in a playback URL"
    );

    let encoder = Encoder::push(&ingest_url, &key);
    read_until(&mut socket, |e| {
        ingest_event(e, "connected") && has(e, "stream.status", "status", "live")
    })
    .await;
    let stream = class.get(&id).await;
    assert_eq!(stream["status"], "live");
    assert_eq!(stream["live_from_encoder"], true);

    let student = token("student-1", Role::Student);
    let (status, playback) = class.playback(&id, &student).await;
    assert_eq!(status, 200, "{playback}");
    assert!(
        playback["token"].is_null(),
        "a public stream plays without a token"
    );
    let url = playback["playback_url"].as_str().unwrap().to_string();
    class.playable(&url).await;
    let streams = probe(&url).await;
    assert!(streams.contains(&("h264".into(), 1280, 720)), "{streams:?}");
    assert!(
        streams.iter().any(|(codec, ..)| codec == "aac"),
        "{streams:?}"
    );

    let health = eventually("the push's health", || async {
        let (_, _, ingest) = class.ingest(&id).await;
        (ingest["state"] == "connected" && ingest["health"]["width"] == 1280).then_some(ingest)
    })
    .await;
    assert_eq!(health["health"]["height"], 720);
    assert!(
        health["health"]["video_codec"]
            .as_str()
            .unwrap()
            .starts_with("avc1.")
    );
    assert!(health["health"]["frame_rate"].as_f64().unwrap() > 0.0);

    // The encoder dies (a crash, a closed lid): the class waits for it.
    encoder.kill().await;
    read_until(&mut socket, |e| ingest_event(e, "reconnecting")).await;
    let dropped = class.get(&id).await;
    assert_eq!(dropped["status"], "live");
    assert!(dropped["ingest"]["reconnect_deadline"].is_string());

    // It comes back within the grace period: the same class goes on.
    let mut encoder = Encoder::push(&ingest_url, &key);
    read_until(&mut socket, |e| ingest_event(e, "connected")).await;
    let back = class.get(&id).await;
    assert_eq!(back["status"], "live");
    assert_eq!(back["started_at"], stream["started_at"]);

    // The teacher stops the class: the encoder is cut off and the key refuses new pushes.
    let (status, _) = class
        .api
        .call(
            "POST",
            &format!("/api/livestream/{id}/stop"),
            &class.teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    encoder.exited().await;
    let mut again = Encoder::push(&ingest_url, &key);
    assert!(
        !again.exited().await.success(),
        "a push after the stop is refused"
    );
    let (status, error) = class.playback(&id, &student).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("stream_finished"))
    );
}

#[tokio::test]
async fn pushes_with_a_wrong_rotated_away_or_finished_key_are_refused_and_a_second_push_takes_over()
{
    if !encoder_available() {
        return;
    }
    let class = Class::start(Config::on_free_ports(None)).await;
    let id = class.stream(true).await;
    let (ingest_url, key, _) = class.ingest(&id).await;

    let mut wrong = Encoder::push(&ingest_url, "sk_us-east-1_notakeyofthisstack");
    assert!(!wrong.exited().await.success());
    let stream = class.get(&id).await;
    assert_eq!(
        (
            stream["status"].as_str(),
            stream["ingest"]["state"].as_str()
        ),
        (Some("scheduled"), Some("idle"))
    );
    let (status, _) = class
        .api
        .fetch(stream["playback_url"].as_str().unwrap())
        .await;
    assert_eq!(status, 404, "nothing was written");

    // A second push on a key already pushing takes over; the first is cut off.
    let mut first = Encoder::push(&ingest_url, &key);
    let session = eventually("the first push connects", || async {
        let s = class.get(&id).await;
        (s["ingest"]["state"] == "connected").then(|| s["ingest"]["session_id"].clone())
    })
    .await;
    let mut second = Encoder::push(&ingest_url, &key);
    first.exited().await;
    eventually("the second push is the stream's", || async {
        let s = class.get(&id).await;
        (s["ingest"]["state"] == "connected" && s["ingest"]["session_id"] != session).then_some(())
    })
    .await;
    assert!(second.running());

    // Rotating the key cuts the encoder on the old one off; the old key is refused.
    let (status, rotated) = class
        .api
        .call(
            "POST",
            &format!("/api/livestream/{id}/stream-key"),
            &class.teacher,
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["stream_key"].as_str().unwrap();
    assert_ne!(new_key, key);
    second.exited().await;
    let mut old = Encoder::push(&ingest_url, &key);
    assert!(
        !old.exited().await.success(),
        "the rotated-away key is refused"
    );
    assert_eq!(class.ingest(&id).await.1, new_key);
    let new = Encoder::push(&ingest_url, new_key);
    eventually("the new key pushes", || async {
        (class.get(&id).await["ingest"]["state"] == "connected").then_some(())
    })
    .await;
    drop(new);

    // A students' key is nothing: only the instructor reads it.
    let (status, _) = class
        .api
        .call(
            "GET",
            &format!("/api/livestream/{id}/ingest"),
            &token("student-1", Role::Student),
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        class
            .playback(&id, &token("student-1", Role::Student))
            .await
            .1
            .get("stream_key")
            .is_none()
    );

    // A cancelled stream's key is refused.
    let cancelled = class.stream(true).await;
    let (_, cancelled_key, _) = class.ingest(&cancelled).await;
    let (status, _) = class
        .api
        .call(
            "POST",
            &format!("/api/livestream/{cancelled}/cancel"),
            &class.teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let mut late = Encoder::push(&ingest_url, &cancelled_key);
    assert!(
        !late.exited().await.success(),
        "a cancelled stream's key is refused"
    );
    assert_eq!(class.get(&cancelled).await["status"], "cancelled");
}

#[tokio::test]
async fn a_class_whose_push_does_not_come_back_ends_with_exact_final_stats() {
    if !encoder_available() {
        return;
    }
    let class = Class::start(Config {
        ingest_grace: Duration::from_secs(2),
        sweep_interval: Duration::from_millis(500),
        ..Config::on_free_ports(None)
    })
    .await;
    let id = class.stream(true).await;
    let (ingest_url, key, _) = class.ingest(&id).await;
    let encoder = Encoder::push(&ingest_url, &key);
    let mut socket = student_socket(&class, &id).await;
    read_until(&mut socket, |e| has(e, "stream.status", "status", "live")).await;
    // Two more students over HTTP; the socket's student joins over HTTP too (one viewer).
    for student in ["student-1", "student-2", "student-3"] {
        let (status, _) = class
            .api
            .call(
                "POST",
                &format!("/api/livestream/{id}/join"),
                &token(student, Role::Student),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
    eventually("three viewers", || async {
        (class.get(&id).await["viewer_count"] == 3).then_some(())
    })
    .await;

    encoder.kill().await;
    let events = read_until(&mut socket, |e| has(e, "stream.status", "status", "ended")).await;
    assert!(ingest_event(&events, "reconnecting"));
    let ended = class.get(&id).await;
    assert_eq!(ended["status"], "ended");
    assert_eq!(
        (
            ended["viewer_count"].as_i64(),
            ended["max_viewers"].as_i64(),
            ended["unique_viewers"].as_i64()
        ),
        (Some(0), Some(3), Some(3))
    );
    let (status, stats) = class
        .api
        .call(
            "GET",
            &format!("/api/livestream/{id}/stats"),
            &class.teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            stats["status"].as_str(),
            stats["max_viewers"].as_i64(),
            stats["unique_viewers"].as_i64(),
            stats["viewer_count"].as_i64()
        ),
        (Some("ended"), Some(3), Some(3), Some(0))
    );
    assert_eq!(stats["duration"], ended["duration"]);
    // The server closed the class's sockets.
    let closed = tokio::time::timeout(common::WAIT, async {
        use futures::StreamExt;
        while let Some(Ok(frame)) = socket.next().await {
            if matches!(frame, tokio_tungstenite::tungstenite::Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket was closed by the server");
    let mut again = Encoder::push(&ingest_url, &key);
    assert!(
        !again.exited().await.success(),
        "the ended class's key is refused"
    );
}

/// A viewer token as the functions sign it (ES384 with the stack's playback key),
/// expired or for another channel.
fn token_for(data_dir: &std::path::Path, channel_arn: &str, exp: i64) -> String {
    let pem = std::fs::read(data_dir.join("playback-key.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384),
        &json!({ "aws:channel-arn": channel_arn, "aws:viewer-id": "student-1", "exp": exp }),
        &key,
    )
    .unwrap()
}

#[tokio::test]
async fn a_private_stream_plays_only_with_a_valid_token_for_its_channel() {
    if !encoder_available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let class = Class::start(Config::on_free_ports(Some(data.path().to_path_buf()))).await;
    let id = class.stream(false).await;
    let other = class.stream(false).await;
    let (ingest_url, key, _) = class.ingest(&id).await;
    let _encoder = Encoder::push(&ingest_url, &key);

    let enrolled = token("student-1", Role::Student);
    let (status, playback) = class.playback(&id, &enrolled).await;
    assert_eq!(status, 200, "{playback}");
    let url = playback["playback_url"].as_str().unwrap().to_string();
    let viewer_token = playback["token"].as_str().unwrap();
    assert!(url.ends_with(&format!("?token={viewer_token}")));
    assert!(playback["expires_at"].is_string());
    class.playable(&url).await;
    let streams = probe(&url).await;
    assert!(streams.contains(&("h264".into(), 1280, 720)), "{streams:?}");

    let bare = url.split('?').next().unwrap().to_string();
    assert_eq!(class.api.fetch(&bare).await.0, 403, "no token");
    let (_, other_playback) = class.playback(&other, &enrolled).await;
    let other_token = other_playback["token"].as_str().unwrap();
    assert_eq!(
        class
            .api
            .fetch(&format!("{bare}?token={other_token}"))
            .await
            .0,
        403,
        "another channel's token"
    );
    let arn = class.get(&id).await["channel_arn"]
        .as_str()
        .unwrap()
        .to_string();
    let expired = token_for(data.path(), &arn, chrono::Utc::now().timestamp() - 5);
    assert_eq!(
        class.api.fetch(&format!("{bare}?token={expired}")).await.0,
        403,
        "expired"
    );
    let fresh = token_for(data.path(), &arn, chrono::Utc::now().timestamp() + 60);
    assert_eq!(
        class.api.fetch(&format!("{bare}?token={fresh}")).await.0,
        200
    );

    // A student not enrolled gets no token.
    let (status, error) = class
        .playback(&id, &token("student-2", Role::Student))
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("stream_private"))
    );
}

#[tokio::test]
async fn a_stream_turned_private_refuses_the_playback_of_those_who_lost_the_right() {
    let class = Class::start(Config::on_free_ports(None)).await;
    let id = class.stream(true).await;
    let outsider = token("student-2", Role::Student);
    let (status, playback) = class.playback(&id, &outsider).await;
    assert_eq!(status, 200);
    let url = playback["playback_url"].as_str().unwrap().to_string();
    // Offline, but not refused: the channel plays for anyone while public.
    assert_eq!(class.api.fetch(&url).await.0, 404);

    let (status, _) = class
        .api
        .call(
            "PUT",
            &format!("/api/livestream/{id}"),
            &class.teacher,
            Some(json!({"is_public": false})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        class.api.fetch(&url).await.0,
        403,
        "the channel now wants a token"
    );
    let (status, _) = class.playback(&id, &outsider).await;
    assert_eq!(status, 403, "no new token for who may not watch");
    let (status, playback) = class
        .playback(&id, &token("student-1", Role::Student))
        .await;
    assert_eq!(status, 200);
    assert!(playback["token"].is_string());
}

#[tokio::test]
async fn the_local_stack_carries_every_quality_the_api_accepts() {
    let class = Class::start(Config::on_free_ports(None)).await;
    let (status, stream) = class
        .api
        .call(
            "POST",
            "/api/livestream",
            &class.teacher,
            Some(json!({
                "title": "4K", "course_id": class.course_id,
                "quality_settings": { "resolution": "4K", "frame_rate": 60, "bitrate_kbps": 15000 }
            })),
        )
        .await;
    assert_eq!(status, 201, "{stream}");
    assert!(stream["ingest_url"].is_string());
}

#[tokio::test]
async fn a_finished_class_channel_is_deleted_an_hour_after_and_then_forgotten() {
    let class = Class::start(Config::on_free_ports(None)).await;
    let id = class.stream(true).await;
    for action in ["start", "stop"] {
        let (status, _) = class
            .api
            .call(
                "POST",
                &format!("/api/livestream/{id}/{action}"),
                &class.teacher,
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
    let arn = class.get(&id).await["channel_arn"]
        .as_str()
        .unwrap()
        .to_string();
    let store = livestream::store::Store::new(
        aws_sdk_dynamodb::Client::from_conf(livestream::embedded::dynamo_config(
            &class.stack.dynamo_url,
        )),
        local::TABLE_NAME,
    );
    // Deleting signs nothing: the key is never read.
    let video = local::video_service(&class.stack.ivs_url, "unused", Duration::from_secs(60));
    let ivs = livestream::video::Video::local_client(&class.stack.ivs_url);
    let now = livestream::model::now();
    let delete = |at| livestream::service::video::delete_retired_channels(&store, Some(&video), at);

    assert_eq!(
        delete(now + chrono::Duration::minutes(30)).await.unwrap(),
        0
    );
    assert!(ivs.get_channel().arn(&arn).send().await.is_ok());
    assert_eq!(
        delete(now + chrono::Duration::minutes(61)).await.unwrap(),
        1
    );
    let gone = ivs.get_channel().arn(&arn).send().await.unwrap_err();
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    assert_eq!(store.stream_of_channel(&arn).await.unwrap(), None);
    assert_eq!(
        delete(now + chrono::Duration::minutes(120)).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn turning_a_live_class_private_cuts_the_push_and_it_comes_back_under_the_new_rule() {
    if !encoder_available() {
        return;
    }
    let class = Class::start(Config::on_free_ports(None)).await;
    let id = class.stream(true).await;
    let (ingest_url, key, _) = class.ingest(&id).await;
    let mut encoder = Encoder::push(&ingest_url, &key);
    let url = class.get(&id).await["playback_url"]
        .as_str()
        .unwrap()
        .to_string();
    class.playable(&url).await;

    // The video service updates no live channel: the push is cut off, the channel
    // updated, and the encoder's reconnect goes on under the new rule.
    let (status, _) = class
        .api
        .call(
            "PUT",
            &format!("/api/livestream/{id}"),
            &class.teacher,
            Some(json!({"is_public": false})),
        )
        .await;
    assert_eq!(status, 200);
    encoder.exited().await;
    assert_eq!(
        class.api.fetch(&url).await.0,
        403,
        "tokenless playback is refused at once"
    );
    let _back = Encoder::push(&ingest_url, &key);
    let (status, playback) = class
        .playback(&id, &token("student-1", Role::Student))
        .await;
    assert_eq!(status, 200);
    class
        .playable(playback["playback_url"].as_str().unwrap())
        .await;
    assert_eq!(class.get(&id).await["status"], "live");
}
