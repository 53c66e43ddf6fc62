//! Every file in `events/` answers 2xx against a seeded table: invoked in this process
//! as `cargo lambda invoke` would invoke the function, in directory order, once; then
//! again after seeding anew (seeding resets what the samples changed).

use std::future::IntoFuture;

use aws_lambda_events::dynamodb::Event;
use livestream::AppState;
use livestream::auth::Authenticator;
use livestream::testing::{RecordingManagementApi, TEST_SECRET, TestEnv};
use livestream_broadcast::BroadcastState;
use livestream_ws::WsState;
use local::invoker::{Functions, InProcess, Invoker};
use local::seed::{CONNECTION, seed};

fn samples(dir: &str) -> Vec<(String, serde_json::Value)> {
    let dir = format!("{}/../events/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// `ws-default-chat` -> `ws-default`: the function a WebSocket sample is for.
fn ws_function(sample: &str) -> &str {
    ["ws-connect", "ws-disconnect", "ws-default"]
        .into_iter()
        .find(|f| sample.starts_with(f))
        .unwrap_or_else(|| panic!("{sample} names no WebSocket function"))
}

async fn run_every_sample(invoker: &Invoker, posts: &RecordingManagementApi) {
    let mut count = 0;
    for (name, event) in samples("http") {
        let reply = invoker.http(&name, event).await;
        if name == "get-recording-playlist" {
            // Its token is a placeholder (a real one is signed with the stack's
            // playback key): refused, as any token not from get-recording.
            assert_eq!(reply.status, 403, "{name}");
            count += 1;
            continue;
        }
        assert!(
            (200..300).contains(&reply.status),
            "{name}: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        count += 1;
    }
    for (name, event) in samples("streams") {
        let event: Event = serde_json::from_value(event).unwrap();
        let response = invoker.broadcast(event).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "{name}: {response:?}"
        );
        count += 1;
    }
    for (name, event) in samples("ws") {
        posts.clear();
        let status = invoker.websocket(ws_function(&name), event).await;
        assert_eq!(status, 200, "{name}");
        let errors: Vec<_> = posts
            .events(CONNECTION)
            .into_iter()
            .filter(|e| e["type"] == "error")
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        count += 1;
    }
    for (name, event) in samples("ivs") {
        invoker
            .video_event(event)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        count += 1;
    }
    let on_disk = ["http", "streams", "ws", "ivs"]
        .iter()
        .map(|d| samples(d).len())
        .sum::<usize>();
    assert_eq!(count, on_disk);
}

/// The local stack's IVS API on a free port, its playback key imported: the video
/// service of the functions under test.
async fn video() -> impl Fn() -> livestream::video::Video {
    let (ingest, _events) = local_video::Ingest::new(local_video::IngestConfig::default());
    let ivs = local::ivs::LocalIvs::new(
        ingest,
        "127.0.0.1:1935".into(),
        "http://127.0.0.1:3000/video".into(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, ivs.router()).into_future());
    let (private, public) = local::ivs::playback_key_pair(None).unwrap();
    local::import_playback_key(&url, &public).await.unwrap();
    move || local::video_service(&url, &private, std::time::Duration::from_secs(60))
}

#[tokio::test]
async fn every_sample_event_answers_2xx_against_a_seeded_table_and_seeding_again_resets() {
    let env = TestEnv::start().await;
    let posts = RecordingManagementApi::start().await;
    let secret = std::str::from_utf8(TEST_SECRET).unwrap();
    let auth = || Authenticator::hs256(TEST_SECRET, None, None).unwrap();
    let video = video().await;
    let invoker = Invoker::new(Functions::InProcess(Box::new(InProcess {
        api: AppState::new(env.store().clone(), auth())
            .with_video(video())
            .with_recordings(livestream::recordings::Recordings::new(
                // No sample reads an object: the playlist's is refused for its token.
                livestream::recordings::Recordings::local_client("http://127.0.0.1:9"),
                "recordings",
                livestream::video::PlaybackKey::Pem("samples-playback-key".into()),
            )),
        ws: WsState {
            app: AppState::new(env.store().clone(), auth()),
            connections: posts.connections(),
        },
        broadcast: BroadcastState {
            video: Some(video()),
            ..BroadcastState::new(env.store().clone(), posts.connections())
        },
    })));

    seed(env.store(), secret).await.unwrap();
    run_every_sample(&invoker, &posts).await;
    seed(env.store(), secret).await.unwrap();
    run_every_sample(&invoker, &posts).await;
}
