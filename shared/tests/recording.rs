//! A class's recording against the embedded DynamoDB: the video service's "IVS
//! Recording State Change" events (late, twice, out of order, a reconnect within the
//! window) drive its state; who may see, play and delete it; the playlist's token; and
//! the playlist rewrite on an IVS-shaped playlist. Reading and deleting real objects is
//! the local stack's end-to-end test (its S3 emulation).

use chrono::{DateTime, Duration, Utc};
use livestream::ApiError;
use livestream::auth::Role;
use livestream::model::course::EnrollInput;
use livestream::model::{RecordingState, Stream, now};
use livestream::recordings::Recordings;
use livestream::service::recording::{
    self, RecordingStateEvent, playlist_uris, rewrite_playlist, top_rendition,
};
use livestream::service::video::{EventOutcome, VideoEvent, on_video_event};
use livestream::store::Store;
use livestream::testing::{TEACHER, TestEnv, identity, teacher_stream};
use livestream::video::{Channel, PlaybackKey};

const ORIGIN: &str = "https://api.example.com";

async fn stream_with_channel(store: &Store, live: bool, public: bool) -> (Stream, String) {
    let stream = teacher_stream(store, live, public).await;
    let arn = format!(
        "arn:aws:ivs:us-east-1:000000000000:channel/{}",
        &stream.id[14..]
    );
    let channel = Channel {
        arn: arn.clone(),
        ingest_url: "rtmp://127.0.0.1:1935/app/".into(),
        playback_url: "http://127.0.0.1:3000/video/x/index.m3u8".into(),
        stream_key: "sk_test".into(),
        stream_key_arn: "arn:aws:ivs:us-east-1:000000000000:stream-key/k".into(),
    };
    let stream = store
        .set_channel(&stream.id, &channel, now())
        .await
        .unwrap();
    (stream, arn)
}

/// An "IVS Recording State Change" as EventBridge delivers it.
fn event(
    arn: &str,
    status: &str,
    session: &str,
    at: DateTime<Utc>,
    duration_ms: i64,
) -> VideoEvent {
    serde_json::from_value(serde_json::json!({
        "version": "0",
        "id": "e",
        "detail-type": "IVS Recording State Change",
        "source": "aws.ivs",
        "account": "000000000000",
        "time": at.to_rfc3339(),
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "channel_name": "c",
            "stream_id": "st-a",
            "recording_status": status,
            "recording_status_reason": if status.contains("Failure") { "Access Denied" } else { "" },
            "recording_s3_bucket_name": "recordings",
            "recording_s3_key_prefix": format!("ivs/v1/000000000000/chan/2030/1/31/9/0/{session}"),
            "recording_duration_ms": duration_ms,
            "recording_session_id": session,
            "recording_session_stream_ids": ["st-a"]
        }
    }))
    .unwrap()
}

async fn apply(store: &Store, event: &VideoEvent) -> EventOutcome {
    on_video_event(store, None, event).await.unwrap()
}

async fn reload(store: &Store, stream: &Stream) -> Stream {
    store.stream(&stream.id).await.unwrap().unwrap()
}

/// The recordings' storage of a test: tokens signed as on a deployment, an S3 client
/// pointed at a closed port (nothing here reads an object; the thumbnail is left out
/// when the storage cannot be read), without retries.
fn recordings() -> Recordings {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .build();
    Recordings::new(
        aws_sdk_s3::Client::from_conf(config),
        "recordings",
        PlaybackKey::Pem("-----BEGIN PRIVATE KEY-----\ntest\n-----END PRIVATE KEY-----".into()),
    )
}

fn state(stream: &Stream) -> RecordingState {
    stream.recording.as_ref().map_or(RecordingState::None, |r| {
        r.state_for(stream.status.is_finished())
    })
}

#[tokio::test]
async fn a_recording_starts_with_the_push_is_processing_after_the_stop_and_ready_at_its_end() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, true, true).await;
    let t0 = now();
    assert_eq!(
        apply(store, &event(&arn, "Recording Start", "rec-1", t0, 0)).await,
        EventOutcome::Recorded
    );
    let recording = reload(store, &stream).await;
    assert_eq!(state(&recording), RecordingState::Recording);
    let stored = recording.recording.clone().unwrap();
    assert_eq!(stored.started_at, Some(t0));
    assert_eq!(stored.bucket, "recordings");
    assert!(stored.key_prefix.ends_with("/rec-1"));

    // The class stops; the video service still waits its reconnect window.
    let teacher = identity(TEACHER, Role::Teacher);
    let stopped = livestream::service::streams::stop(store, None, &teacher, &stream.id)
        .await
        .unwrap();
    assert_eq!(state(&stopped), RecordingState::Processing);
    let view = recording::get(store, Some(&recordings()), &teacher, &stream.id, ORIGIN)
        .await
        .unwrap();
    assert_eq!(view.state, RecordingState::Processing);
    assert!(
        view.playback_url.is_some(),
        "an EVENT playlist while processing"
    );

    let end = t0 + Duration::seconds(80);
    assert_eq!(
        apply(store, &event(&arn, "Recording End", "rec-1", end, 20_000)).await,
        EventOutcome::Recorded
    );
    let ready = reload(store, &stream).await;
    assert_eq!(state(&ready), RecordingState::Ready);
    let stored = ready.recording.unwrap();
    assert_eq!(stored.started_at, Some(t0), "the start is kept");
    assert_eq!(stored.ended_at, Some(end));
    assert_eq!(stored.duration_ms, Some(20_000));

    let view = recording::get(store, Some(&recordings()), &teacher, &stream.id, ORIGIN)
        .await
        .unwrap();
    assert_eq!(view.state, RecordingState::Ready);
    assert_eq!(view.duration_ms, Some(20_000));
    let url = view.playback_url.unwrap();
    assert!(
        url.starts_with(&format!(
            "{ORIGIN}/api/livestream/{}/recording/playlist.m3u8?token=",
            stream.id
        )),
        "{url}"
    );
    let expires = view.expires_at.unwrap();
    assert!(expires > now() + Duration::minutes(60) && expires < now() + Duration::minutes(62));
    assert_eq!(view.thumbnail_url, None, "the storage could not be read");
}

#[tokio::test]
async fn repeated_late_and_out_of_order_events_never_override_a_newer_state() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, true, true).await;
    let t0 = now();
    let start = event(&arn, "Recording Start", "rec-1", t0, 0);
    let end = event(
        &arn,
        "Recording End",
        "rec-1",
        t0 + Duration::seconds(90),
        30_000,
    );

    // The end arrives first: ready, its start told by the length.
    assert_eq!(apply(store, &end).await, EventOutcome::Recorded);
    let ready = reload(store, &stream).await.recording.unwrap();
    assert_eq!(ready.state, RecordingState::Ready);
    assert_eq!(ready.started_at, Some(t0 + Duration::seconds(60)));
    // The late start, and both again: nothing changes.
    for e in [&start, &end, &start] {
        assert_eq!(apply(store, e).await, EventOutcome::Ignored);
    }
    assert_eq!(reload(store, &stream).await.recording.unwrap(), ready);

    // An older recording session's events change nothing either.
    let older = event(
        &arn,
        "Recording End",
        "rec-0",
        t0 - Duration::seconds(5),
        1_000,
    );
    assert_eq!(apply(store, &older).await, EventOutcome::Ignored);
    // A newer one replaces it.
    let newer = event(
        &arn,
        "Recording Start",
        "rec-2",
        t0 + Duration::seconds(200),
        0,
    );
    assert_eq!(apply(store, &newer).await, EventOutcome::Recorded);
    let replaced = reload(store, &stream).await.recording.unwrap();
    assert_eq!(replaced.session_id, "rec-2");
    assert_eq!(replaced.state, RecordingState::Recording);
}

#[tokio::test]
async fn a_start_of_the_same_session_after_a_reconnect_changes_nothing() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, true, true).await;
    let t0 = now();
    apply(store, &event(&arn, "Recording Start", "rec-1", t0, 0)).await;
    let before = reload(store, &stream).await.recording.unwrap();
    // The encoder dropped and came back within the window: IVS carries on the same
    // recording session.
    let again = event(
        &arn,
        "Recording Start",
        "rec-1",
        t0 + Duration::seconds(40),
        0,
    );
    assert_eq!(apply(store, &again).await, EventOutcome::Ignored);
    assert_eq!(reload(store, &stream).await.recording.unwrap(), before);
}

#[tokio::test]
async fn failures_are_kept_with_their_reason_and_events_of_unknown_channels_are_not_ours() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, true, true).await;
    let t0 = now();
    apply(store, &event(&arn, "Recording Start", "rec-1", t0, 0)).await;
    let failure = event(
        &arn,
        "Recording End Failure",
        "rec-1",
        t0 + Duration::seconds(9),
        0,
    );
    assert_eq!(apply(store, &failure).await, EventOutcome::Recorded);
    let failed = reload(store, &stream).await.recording.unwrap();
    assert_eq!(failed.state, RecordingState::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("Access Denied"));
    assert_eq!(apply(store, &failure).await, EventOutcome::Ignored);
    let view = recording::get(
        store,
        Some(&recordings()),
        &identity("student-9", Role::Student),
        &stream.id,
        ORIGIN,
    )
    .await
    .unwrap();
    assert_eq!(view.state, RecordingState::Failed);
    assert_eq!(view.playback_url, None, "nothing to play");

    let stranger = event(
        "arn:aws:ivs:us-east-1:000000000000:channel/NotOurs",
        "Recording Start",
        "rec-x",
        t0,
        0,
    );
    assert_eq!(apply(store, &stranger).await, EventOutcome::UnknownChannel);
    let unknown = {
        let mut e = event(&arn, "Recording Start", "rec-1", t0, 0);
        e.detail["recording_status"] = "Recording Paused".into();
        e
    };
    assert_eq!(apply(store, &unknown).await, EventOutcome::Ignored);
}

#[tokio::test]
async fn a_private_recording_is_for_enrolled_students_only_and_deleting_it_for_its_instructor() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, true, false).await;
    let teacher = identity(TEACHER, Role::Teacher);
    let outsider = identity("student-out", Role::Student);
    let enrolled = identity("student-in", Role::Student);
    livestream::service::courses::enroll(
        store,
        &teacher,
        &stream.course_id,
        EnrollInput {
            user_id: enrolled.user_id.clone(),
        },
    )
    .await
    .unwrap();
    let storage = recordings();
    let get = |who| recording::get(store, Some(&storage), who, &stream.id, ORIGIN);

    // Nothing recorded yet: `none` for whoever may watch.
    assert_eq!(get(&enrolled).await.unwrap().state, RecordingState::None);
    let refused = get(&outsider).await.unwrap_err();
    assert_eq!(
        (refused.status().as_u16(), refused.code()),
        (403, "stream_private")
    );

    let t0 = now();
    apply(store, &event(&arn, "Recording Start", "rec-1", t0, 0)).await;
    let view = get(&enrolled).await.unwrap();
    assert_eq!(view.state, RecordingState::Recording);
    assert!(view.playback_url.is_some());
    assert_eq!(get(&outsider).await.unwrap_err().status().as_u16(), 403);

    // The bucket and prefix never reach a student through the stream either.
    let seen = reload(store, &stream).await.view(false);
    assert_eq!(seen["recording"]["state"], "recording");
    assert!(seen["recording"].get("bucket").is_none());
    assert!(seen["recording"].get("key_prefix").is_none());
    let owner = reload(store, &stream).await.view(true);
    assert_eq!(owner["recording"]["bucket"], "recordings");

    // Deleting: the instructor only, and not while it is being written.
    let err = recording::delete(store, Some(&storage), &enrolled, &stream.id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (403, "not_stream_owner")
    );
    let err = recording::delete(store, Some(&storage), &teacher, &stream.id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (409, "recording_in_progress")
    );
    livestream::service::streams::stop(store, None, &teacher, &stream.id)
        .await
        .unwrap();
    let err = recording::delete(store, Some(&storage), &teacher, &stream.id)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "recording_in_progress",
        "processing is still written"
    );
    assert_eq!(
        state(&reload(store, &stream).await),
        RecordingState::Processing
    );
}

#[tokio::test]
async fn deleting_a_stream_without_a_recording_answers_none_and_changes_nothing() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, _) = stream_with_channel(store, true, true).await;
    let teacher = identity(TEACHER, Role::Teacher);
    for _ in 0..2 {
        let view = recording::delete(store, Some(&recordings()), &teacher, &stream.id)
            .await
            .unwrap();
        assert_eq!(view.state, RecordingState::None);
    }
    assert_eq!(reload(store, &stream).await.recording, None);
}

async fn token_for(store: &Store, storage: &Recordings, stream: &Stream, user: &str) -> String {
    let view = recording::get(
        store,
        Some(storage),
        &identity(user, Role::Student),
        &stream.id,
        ORIGIN,
    )
    .await
    .unwrap();
    let url = view.playback_url.unwrap();
    url.split_once("?token=").unwrap().1.to_string()
}

fn forbidden(result: Result<String, ApiError>) {
    let err = result.unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (403, "invalid_recording_token"),
        "{err}"
    );
}

#[tokio::test]
async fn the_playlist_refuses_missing_wrong_stream_expired_and_tampered_tokens() {
    let env = TestEnv::start().await;
    let store = env.store();
    let storage = recordings();
    let (stream, arn) = stream_with_channel(store, true, true).await;
    let (other, other_arn) = stream_with_channel(store, true, true).await;
    let t0 = now();
    apply(store, &event(&arn, "Recording Start", "rec-1", t0, 0)).await;
    apply(store, &event(&other_arn, "Recording Start", "rec-9", t0, 0)).await;
    let token = token_for(store, &storage, &stream, "student-1").await;
    let playlist = |id: String, token: Option<String>| {
        let storage = &storage;
        async move { recording::playlist(store, Some(storage), &id, token.as_deref()).await }
    };

    forbidden(playlist(stream.id.clone(), None).await);
    forbidden(playlist(stream.id.clone(), Some(String::new())).await);
    // A token of this stream does not open another's recording.
    forbidden(playlist(other.id.clone(), Some(token.clone())).await);
    // Tampered: its claims changed (another stream), its signature kept.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let claims = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value =
            serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
        claims["stream_id"] = other.id.clone().into();
        engine.encode(claims.to_string())
    };
    parts[1] = claims;
    forbidden(playlist(other.id.clone(), Some(parts.join("."))).await);
    // Expired.
    let expired = storage
        .sign_token(
            &stream.id,
            "student-1",
            "rec-1",
            now() - Duration::hours(2),
            now() - Duration::minutes(5),
        )
        .await
        .unwrap();
    forbidden(playlist(stream.id.clone(), Some(expired)).await);
    // Signed with another key.
    let foreign = Recordings::new(
        livestream::recordings::Recordings::local_client("http://127.0.0.1:9"),
        "recordings",
        PlaybackKey::Pem("another key".into()),
    )
    .sign_token(
        &stream.id,
        "student-1",
        "rec-1",
        now(),
        now() + Duration::hours(1),
    )
    .await
    .unwrap();
    forbidden(playlist(stream.id.clone(), Some(foreign)).await);

    // A valid token of a recording deleted or replaced since: not found.
    apply(
        store,
        &event(
            &arn,
            "Recording Start",
            "rec-2",
            t0 + Duration::seconds(100),
            0,
        ),
    )
    .await;
    let err = playlist(stream.id.clone(), Some(token)).await.unwrap_err();
    assert_eq!(err.status().as_u16(), 404);
}

/// A media playlist as IVS records it (fMP4, an init section, relative URIs).
const MEDIA: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init-0.mp4\"
#EXTINF:2.000,
0.mp4
#EXTINF:2.000,
1.mp4
#EXTINF:1.480,
2.mp4
#EXT-X-ENDLIST
";

const MASTER: &str = "#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=630000,CODECS=\"avc1.4D401E,mp4a.40.2\",RESOLUTION=852x480,FRAME-RATE=30.000
480p30/playlist.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,CODECS=\"avc1.64001F,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000
720p30/playlist.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS=\"avc1.42C00C,mp4a.40.2\",RESOLUTION=284x160,FRAME-RATE=15.000
160p15/playlist.m3u8
";

#[test]
fn the_master_resolves_to_its_top_rendition() {
    assert_eq!(
        top_rendition(MASTER).as_deref(),
        Some("720p30/playlist.m3u8")
    );
    assert_eq!(
        top_rendition(MEDIA),
        None,
        "a media playlist has no variants"
    );
    assert_eq!(
        recording::resolve("ivs/v1/a/b/media/hls/master.m3u8", "720p30/playlist.m3u8"),
        "ivs/v1/a/b/media/hls/720p30/playlist.m3u8"
    );
}

#[test]
fn every_uri_of_the_playlist_is_replaced_and_a_finished_one_plays_as_vod() {
    assert_eq!(
        playlist_uris(MEDIA),
        ["init-0.mp4", "0.mp4", "1.mp4", "2.mp4"]
    );
    let out = rewrite_playlist(MEDIA, |uri| {
        format!("https://s3.example/k/{uri}?X-Amz-Signature=s")
    });
    let expected = "#EXTM3U
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"https://s3.example/k/init-0.mp4?X-Amz-Signature=s\"
#EXTINF:2.000,
https://s3.example/k/0.mp4?X-Amz-Signature=s
#EXTINF:2.000,
https://s3.example/k/1.mp4?X-Amz-Signature=s
#EXTINF:1.480,
https://s3.example/k/2.mp4?X-Amz-Signature=s
#EXT-X-ENDLIST
";
    assert_eq!(out, expected);
    // No relative URI is left.
    assert!(playlist_uris(&out).is_empty());
}

#[test]
fn a_playlist_still_growing_plays_as_an_event_and_a_typed_one_keeps_its_type() {
    let growing = MEDIA.replace("#EXT-X-ENDLIST\n", "");
    let out = rewrite_playlist(&growing, |uri| format!("https://s/{uri}"));
    assert!(
        out.starts_with("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n"),
        "{out}"
    );
    let typed = MEDIA.replace(
        "#EXT-X-VERSION:7",
        "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-VERSION:7",
    );
    let out = rewrite_playlist(&typed, |uri| format!("https://s/{uri}"));
    assert_eq!(out.matches("#EXT-X-PLAYLIST-TYPE").count(), 1);
}

#[test]
fn recording_events_parse_as_ivs_sends_them() {
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/ivs/07-recording-end.json"
    ))
    .unwrap();
    let event: RecordingStateEvent = serde_json::from_str(&sample).unwrap();
    let facts = recording::RecordingEvent::parse(&event).unwrap().unwrap();
    assert_eq!(
        facts.change,
        livestream::model::recording::RecordingChange::Ended {
            duration_ms: Some(1_263_000)
        }
    );
    assert_eq!(facts.session_id, "SampleRecSession01");
    assert!(!facts.key_prefix.ends_with('/'));
}
