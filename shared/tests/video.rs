//! The ingest state machine against the embedded DynamoDB: the video service's events
//! (as EventBridge delivers them: late, twice, out of order) drive a stream's ingest
//! state and its lifecycle; the sweeper ends a class whose push did not come back.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use livestream::model::{IngestState, Stream, StreamStatus, now};
use livestream::service::sweep::end_abandoned;
use livestream::service::video::{EventOutcome, StreamStateEvent, on_stream_state_change};
use livestream::store::Store;
use livestream::testing::{TestEnv, teacher_stream};
use livestream::video::Channel;

async fn stream_with_channel(store: &Store, live: bool) -> (Stream, String) {
    let stream = teacher_stream(store, live, true).await;
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

fn event(arn: &str, name: &str, session: &str, at: DateTime<Utc>) -> StreamStateEvent {
    serde_json::from_value(serde_json::json!({
        "version": "0",
        "id": "e",
        "detail-type": "IVS Stream State Change",
        "source": "aws.ivs",
        "account": "000000000000",
        "time": at.to_rfc3339(),
        "region": "us-east-1",
        "resources": [arn],
        "detail": { "event_name": name, "channel_name": "c", "stream_id": session }
    }))
    .unwrap()
}

async fn apply(store: &Store, event: &StreamStateEvent) -> EventOutcome {
    on_stream_state_change(store, None, event).await.unwrap()
}

async fn reload(store: &Store, stream: &Stream) -> Stream {
    store.stream(&stream.id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_push_to_a_scheduled_stream_takes_it_live_and_its_end_waits_for_the_push_to_return() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, false).await;
    let t0 = now();

    assert_eq!(
        apply(store, &event(&arn, "Session Created", "st-a", t0)).await,
        EventOutcome::Ignored
    );
    assert_eq!(
        apply(store, &event(&arn, "Stream Start", "st-a", t0)).await,
        EventOutcome::WentLive
    );
    let live = reload(store, &stream).await;
    assert_eq!(live.status, StreamStatus::Live);
    assert!(live.live_from_encoder);
    assert_eq!(live.ingest.state, IngestState::Connected);

    let dropped_at = t0 + Duration::seconds(30);
    apply(store, &event(&arn, "Stream End", "st-a", dropped_at)).await;
    let dropped = reload(store, &stream).await;
    assert_eq!(dropped.ingest.state, IngestState::Reconnecting);
    assert_eq!(
        dropped.ingest.reconnect_deadline,
        Some(dropped_at + Duration::seconds(60))
    );
    // Within the grace period nothing ends.
    assert_eq!(
        end_abandoned(store, None, dropped_at + Duration::seconds(59))
            .await
            .unwrap(),
        0
    );

    // The push comes back: the same class goes on.
    apply(
        store,
        &event(
            &arn,
            "Stream Start",
            "st-b",
            dropped_at + Duration::seconds(5),
        ),
    )
    .await;
    let back = reload(store, &stream).await;
    assert_eq!(back.status, StreamStatus::Live);
    assert_eq!(back.ingest.state, IngestState::Connected);
    assert_eq!(back.ingest.session_id.as_deref(), Some("st-b"));
    assert_eq!(back.started_at, live.started_at);
    assert_eq!(
        end_abandoned(store, None, dropped_at + Duration::seconds(600))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_class_whose_push_does_not_return_ends_as_a_stop_ends_it() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, false).await;
    let t0 = now();
    apply(store, &event(&arn, "Stream Start", "st-a", t0)).await;
    apply(
        store,
        &event(&arn, "Stream End", "st-a", t0 + Duration::seconds(1)),
    )
    .await;

    let ended = end_abandoned(store, None, t0 + Duration::seconds(62))
        .await
        .unwrap();
    assert_eq!(ended, 1);
    let stopped = reload(store, &stream).await;
    assert_eq!(stopped.status, StreamStatus::Ended);
    assert_eq!(stopped.viewer_count, 0);
    assert!(stopped.ended_at.is_some());
    let teacher = livestream::testing::identity("teacher-1", livestream::auth::Role::Teacher);
    let stats = livestream::service::stats::get(store, &teacher, &stream.id)
        .await
        .unwrap();
    assert_eq!(stats.status, StreamStatus::Ended);
    // A second sweep finds nothing more to end.
    assert_eq!(
        end_abandoned(store, None, t0 + Duration::seconds(120))
            .await
            .unwrap(),
        0
    );
    // A push after the end is cut off and changes nothing.
    assert_eq!(
        apply(
            store,
            &event(&arn, "Stream Start", "st-c", t0 + Duration::seconds(130))
        )
        .await,
        EventOutcome::CutOff
    );
    assert_eq!(reload(store, &stream).await.status, StreamStatus::Ended);
}

#[tokio::test]
async fn a_stream_started_by_hand_does_not_end_when_its_push_drops() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, true).await;
    let t0 = now();
    apply(store, &event(&arn, "Stream Start", "st-a", t0)).await;
    apply(
        store,
        &event(&arn, "Stream End", "st-a", t0 + Duration::seconds(1)),
    )
    .await;
    assert_eq!(
        end_abandoned(store, None, t0 + Duration::seconds(600))
            .await
            .unwrap(),
        0
    );
    let still = reload(store, &stream).await;
    assert_eq!(still.status, StreamStatus::Live);
    assert_eq!(still.ingest.state, IngestState::Reconnecting);
}

#[tokio::test]
async fn late_duplicate_and_out_of_order_events_never_override_a_newer_state() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, false).await;
    let t0 = now();
    let start_a = event(&arn, "Stream Start", "st-a", t0);
    let end_a = event(&arn, "Stream End", "st-a", t0 + Duration::seconds(10));
    let start_b = event(&arn, "Stream Start", "st-b", t0 + Duration::seconds(20));

    // Delivered in the worst order, each twice.
    for e in [&start_b, &end_a, &start_a, &start_b, &end_a, &start_a] {
        apply(store, e).await;
    }
    let after = reload(store, &stream).await;
    assert_eq!(after.status, StreamStatus::Live);
    assert_eq!(after.ingest.state, IngestState::Connected);
    assert_eq!(after.ingest.session_id.as_deref(), Some("st-b"));

    // The end of a push another one replaced (a takeover) changes nothing, even when
    // it is newer than the takeover.
    let takeover = event(&arn, "Stream Takeover", "st-c", t0 + Duration::seconds(30));
    apply(store, &takeover).await;
    let late_end_b = event(&arn, "Stream End", "st-b", t0 + Duration::seconds(31));
    assert_eq!(apply(store, &late_end_b).await, EventOutcome::Ignored);
    let after = reload(store, &stream).await;
    assert_eq!(after.ingest.state, IngestState::Connected);
    assert_eq!(after.ingest.session_id.as_deref(), Some("st-c"));
}

#[tokio::test]
async fn the_same_start_delivered_many_times_at_once_takes_the_stream_live_once() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, false).await;
    let start = event(&arn, "Stream Start", "st-a", now());
    let outcomes = join_all((0..16).map(|_| apply(store, &start))).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == EventOutcome::WentLive)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(reload(store, &stream).await.status, StreamStatus::Live);
}

#[tokio::test]
async fn a_push_that_returns_while_the_sweeper_ends_the_class_keeps_it_or_loses_it_whole() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (stream, arn) = stream_with_channel(store, false).await;
    let t0 = now();
    apply(store, &event(&arn, "Stream Start", "st-a", t0)).await;
    apply(
        store,
        &event(&arn, "Stream End", "st-a", t0 + Duration::seconds(1)),
    )
    .await;
    let back = event(&arn, "Stream Start", "st-b", t0 + Duration::seconds(62));
    let (ended, _) = tokio::join!(
        end_abandoned(store, None, t0 + Duration::seconds(62)),
        apply(store, &back)
    );
    let after = reload(store, &stream).await;
    match ended.unwrap() {
        // The stop won: the class is over and its late push was cut off or ignored.
        1 => assert_eq!(after.status, StreamStatus::Ended),
        // The push won: the class goes on, open to chat (no closed marker left).
        0 => {
            assert_eq!(after.status, StreamStatus::Live);
            assert_eq!(after.ingest.state, IngestState::Connected);
            let teacher =
                livestream::testing::identity("teacher-1", livestream::auth::Role::Teacher);
            livestream::service::chat::send(
                store,
                &teacher,
                &stream.id,
                serde_json::from_value(serde_json::json!({ "message": "still here" })).unwrap(),
            )
            .await
            .unwrap();
            livestream::service::chat::pin(store, &teacher, &stream.id, "1")
                .await
                .unwrap();
        }
        n => panic!("{n} classes ended"),
    }
}

#[tokio::test]
async fn an_event_of_an_unknown_channel_changes_nothing() {
    let env = TestEnv::start().await;
    let store = env.store();
    let e = event(
        "arn:aws:ivs:us-east-1:000000000000:channel/nobody",
        "Stream Start",
        "st-a",
        now(),
    );
    assert_eq!(apply(store, &e).await, EventOutcome::UnknownChannel);
}
