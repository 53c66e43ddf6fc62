//! Recording end to end: a real encoder (ffmpeg) pushing to a channel of the local IVS
//! with the stack's recording configuration, the recording read back through the local
//! S3 with AWS's own SDK (signed requests and presigned URLs) and measured by ffprobe,
//! and the "IVS Recording State Change" events the video events function was handed.
//! Without ffmpeg the video tests say how to install it and pass, except under CI.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use common::{Encoder, encoder_available, eventually};
use local::ivs::{LOCAL_RECORDING_CONFIGURATION_ARN, RECORDINGS_BUCKET};
use local::{Config, LocalStack};
use serde_json::Value;

/// ffmpeg encodes in real time on a 2-core machine: one encoder test at a time.
static ENCODER_SLOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The segments' target length (and so the tolerance of every duration here): the
/// encoder's one-second GOPs cut at least one second each.
const SEGMENT: Duration = Duration::from_secs(2);

fn ivs(ivs_url: &str) -> aws_sdk_ivs::Client {
    livestream::video::Video::local_client(ivs_url)
}

fn s3(s3_url: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(s3_url)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            local::s3::LOCAL_ACCESS_KEY_ID,
            local::s3::LOCAL_SECRET_ACCESS_KEY,
            None,
            None,
            "local",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A channel recorded with the stack's configuration: `(channel ARN, stream key)`.
async fn recorded_channel(ivs_url: &str) -> (String, String) {
    let out = ivs(ivs_url)
        .create_channel()
        .name("recorded-class")
        .recording_configuration_arn(LOCAL_RECORDING_CONFIGURATION_ARN)
        .send()
        .await
        .unwrap();
    let channel = out.channel().unwrap();
    assert_eq!(
        channel.recording_configuration_arn(),
        Some(LOCAL_RECORDING_CONFIGURATION_ARN)
    );
    (
        channel.arn().unwrap().to_owned(),
        out.stream_key().unwrap().value().unwrap().to_owned(),
    )
}

/// The recording state changes delivered for `channel_arn` so far: their `detail`s.
/// What the functions do when the teacher stops the class: the push is cut off and the
/// channel's key deleted, so nothing can push again and the recording ends at once.
async fn stop_class(ivs_url: &str, channel_arn: &str) {
    let client = ivs(ivs_url);
    client
        .stop_stream()
        .channel_arn(channel_arn)
        .send()
        .await
        .unwrap();
    let keys = client
        .list_stream_keys()
        .channel_arn(channel_arn)
        .send()
        .await
        .unwrap();
    for key in keys.stream_keys() {
        client
            .delete_stream_key()
            .arn(key.arn().unwrap())
            .send()
            .await
            .unwrap();
    }
}

fn recording_events(stack: &LocalStack, channel_arn: &str) -> Vec<Value> {
    stack
        .ivs
        .delivered_events()
        .into_iter()
        .filter(|d| {
            d.event["detail-type"] == "IVS Recording State Change"
                && d.event["resources"][0] == channel_arn
        })
        .map(|d| {
            assert_eq!(d.result, Ok(()), "the video events function took it");
            assert_eq!(d.event["source"], "aws.ivs");
            d.event["detail"].clone()
        })
        .collect()
}

/// Waits for the `n`th (from 1) recording event of `channel_arn` with `status`.
async fn recording_event(stack: &LocalStack, channel_arn: &str, status: &str, n: usize) -> Value {
    eventually(&format!("{status} #{n}"), || async {
        recording_events(stack, channel_arn)
            .into_iter()
            .filter(|d| d["recording_status"] == status)
            .nth(n - 1)
    })
    .await
}

/// The text of `key` in the recordings' bucket, read with the SDK (a signed request).
async fn read(client: &aws_sdk_s3::Client, key: &str) -> String {
    let object = client
        .get_object()
        .bucket(RECORDINGS_BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
    let bytes = object.body.collect().await.unwrap().into_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn presigned(client: &aws_sdk_s3::Client, key: &str) -> String {
    client
        .get_object()
        .bucket(RECORDINGS_BUCKET)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_owned()
}

/// The recording at `prefix` as a player gets it: its master playlist fetched with a
/// presigned URL, and its rendition playlist with every URI in it presigned (a relative
/// URI would lose the signature), written where ffprobe reads it. Returns that file and
/// the rendition playlist's text.
async fn presigned_playlist(
    client: &aws_sdk_s3::Client,
    prefix: &str,
    dir: &Path,
) -> (std::path::PathBuf, String) {
    let http = reqwest::Client::new();
    let master_url = presigned(client, &format!("{prefix}/media/hls/master.m3u8")).await;
    let response = http.get(&master_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    let master = response.text().await.unwrap();
    let rendition = master
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap();
    let rendition_dir = format!(
        "{prefix}/media/hls/{}",
        rendition.rsplit_once('/').unwrap().0
    );
    let playlist_url = presigned(client, &format!("{prefix}/media/hls/{rendition}")).await;
    let playlist = http
        .get(&playlist_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut signed = String::new();
    for line in playlist.lines() {
        if let Some(init) = line
            .strip_prefix("#EXT-X-MAP:URI=\"")
            .and_then(|l| l.strip_suffix('"'))
        {
            let url = presigned(client, &format!("{rendition_dir}/{init}")).await;
            signed.push_str(&format!("#EXT-X-MAP:URI=\"{url}\"\n"));
        } else if !line.starts_with('#') && !line.is_empty() {
            signed.push_str(&presigned(client, &format!("{rendition_dir}/{line}")).await);
            signed.push('\n');
        } else {
            signed.push_str(line);
            signed.push('\n');
        }
    }
    let path = dir.join("signed.m3u8");
    std::fs::write(&path, signed).unwrap();
    (path, playlist)
}

/// The media duration ffprobe measures, decoding what the playlist lists.
async fn probe_duration(playlist: &Path) -> f64 {
    let output = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-protocol_whitelist", "file,http,tcp"])
        .args(["-allowed_extensions", "ALL"])
        .args(["-show_entries", "format=duration", "-of", "json"])
        .arg(playlist)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("ffprobe: {}", String::from_utf8_lossy(&output.stderr)))
}

fn extinf_seconds(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.trim_end_matches(',').parse::<f64>().ok())
        .sum()
}

fn assert_within_a_segment(measured: f64, expected: f64, what: &str) {
    assert!(
        (measured - expected).abs() <= SEGMENT.as_secs_f64(),
        "{what}: {measured:.3} s, expected {expected:.3} s within a segment"
    );
}

#[tokio::test]
async fn a_recorded_push_plays_back_through_the_local_s3_and_unsigned_reads_are_refused() {
    if !encoder_available() {
        return;
    }
    let _slot = ENCODER_SLOT.lock().await;
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let (channel_arn, key) = recorded_channel(&stack.ivs_url).await;
    let encoder = Encoder::push(&stack.rtmp_url, &key);
    let start = recording_event(&stack, &channel_arn, "Recording Start", 1).await;
    let pushed_from = Instant::now();
    assert_eq!(start["recording_s3_bucket_name"], RECORDINGS_BUCKET);
    assert_eq!(start["channel_name"], "recorded-class");
    let prefix = start["recording_s3_key_prefix"]
        .as_str()
        .unwrap()
        .to_owned();
    let channel_id = channel_arn.rsplit('/').next().unwrap();
    assert!(
        prefix.starts_with(&format!("ivs/v1/000000000000/{channel_id}/")),
        "{prefix}"
    );
    assert!(prefix.ends_with(start["recording_session_id"].as_str().unwrap()));

    tokio::time::sleep(Duration::from_secs(20)).await;
    // The teacher stops the class: the recording ends at once, not after the window.
    stop_class(&stack.ivs_url, &channel_arn).await;
    let pushed = pushed_from.elapsed().as_secs_f64();
    drop(encoder);
    let end = recording_event(&stack, &channel_arn, "Recording End", 1).await;
    assert_eq!(end["recording_s3_key_prefix"], prefix.as_str());
    assert_eq!(end["recording_session_id"], start["recording_session_id"]);
    assert_eq!(
        end["recording_session_stream_ids"],
        serde_json::json!([start["stream_id"]])
    );
    let recorded_ms = end["recording_duration_ms"].as_f64().unwrap();
    assert_within_a_segment(recorded_ms / 1000.0, pushed, "the Recording End's duration");

    let client = s3(&stack.s3_url);
    let ended: Value = serde_json::from_str(
        &read(&client, &format!("{prefix}/events/recording-ended.json")).await,
    )
    .unwrap();
    assert_eq!(ended["recording_status"], "RECORDING_ENDED");
    assert_eq!(ended["channel_arn"], channel_arn.as_str());
    assert_eq!(
        ended["media"]["hls"]["duration_ms"].as_f64(),
        Some(recorded_ms)
    );
    let started: Value = serde_json::from_str(
        &read(&client, &format!("{prefix}/events/recording-started.json")).await,
    )
    .unwrap();
    assert_eq!(started["recording_status"], "RECORDING_STARTED");

    let dir = tempfile::tempdir().unwrap();
    let (signed, playlist) = presigned_playlist(&client, &prefix, dir.path()).await;
    assert!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        "{playlist}"
    );
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    let measured = probe_duration(&signed).await;
    assert_within_a_segment(measured, 20.0, "ffprobe's duration of the recording");
    assert_within_a_segment(measured, recorded_ms / 1000.0, "ffprobe against the event");

    // What a recording costs in storage: its media's bytes per recorded hour.
    let media = client
        .list_objects_v2()
        .bucket(RECORDINGS_BUCKET)
        .prefix(format!("{prefix}/media/hls/"))
        .send()
        .await
        .unwrap();
    let bytes: i64 = media.contents().iter().filter_map(|o| o.size()).sum();
    let per_hour = bytes as f64 / (recorded_ms / 1000.0) * 3600.0;
    println!(
        "recording storage: {bytes} bytes for {:.1} s of 720p30 test pattern ({:.0} MB per hour)",
        recorded_ms / 1000.0,
        per_hour / 1e6
    );
    assert!(bytes > 0);

    // The first thumbnail, from the first segment, listed with the SDK.
    let rendition = ended["media"]["hls"]["renditions"][0]["path"]
        .as_str()
        .unwrap();
    let thumbnails = format!("{prefix}/media/thumbnails/{rendition}/");
    let listed = eventually("the first thumbnail", || async {
        let page = client
            .list_objects_v2()
            .bucket(RECORDINGS_BUCKET)
            .prefix(&thumbnails)
            .send()
            .await
            .unwrap();
        (page.key_count() == Some(1)).then_some(page)
    })
    .await;
    assert_eq!(
        listed.contents()[0].key(),
        Some(format!("{thumbnails}thumb0.jpg").as_str())
    );

    // Unsigned, tampered or expired: refused as S3 refuses them.
    let http = reqwest::Client::new();
    let master_key = format!("{prefix}/media/hls/master.m3u8");
    let unsigned = format!("{}/{RECORDINGS_BUCKET}/{master_key}", stack.s3_url);
    let signed_url = presigned(&client, &master_key).await;
    let tampered_key = signed_url.replacen("master.m3u8", "other.m3u8", 1);
    let signature_at = signed_url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered_signature = signed_url.clone();
    let flipped = if &signed_url[signature_at..=signature_at] == "0" {
        "1"
    } else {
        "0"
    };
    tampered_signature.replace_range(signature_at..=signature_at, flipped);
    for url in [unsigned, tampered_key, tampered_signature] {
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 403, "{url}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("<Code>AccessDenied</Code>")
                || body.contains("<Code>SignatureDoesNotMatch</Code>"),
            "{body}"
        );
    }
    let unsigned_body = http
        .get(format!("{}/{RECORDINGS_BUCKET}/{master_key}", stack.s3_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        unsigned_body.contains("<Code>AccessDenied</Code>"),
        "{unsigned_body}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_push_back_within_the_window_stays_one_recording_and_beyond_it_makes_two() {
    if !encoder_available() {
        return;
    }
    let _slot = ENCODER_SLOT.lock().await;
    let window = Duration::from_secs(5);
    let stack = LocalStack::start(Config {
        ingest_grace: window,
        ..Config::on_free_ports(None)
    })
    .await
    .unwrap();
    let (channel_arn, key) = recorded_channel(&stack.ivs_url).await;
    let client = s3(&stack.s3_url);

    let encoder = Encoder::push(&stack.rtmp_url, &key);
    let first = recording_event(&stack, &channel_arn, "Recording Start", 1).await;
    let prefix = first["recording_s3_key_prefix"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The encoder crashes and comes back at once: the same recording goes on.
    encoder.kill().await;
    let encoder = Encoder::push(&stack.rtmp_url, &key);
    let second_stream = eventually("the second push's stream", || async {
        let session = ivs(&stack.ivs_url)
            .get_stream()
            .channel_arn(&channel_arn)
            .send()
            .await
            .ok()?;
        let id = session.stream()?.stream_id()?.to_owned();
        (first["stream_id"] != id.as_str()).then_some(id)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    encoder.kill().await;
    // The window passes without a push: the recording ends, holding both pushes.
    let end = recording_event(&stack, &channel_arn, "Recording End", 1).await;
    assert_eq!(end["recording_s3_key_prefix"], prefix.as_str());
    assert_eq!(
        end["recording_session_stream_ids"],
        serde_json::json!([first["stream_id"], second_stream])
    );
    assert_eq!(
        recording_events(&stack, &channel_arn)
            .iter()
            .filter(|d| d["recording_status"] == "Recording Start")
            .count(),
        1,
        "one recording across the reconnect"
    );
    let ended: Value = serde_json::from_str(
        &read(&client, &format!("{prefix}/events/recording-ended.json")).await,
    )
    .unwrap();
    let rendition = ended["media"]["hls"]["renditions"][0]["path"]
        .as_str()
        .unwrap();
    let playlist = read(
        &client,
        &format!("{prefix}/media/hls/{rendition}/playlist.m3u8"),
    )
    .await;
    assert_eq!(
        playlist.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{playlist}"
    );
    assert_eq!(
        playlist.matches("#EXT-X-MAP:").count(),
        2,
        "a new init segment"
    );
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"));

    // A push after the window: a recording of its own.
    let encoder = Encoder::push(&stack.rtmp_url, &key);
    let again = recording_event(&stack, &channel_arn, "Recording Start", 2).await;
    assert_ne!(again["recording_s3_key_prefix"], prefix.as_str());
    assert_ne!(again["recording_session_id"], first["recording_session_id"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_class(&stack.ivs_url, &channel_arn).await;
    drop(encoder);
    let second_end = recording_event(&stack, &channel_arn, "Recording End", 2).await;
    assert_eq!(
        second_end["recording_s3_key_prefix"],
        again["recording_s3_key_prefix"]
    );
    let listed = client
        .list_objects_v2()
        .bucket(RECORDINGS_BUCKET)
        .prefix(format!(
            "ivs/v1/000000000000/{}/",
            channel_arn.rsplit('/').next().unwrap()
        ))
        .send()
        .await
        .unwrap();
    let recordings: std::collections::BTreeSet<_> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key()?.split("/events/").next())
        .filter(|p| !p.contains("/media/"))
        .collect();
    assert_eq!(recordings.len(), 2, "{recordings:?}");
    stack.shutdown().await;
}

/// The `local` binary on free ports over `data_dir`: `(process, IVS URL, RTMP URL)`.
async fn spawn_binary(data_dir: &Path) -> (std::process::Child, String, String) {
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (ivs_port, rtmp_port) = (port(), port());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_local"));
    command
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .env("LOCAL_IVS_PORT", ivs_port.to_string())
        .env("LOCAL_RTMP_PORT", rtmp_port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in [
        "LOCAL_HTTP_PORT",
        "LOCAL_WS_PORT",
        "LOCAL_DYNAMO_PORT",
        "LOCAL_SQS_PORT",
        "LOCAL_S3_PORT",
    ] {
        command.env(name, "0");
    }
    let child = command.spawn().unwrap();
    let ivs_url = format!("http://127.0.0.1:{ivs_port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ivs(&ivs_url)
        .get_recording_configuration()
        .arn(LOCAL_RECORDING_CONFIGURATION_ARN)
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
    (child, ivs_url, format!("rtmp://127.0.0.1:{rtmp_port}/app/"))
}

/// The rendition playlist of the one recording under `bucket`, once it lists `segments`.
fn playlist_on_disk(bucket: &Path) -> Option<(std::path::PathBuf, String)> {
    let mut pending = vec![bucket.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "playlist.m3u8") {
                let text = std::fs::read_to_string(&path).ok()?;
                return Some((path, text));
            }
        }
    }
    None
}

#[tokio::test]
async fn a_stack_killed_mid_recording_leaves_it_playable_and_finished_at_the_next_start() {
    if !encoder_available() {
        return;
    }
    let _slot = ENCODER_SLOT.lock().await;
    let data = tempfile::tempdir().unwrap();
    let (mut process, ivs_url, rtmp_url) = spawn_binary(data.path()).await;
    let (_channel_arn, key) = recorded_channel(&ivs_url).await;
    let encoder = Encoder::push(&rtmp_url, &key);
    let bucket = data.path().join("s3").join(RECORDINGS_BUCKET);
    eventually("six seconds recorded", || async {
        let (_, text) = playlist_on_disk(&bucket)?;
        (extinf_seconds(&text) >= 6.0).then_some(())
    })
    .await;
    // kill -9: nothing is finished.
    process.kill().unwrap();
    process.wait().unwrap();
    drop(encoder);
    let (playlist_path, before) = playlist_on_disk(&bucket).unwrap();
    assert!(!before.contains("#EXT-X-ENDLIST"), "{before}");
    let recorded = extinf_seconds(&before);

    let stack = LocalStack::start(Config {
        data_dir: Some(data.path().to_path_buf()),
        ..Config::on_free_ports(None)
    })
    .await
    .unwrap();
    let end = eventually(
        "the Recording End of the killed run's recording",
        || async {
            stack
                .ivs
                .delivered_events()
                .into_iter()
                .find(|d| d.event["detail"]["recording_status"] == "Recording End")
        },
    )
    .await;
    assert_eq!(end.result, Ok(()));
    let detail = &end.event["detail"];
    let prefix = detail["recording_s3_key_prefix"].as_str().unwrap();
    assert!(playlist_path.starts_with(bucket.join(prefix)));
    assert_eq!(
        detail["recording_duration_ms"].as_f64(),
        Some((recorded * 1000.0).round())
    );
    let after = std::fs::read_to_string(&playlist_path).unwrap();
    assert!(after.ends_with("#EXT-X-ENDLIST\n"), "{after}");
    assert_eq!(
        extinf_seconds(&after),
        recorded,
        "nothing lost, nothing added"
    );

    let client = s3(&stack.s3_url);
    let dir = tempfile::tempdir().unwrap();
    let (signed, _) = presigned_playlist(&client, prefix, dir.path()).await;
    let measured = probe_duration(&signed).await;
    assert_within_a_segment(
        measured,
        recorded,
        "the killed run's recording plays to the kill",
    );
    stack.shutdown().await;
    // Finished once: a second restart finds nothing left open.
    let again = LocalStack::start(Config {
        data_dir: Some(data.path().to_path_buf()),
        ..Config::on_free_ports(None)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        again
            .ivs
            .delivered_events()
            .iter()
            .all(|d| d.event["detail-type"] != "IVS Recording State Change")
    );
    again.shutdown().await;
}

#[tokio::test]
async fn the_local_s3_answers_the_sdk_as_s3_does() {
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let bucket = stack.s3_root.join(RECORDINGS_BUCKET);
    std::fs::create_dir_all(bucket.join("rec/media")).unwrap();
    for i in 0..5 {
        std::fs::write(
            bucket.join(format!("rec/media/{i}.m4s")),
            vec![b'x'; 100 + i],
        )
        .unwrap();
    }
    std::fs::write(bucket.join("rec/a.json"), b"{\"a\":1}").unwrap();
    let client = s3(&stack.s3_url);

    // Paged listing with a continuation token.
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(RECORDINGS_BUCKET)
            .prefix("rec/")
            .max_keys(4)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        keys.extend(page.contents().iter().map(|o| o.key().unwrap().to_owned()));
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        keys,
        [
            "rec/a.json",
            "rec/media/0.m4s",
            "rec/media/1.m4s",
            "rec/media/2.m4s",
            "rec/media/3.m4s",
            "rec/media/4.m4s"
        ]
    );
    let folders = client
        .list_objects_v2()
        .bucket(RECORDINGS_BUCKET)
        .prefix("rec/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(folders.common_prefixes()[0].prefix(), Some("rec/media/"));
    assert_eq!(folders.contents().len(), 1);

    // Types, ranges, HEAD.
    let json = client
        .get_object()
        .bucket(RECORDINGS_BUCKET)
        .key("rec/a.json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.content_type(), Some("application/json"));
    let range = client
        .get_object()
        .bucket(RECORDINGS_BUCKET)
        .key("rec/media/4.m4s")
        .range("bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(range.content_range(), Some("bytes 100-103/104"));
    assert_eq!(range.content_type(), Some("video/iso.segment"));
    assert_eq!(range.body.collect().await.unwrap().into_bytes().len(), 4);
    let head = client
        .head_object()
        .bucket(RECORDINGS_BUCKET)
        .key("rec/media/0.m4s")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(100));

    // A missing key: NoSuchKey, typed by the SDK.
    let missing = client
        .get_object()
        .bucket(RECORDINGS_BUCKET)
        .key("rec/none.json")
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_no_such_key());

    // Deleting one and then a batch.
    client
        .delete_object()
        .bucket(RECORDINGS_BUCKET)
        .key("rec/a.json")
        .send()
        .await
        .unwrap();
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let batch = Delete::builder()
        .set_objects(Some(
            (0..5)
                .map(|i| {
                    ObjectIdentifier::builder()
                        .key(format!("rec/media/{i}.m4s"))
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .build()
        .unwrap();
    let deleted = client
        .delete_objects()
        .bucket(RECORDINGS_BUCKET)
        .delete(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.deleted().len(), 5);
    let empty = client
        .list_objects_v2()
        .bucket(RECORDINGS_BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(empty.key_count(), Some(0));
    assert!(!bucket.join("rec").exists(), "no empty directories left");

    // Wrong credentials, and an expired presigned URL.
    let stranger = {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&stack.s3_url)
                .force_path_style(true)
                .credentials_provider(Credentials::new("local", "wrong", None, None, "test"))
                .build(),
        )
    };
    let refused = stranger
        .list_objects_v2()
        .bucket(RECORDINGS_BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(403)
    );
    std::fs::write(bucket.join("x.json"), b"{}").unwrap();
    let expiring = client
        .get_object()
        .bucket(RECORDINGS_BUCKET)
        .key("x.json")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(3)).unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    assert_eq!(http.get(expiring.uri()).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let expired = http.get(expiring.uri()).send().await.unwrap();
    assert_eq!(expired.status(), 403);
    assert!(
        expired
            .text()
            .await
            .unwrap()
            .contains("Request has expired")
    );

    // CORS for the console's origin.
    let cors = http
        .get(presigned(&client, "x.json").await)
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cors.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    stack.shutdown().await;
}
