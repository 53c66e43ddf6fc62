//! After the class, through the API as a newcomer's client sees it: a real encoder
//! (ffmpeg) pushes to a recorded class while students chat and ask, the teacher stops
//! it, the recording becomes ready and plays (ffprobe), and the replay read puts every
//! message where it was sent. Also: an encoder back within the grace period keeps one
//! recording, and a stack killed mid-class keeps a recording that plays up to the kill.
//! Without ffmpeg the tests say how to install it and pass, except under CI.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{Client, Encoder, TEACHER, encoder_available, eventually, spawn_stack, token};
use livestream::auth::Role;
use local::{Config, LocalStack};
use serde_json::{Value, json};

/// Segments of the recording are cut at keyframes, one a second with the test encoder,
/// at most two seconds apart: what "within a segment" allows.
const SEGMENT_SECONDS: f64 = 2.0;

/// A recorded public class of [`TEACHER`] with `student-1` enrolled: its id.
async fn recorded_class(api: &Client) -> String {
    let course_id = api.course(&["student-1"]).await;
    let (status, stream) = api
        .call(
            "POST",
            "/api/livestream",
            &token(TEACHER, Role::Teacher),
            Some(json!({
                "title": "Recorded lecture", "course_id": course_id, "is_public": true,
                "is_recording": true,
                "quality_settings": { "resolution": "720p", "frame_rate": 30, "bitrate_kbps": 2500 }
            })),
        )
        .await;
    assert_eq!(status, 201, "{stream}");
    stream["id"].as_str().unwrap().to_string()
}

/// The encoder's target for the class: `ingest_url` + `stream_key`.
async fn ingest(api: &Client, id: &str) -> (String, String) {
    let (status, ingest) = api
        .call(
            "GET",
            &format!("/api/livestream/{id}/ingest"),
            &token(TEACHER, Role::Teacher),
            None,
        )
        .await;
    assert_eq!(status, 200, "{ingest}");
    (
        ingest["ingest_url"].as_str().unwrap().to_string(),
        ingest["stream_key"].as_str().unwrap().to_string(),
    )
}

async fn recording(api: &Client, id: &str, who: &str) -> Value {
    let (status, recording) = api
        .call("GET", &format!("/api/livestream/{id}/recording"), who, None)
        .await;
    assert_eq!(status, 200, "{recording}");
    recording
}

async fn recording_in(api: &Client, id: &str, state: &str) -> Value {
    let student = token("student-1", Role::Student);
    eventually(&format!("the recording is {state}"), || async {
        let recording = recording(api, id, &student).await;
        (recording["state"] == state).then_some(recording)
    })
    .await
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// The duration ffprobe reads from a playlist URL, in seconds.
async fn probed_duration(url: &str) -> f64 {
    let output = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe read no duration from {url}: {text} {output:?}"))
}

async fn send(api: &Client, id: &str, who: &str, message: &str) -> (i64, DateTime<Utc>) {
    let (status, sent) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/chat"),
            who,
            Some(json!({ "message": message })),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    (sent["seq"].as_i64().unwrap(), time(&sent["created_at"]))
}

/// Every event of the replay between 0 and `to_ms`, as `who` reads it page by page.
async fn replay(api: &Client, id: &str, who: &str, to_ms: i64) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/livestream/{id}/replay?from_ms=0&to_ms={to_ms}&limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = api.call("GET", &path, who, None).await;
        assert_eq!(status, 200, "{page}");
        events.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return events,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_class_plays_back_after_the_stop_with_its_chat_at_its_moments() {
    if !encoder_available() {
        return;
    }
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let api = Client::new(&stack.http_url);
    let teacher = token(TEACHER, Role::Teacher);
    let student = token("student-1", Role::Student);
    let id = recorded_class(&api).await;
    let (ingest_url, key) = ingest(&api, &id).await;
    assert_eq!(recording(&api, &id, &student).await["state"], "none");

    let encoder = Encoder::push(&ingest_url, &key);
    let started = recording_in(&api, &id, "recording").await;
    let origin = time(&started["started_at"]);
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/join"),
            &student,
            None,
        )
        .await;
    assert_eq!(status, 200);

    // Chat and a question over 20 seconds of push; one message the teacher hides.
    let mut sent = Vec::new();
    let began = Instant::now();
    for (at, text) in [
        (2, "hello"),
        (6, "a typo, hide me"),
        (11, "a question follows"),
        (16, "thanks"),
    ] {
        tokio::time::sleep(Duration::from_secs(at).saturating_sub(began.elapsed())).await;
        sent.push((send(&api, &id, &student, text).await, text));
    }
    let hidden = sent[1].0.0;
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/chat/{hidden}/hide"),
            &teacher,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, question) = api
        .call(
            "POST",
            &format!("/api/livestream/{id}/questions"),
            &student,
            Some(json!({ "text": "Is this recorded?" })),
        )
        .await;
    assert_eq!(status, 201, "{question}");
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(began.elapsed())).await;
    let ended = api.stop(&id).await;
    let stopped_at = time(&ended["ended_at"]);
    drop(encoder);

    let ready = recording_in(&api, &id, "ready").await;
    let pushed = (stopped_at - origin).num_milliseconds() as f64 / 1000.0;
    let duration = ready["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        (duration - pushed).abs() <= SEGMENT_SECONDS,
        "recorded {duration} s of {pushed} s"
    );
    let played = probed_duration(ready["playback_url"].as_str().unwrap()).await;
    assert!(
        (played - pushed).abs() <= SEGMENT_SECONDS,
        "ffprobe read {played} s of {pushed} s"
    );

    // The replay: every visible message at the offset it was sent at.
    let to_ms = ready["duration_ms"].as_i64().unwrap() + 5_000;
    let events = replay(&api, &id, &student, to_ms).await;
    let chat: Vec<&Value> = events.iter().filter(|e| e["type"] == "chat").collect();
    let visible: Vec<_> = sent.iter().filter(|((seq, _), _)| *seq != hidden).collect();
    assert_eq!(chat.len(), visible.len(), "{events:?}");
    for (((seq, at), text), event) in visible.iter().zip(&chat) {
        assert_eq!(event["message"]["seq"], *seq);
        assert_eq!(event["message"]["message"], *text);
        let expected = (*at - origin).num_milliseconds() as f64;
        let offset = event["offset_ms"].as_f64().unwrap();
        assert!(
            (offset - expected).abs() <= SEGMENT_SECONDS * 1000.0,
            "{text}: offset {offset} ms, sent at {expected} ms"
        );
    }
    assert!(events.iter().any(|e| e["type"] == "question"), "{events:?}");
    let for_teacher = replay(&api, &id, &teacher, to_ms).await;
    let hidden_seen = for_teacher
        .iter()
        .any(|e| e["type"] == "chat" && e["message"]["seq"] == hidden);
    assert!(hidden_seen, "the instructor replays hidden messages too");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_back_within_the_grace_period_keeps_one_recording() {
    if !encoder_available() {
        return;
    }
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let api = Client::new(&stack.http_url);
    let id = recorded_class(&api).await;
    let (ingest_url, key) = ingest(&api, &id).await;
    let encoder = Encoder::push(&ingest_url, &key);
    recording_in(&api, &id, "recording").await;
    let session = api.stream(&id).await["recording"]["session_id"].clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The laptop lid closes; the teacher is back a few seconds later.
    encoder.kill().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let encoder = Encoder::push(&ingest_url, &key);
    tokio::time::sleep(Duration::from_secs(6)).await;
    api.stop(&id).await;
    drop(encoder);

    let ready = recording_in(&api, &id, "ready").await;
    assert_eq!(api.stream(&id).await["recording"]["session_id"], session);
    let (status, playlist) = api.fetch(ready["playback_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(playlist.contains("#EXT-X-DISCONTINUITY"), "{playlist}");
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let played = probed_duration(ready["playback_url"].as_str().unwrap()).await;
    assert!(
        played >= 9.0,
        "both pushes are in the one recording: {played} s"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_killed_mid_class_keeps_a_recording_that_plays_up_to_the_kill() {
    if !encoder_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut stack = spawn_stack(dir.path()).await;
    let api = Client::new(&stack.http);
    let id = recorded_class(&api).await;
    let (ingest_url, key) = ingest(&api, &id).await;
    let encoder = Encoder::push(&ingest_url, &key);
    let started = recording_in(&api, &id, "recording").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let killed_at = Utc::now();
    stack.kill();
    drop(encoder);

    let stack = spawn_stack(dir.path()).await;
    let api = Client::new(&stack.http);
    let ready = recording_in(&api, &id, "ready").await;
    let recorded = (killed_at - time(&started["started_at"])).num_milliseconds() as f64 / 1000.0;
    let played = probed_duration(ready["playback_url"].as_str().unwrap()).await;
    assert!(
        played <= recorded + 0.5 && played >= recorded - 2.0 * SEGMENT_SECONDS,
        "plays {played} s of the {recorded} s before the kill"
    );
}
