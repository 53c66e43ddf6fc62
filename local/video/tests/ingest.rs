//! The ingest with real clients: ffmpeg publishing over RTMP, ffprobe and a plain
//! HTTP client playing back. Needs ffmpeg (`apt-get install -y ffmpeg`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use local_video::{IngestConfig, IngestEvent, RecordingTarget};

const CHANNEL: &str = "ch-test";
const KEY: &str = "sk_test_secret";

macro_rules! require_ffmpeg {
    () => {
        if !ffmpeg_available() {
            return;
        }
    };
}

#[tokio::test]
async fn publish_plays_as_hls_with_measured_health() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    // A token-checking player path, so ffprobe plays through the tokenized URIs.
    let mut stack = Stack::start(
        IngestConfig::default(),
        Arc::new(|channel, token| channel == CHANNEL && token == Some("viewer")),
    )
    .await;
    stack.ingest.allow_key(KEY, CHANNEL);
    let mut encoder = Encoder::push(&stack.rtmp_url(KEY), TestSource::Hd);

    let created = stack.next_event().await;
    let IngestEvent::SessionCreated {
        channel_id,
        session_id,
        ..
    } = &created
    else {
        panic!(
            "expected SessionCreated, got {created:?} ({})",
            encoder.log_text()
        );
    };
    assert_eq!(channel_id, CHANNEL);
    assert!(session_id.starts_with("st-"));
    let started = stack.next_event().await;
    assert!(
        matches!(&started, IngestEvent::StreamStart { session_id: s, .. } if s == session_id),
        "{started:?}"
    );
    assert!(stack.ingest.is_live(CHANNEL));

    let latencies = measure_listing_latency(&stack, 4).await;
    println!("first frame arrival -> segment listed (ms): {latencies:?}");

    let playlist = stack.playlist_with(CHANNEL, "?token=viewer", 2).await;
    assert!(
        playlist.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"),
        "{playlist}"
    );
    for tag in [
        "#EXT-X-TARGETDURATION:",
        "#EXT-X-MEDIA-SEQUENCE:",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-MAP:URI=\"init-1.mp4?token=viewer\"",
        "#EXT-X-PROGRAM-DATE-TIME:",
        "#EXTINF:",
    ] {
        assert!(playlist.contains(tag), "{tag} missing from\n{playlist}");
    }
    assert!(
        segment_uris(&playlist)
            .iter()
            .all(|uri| uri.ends_with(".m4s?token=viewer"))
    );
    for duration in playlist.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
        let seconds: f64 = duration.trim_end_matches(',').parse().unwrap();
        assert!(
            (0.9..=2.1).contains(&seconds),
            "segment of {seconds} s in\n{playlist}"
        );
    }

    let response = stack
        .get(&format!("/video/{CHANNEL}/index.m3u8?token=viewer"))
        .await;
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let init = stack
        .get(&format!("/video/{CHANNEL}/init-1.mp4?token=viewer"))
        .await;
    assert_eq!(init.status, 200);
    assert_eq!(init.header("content-type"), Some("video/mp4"));
    assert_eq!(&init.body[4..8], b"ftyp");
    assert_hls_js_reads_the_audio_codec(&init.body);
    let first_segment = segment_uris(&playlist)[0];
    let segment = stack
        .get(&format!("/video/{CHANNEL}/{first_segment}"))
        .await;
    assert_eq!(segment.status, 200);
    assert_eq!(segment.header("content-type"), Some("video/iso.segment"));
    assert_eq!(&segment.body[4..8], b"moof");

    let probe =
        ffprobe_streams(&stack.http_url(&format!("/video/{CHANNEL}/index.m3u8?token=viewer")))
            .await;
    let streams = probe["streams"].as_array().unwrap();
    assert!(
        streams.iter().any(|s| s["codec_type"] == "video"
            && s["codec_name"] == "h264"
            && s["width"] == 1280
            && s["height"] == 720),
        "{probe}"
    );
    assert!(
        streams
            .iter()
            .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac"),
        "{probe}"
    );

    // Rates are measured over ~5 s: wait until the push has run that long.
    let health = poll("a full health measurement", || async {
        let info = stack.ingest.session(CHANNEL)?;
        let health = info.health?;
        ((Utc::now() - info.started_at).num_seconds() >= 6
            && health.keyframe_interval_seconds.is_some())
        .then_some(health)
    })
    .await;
    println!("health: {health:?}");
    assert!(health.video_codec.starts_with("avc1."), "{health:?}");
    assert_eq!(health.audio_codec, "mp4a.40.2");
    assert_eq!((health.width, health.height), (1280, 720));
    assert!((25.0..=35.0).contains(&health.frame_rate), "{health:?}");
    assert!(health.bitrate_bps > 0);
    let keyframe_interval = health.keyframe_interval_seconds.unwrap();
    assert!((0.8..=1.2).contains(&keyframe_interval), "{health:?}");
    assert_eq!(health.audio_sample_rate, 48_000);
    assert_eq!(health.audio_channels, 1);

    encoder.kill().await;
    let ended = stack.next_event().await;
    assert!(
        matches!(&ended, IngestEvent::StreamEnd { session_id: s, .. } if s == session_id),
        "{ended:?}"
    );
    let info = stack.ingest.session(CHANNEL).unwrap();
    assert!(info.ended_at.is_some());
    assert!(!stack.ingest.is_live(CHANNEL));
}

/// hls.js derives the MSE codec string from the `esds` ES_Descriptor and reads it only
/// when no dependency or OCR ids precede the DecoderConfigDescriptor (tag 4).
fn assert_hls_js_reads_the_audio_codec(init: &[u8]) {
    let esds = init
        .windows(4)
        .position(|w| w == b"esds")
        .expect("an esds box");
    let es_descriptor = &init[esds + 8..];
    assert_eq!(es_descriptor[0], 0x03, "ES_Descriptor tag");
    let flags = es_descriptor[4];
    assert_eq!(flags & 0xe0, 0, "ES_Descriptor flags {flags:#04x}");
    assert_eq!(
        es_descriptor[5], 0x04,
        "DecoderConfigDescriptor right after the flags"
    );
}

/// For the next `count` segments listed: milliseconds from their first frame's arrival
/// (`EXT-X-PROGRAM-DATE-TIME`) to the playlist first listing them, polled every 10 ms.
async fn measure_listing_latency(stack: &Stack, count: usize) -> Vec<i64> {
    let path = format!("/video/{CHANNEL}/index.m3u8?token=viewer");
    let mut seen = std::collections::HashSet::new();
    let mut first_poll = true;
    let mut latencies = Vec::new();
    within("segments to measure", async {
        while latencies.len() < count {
            let response = stack.get(&path).await;
            let now = Utc::now();
            let text = String::from_utf8(response.body).unwrap();
            let mut program_date_time = None;
            for line in text.lines() {
                if let Some(pdt) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                    program_date_time = Some(
                        DateTime::parse_from_rfc3339(pdt)
                            .unwrap()
                            .with_timezone(&Utc),
                    );
                } else if line.starts_with("seg-") && seen.insert(line.to_owned()) && !first_poll {
                    latencies.push((now - program_date_time.unwrap()).num_milliseconds());
                }
            }
            first_poll = false;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    latencies
}

#[tokio::test]
async fn wrong_key_or_app_is_refused_before_media() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let mut stack = Stack::open().await;
    stack.ingest.allow_key(KEY, CHANNEL);

    let mut wrong_key = Encoder::push(&stack.rtmp_url("sk_wrong"), TestSource::Small);
    assert!(!wrong_key.exited().await.success());
    let wrong_app_url = format!("rtmp://127.0.0.1:{}/live/{KEY}", stack.rtmp_port);
    let mut wrong_app = Encoder::push(&wrong_app_url, TestSource::Small);
    assert!(!wrong_app.exited().await.success());

    stack.assert_no_event();
    assert!(!stack.ingest.is_live(CHANNEL));
    assert_eq!(stack.ingest.session(CHANNEL), None);
    let response = stack.get(&format!("/video/{CHANNEL}/index.m3u8")).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"]["code"], "channel_offline");
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn revoking_the_key_cuts_off_the_publisher_and_refuses_it() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let mut stack = Stack::open().await;
    stack.ingest.allow_key(KEY, CHANNEL);
    let mut encoder = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    let session_id = expect_started(&mut stack).await;

    stack.ingest.revoke_key(KEY);
    let ended = stack.next_event().await;
    assert!(
        matches!(&ended, IngestEvent::StreamEnd { session_id: s, .. } if *s == session_id),
        "{ended:?}"
    );
    assert!(!stack.ingest.is_live(CHANNEL));
    assert!(!encoder.exited().await.success());

    let mut again = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    assert!(!again.exited().await.success());
    stack.assert_no_event();
}

#[tokio::test]
async fn a_second_push_takes_the_channel_over() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let mut stack = Stack::open().await;
    stack.ingest.allow_key(KEY, CHANNEL);
    let mut first = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    let first_session = expect_started(&mut stack).await;

    let mut second = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    let ended = stack.next_event().await;
    assert!(
        matches!(&ended, IngestEvent::StreamEnd { session_id, .. } if *session_id == first_session),
        "{ended:?}"
    );
    let created = stack.next_event().await;
    let IngestEvent::SessionCreated {
        session_id: second_session,
        ..
    } = created
    else {
        panic!("expected SessionCreated, got {created:?}");
    };
    let takeover = stack.next_event().await;
    assert!(
        matches!(&takeover, IngestEvent::StreamTakeover { session_id, .. } if *session_id == second_session),
        "{takeover:?}"
    );
    let started = stack.next_event().await;
    assert!(
        matches!(&started, IngestEvent::StreamStart { session_id, .. } if *session_id == second_session),
        "{started:?}"
    );

    assert!(!first.exited().await.success());
    assert!(second.is_running(), "{}", second.log_text());
    assert!(stack.ingest.is_live(CHANNEL));
    assert_eq!(
        stack.ingest.session(CHANNEL).unwrap().session_id,
        second_session
    );

    // A deleted channel: its publisher is cut off and its media gone.
    stack.ingest.forget_channel(CHANNEL);
    let ended = stack.next_event().await;
    assert!(
        matches!(&ended, IngestEvent::StreamEnd { session_id, .. } if *session_id == second_session),
        "{ended:?}"
    );
    assert!(!second.exited().await.success());
    assert_eq!(stack.ingest.session(CHANNEL), None);
    assert_eq!(
        stack
            .get(&format!("/video/{CHANNEL}/index.m3u8"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_silent_encoder_is_ended() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let config = IngestConfig {
        idle_timeout: Duration::from_secs(1),
        ..IngestConfig::default()
    };
    let mut stack = Stack::start(config, Arc::new(|_, _| true)).await;
    stack.ingest.allow_key(KEY, CHANNEL);
    let mut encoder = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    let session_id = expect_started(&mut stack).await;

    encoder.freeze();
    let frozen_at = Instant::now();
    let ended = stack.next_event().await;
    println!(
        "silent session ended {:?} after the encoder froze",
        frozen_at.elapsed()
    );
    assert!(
        matches!(&ended, IngestEvent::StreamEnd { session_id: s, .. } if *s == session_id),
        "{ended:?}"
    );
    assert!(!stack.ingest.is_live(CHANNEL));
    encoder.kill().await;
}

#[tokio::test]
async fn a_killed_encoder_ends_the_session_and_a_reconnect_continues_the_playlist() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let mut stack = Stack::open().await;
    stack.ingest.allow_key(KEY, CHANNEL);
    let mut first = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    let first_session = expect_started(&mut stack).await;
    let before = stack.playlist_with(CHANNEL, "", 2).await;

    first.kill().await;
    let ended = stack.next_event().await;
    assert!(
        matches!(&ended, IngestEvent::StreamEnd { session_id, .. } if *session_id == first_session),
        "{ended:?}"
    );

    let _second = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    let second_session = expect_started(&mut stack).await;
    assert_ne!(first_session, second_session);
    let last_before = sequence_of(segment_uris(&before).last().unwrap());
    let after = poll("the reconnect's segments", || async {
        let text = stack.playlist_with(CHANNEL, "", 1).await;
        text.contains("init-2.mp4").then_some(text)
    })
    .await;
    let lines: Vec<&str> = after.lines().collect();
    let discontinuity = lines
        .iter()
        .position(|l| *l == "#EXT-X-DISCONTINUITY")
        .unwrap_or_else(|| panic!("no discontinuity in\n{after}"));
    assert_eq!(lines[discontinuity + 1], "#EXT-X-MAP:URI=\"init-2.mp4\"");
    // The media sequence runs on across the sessions.
    let sequences: Vec<u64> = segment_uris(&after).into_iter().map(sequence_of).collect();
    assert!(sequences.windows(2).all(|w| w[1] == w[0] + 1), "{after}");
    assert!(
        sequences.contains(&(last_before + 1)),
        "{before}\n---\n{after}"
    );
}

#[tokio::test]
async fn playback_authorization_and_token_propagation() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let mut stack = Stack::start(
        IngestConfig::default(),
        Arc::new(|_, token| token == Some("t0k/en+1")),
    )
    .await;
    stack.ingest.allow_key(KEY, CHANNEL);

    for path in [
        format!("/video/{CHANNEL}/index.m3u8"),
        format!("/video/{CHANNEL}/index.m3u8?token=wrong"),
        format!("/video/{CHANNEL}/init-1.mp4"),
        format!("/video/{CHANNEL}/seg-0.m4s?token=wrong"),
    ] {
        let response = stack.get(&path).await;
        assert_eq!(response.status, 403, "{path}");
        assert_eq!(response.json()["error"]["code"], "playback_unauthorized");
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    }
    let token_query = "token=t0k%2Fen%2B1";
    let offline = stack
        .get(&format!("/video/{CHANNEL}/index.m3u8?{token_query}"))
        .await;
    assert_eq!(offline.status, 404);

    let _encoder = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    expect_started(&mut stack).await;
    let playlist = poll("the playlist", || async {
        let response = stack
            .get(&format!("/video/{CHANNEL}/index.m3u8?{token_query}"))
            .await;
        (response.status == 200).then(|| String::from_utf8(response.body).unwrap())
    })
    .await;
    assert!(
        playlist.contains(&format!("#EXT-X-MAP:URI=\"init-1.mp4?{token_query}\"")),
        "{playlist}"
    );
    let uris = segment_uris(&playlist);
    assert!(!uris.is_empty());
    for uri in &uris {
        assert!(uri.ends_with(&format!(".m4s?{token_query}")), "{playlist}");
    }
    // A player resolves the listed URIs against the playlist URL.
    let segment = stack.get(&format!("/video/{CHANNEL}/{}", uris[0])).await;
    assert_eq!(segment.status, 200);
    let init = stack
        .get(&format!("/video/{CHANNEL}/init-1.mp4?{token_query}"))
        .await;
    assert_eq!(init.status, 200);
    let gone = stack
        .get(&format!("/video/{CHANNEL}/seg-999999.m4s?{token_query}"))
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn unplayable_media_is_a_stream_failure() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let mut stack = Stack::open().await;
    stack.ingest.allow_key(KEY, CHANNEL);
    let mut encoder = Encoder::push(&stack.rtmp_url(KEY), TestSource::Unsupported);

    let created = stack.next_event().await;
    assert!(
        matches!(created, IngestEvent::SessionCreated { .. }),
        "{created:?}"
    );
    let failure = stack.next_event().await;
    let IngestEvent::StreamFailure { reason, .. } = &failure else {
        panic!("expected StreamFailure, got {failure:?}");
    };
    println!("failure reason: {reason}");
    let ended = stack.next_event().await;
    assert!(matches!(ended, IngestEvent::StreamEnd { .. }), "{ended:?}");
    assert!(!encoder.exited().await.success());
    assert_eq!(
        stack
            .get(&format!("/video/{CHANNEL}/index.m3u8"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn stop_channel_cuts_off_and_the_encoder_may_come_back_until_shutdown() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let mut stack = Stack::open().await;
    stack.ingest.allow_key(KEY, CHANNEL);
    let mut first = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    expect_started(&mut stack).await;

    assert!(stack.ingest.stop_channel(CHANNEL));
    assert!(matches!(
        stack.next_event().await,
        IngestEvent::StreamEnd { .. }
    ));
    assert!(!stack.ingest.stop_channel(CHANNEL));
    assert!(!first.exited().await.success());

    // The key stays allowed.
    let mut second = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    let second_session = expect_started(&mut stack).await;

    let shutdown_started = Instant::now();
    stack.stop_rtmp().await;
    println!(
        "serve_rtmp returned {:?} after stop",
        shutdown_started.elapsed()
    );
    let ended = stack.next_event().await;
    assert!(
        matches!(&ended, IngestEvent::StreamEnd { session_id, .. } if *session_id == second_session),
        "{ended:?}"
    );
    assert!(!second.exited().await.success());
    assert!(!stack.ingest.is_live(CHANNEL));
}

#[tokio::test]
async fn a_recording_channel_leaves_a_playable_vod_recording() {
    require_ffmpeg!();
    let _slot = ENCODER_SLOT.lock().await;
    let bucket_root =
        std::env::temp_dir().join(format!("local-video-rec-{}", ulid::Ulid::generate()));
    let mut stack = Stack::start(IngestConfig::default(), Arc::new(|_, _| true)).await;
    stack.ingest.allow_key(KEY, CHANNEL);
    stack.ingest.set_recording(
        CHANNEL,
        Some(RecordingTarget {
            bucket_root: bucket_root.clone(),
            bucket_name: "recordings".into(),
            account_id: "000000000000".into(),
            channel_arn: format!("arn:aws:ivs:us-east-1:000000000000:channel/{CHANNEL}"),
            reconnect_window: Duration::from_millis(500),
            thumbnail_interval: Some(Duration::from_secs(60)),
        }),
    );
    let mut encoder = Encoder::push(&stack.rtmp_url(KEY), TestSource::Small);
    let session_id = expect_started(&mut stack).await;
    let started = stack.next_event().await;
    let IngestEvent::RecordingStart {
        key_prefix,
        session_id: recorded,
        ..
    } = started
    else {
        panic!("expected RecordingStart, got {started:?}");
    };
    assert_eq!(recorded, session_id);
    stack.playlist_with(CHANNEL, "", 3).await;
    encoder.kill().await;
    assert!(matches!(
        stack.next_event().await,
        IngestEvent::StreamEnd { .. }
    ));
    // The reconnect window passes without a push: the recording ends.
    let ended = stack.next_event().await;
    let IngestEvent::RecordingEnd {
        key_prefix: ended_prefix,
        duration_ms,
        stream_ids,
        ..
    } = ended
    else {
        panic!("expected RecordingEnd, got {ended:?}");
    };
    assert_eq!(ended_prefix, key_prefix);
    assert_eq!(stream_ids, [session_id]);
    assert!(duration_ms > 0);

    let dir = bucket_root.join(&key_prefix);
    let master = dir.join("media/hls/master.m3u8");
    let rendition = std::fs::read_to_string(&master).unwrap();
    let rendition = rendition.lines().last().unwrap().to_owned();
    let playlist = std::fs::read_to_string(dir.join("media/hls").join(&rendition)).unwrap();
    assert!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.ends_with("#EXT-X-ENDLIST\n"),
        "{playlist}"
    );
    assert!(dir.join("events/recording-started.json").exists());
    assert!(dir.join("events/recording-ended.json").exists());
    let probe = ffprobe_streams(master.to_str().unwrap()).await;
    let codecs: Vec<_> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        codecs.contains(&"h264".to_owned()) && codecs.contains(&"aac".to_owned()),
        "{probe}"
    );
    let thumbnail = dir
        .join("media/thumbnails")
        .join(rendition.trim_end_matches("/playlist.m3u8"))
        .join("thumb0.jpg");
    let jpeg = poll("the first thumbnail", || async {
        std::fs::read(&thumbnail).ok()
    })
    .await;
    assert_eq!(&jpeg[..2], b"\xff\xd8", "a JPEG");
    std::fs::remove_dir_all(bucket_root).unwrap();
}

/// Waits for a session's SessionCreated and StreamStart; returns its id.
async fn expect_started(stack: &mut Stack) -> String {
    let created = stack.next_event().await;
    let IngestEvent::SessionCreated { session_id, .. } = created else {
        panic!("expected SessionCreated, got {created:?}");
    };
    let started = stack.next_event().await;
    assert!(
        matches!(&started, IngestEvent::StreamStart { session_id: s, .. } if *s == session_id),
        "{started:?}"
    );
    session_id
}
