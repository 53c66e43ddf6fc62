//! `cargo run -p local -- seed`: the course, streams, questions and connection the
//! sample events in `events/` name, so every sample answers 2xx.
//!
//! Seeding again resets those ids to the same starting state (whatever the samples did
//! to them), so the walkthrough can be repeated. Items are written through the rules
//! in `livestream::service` where they allow a fixed id, through the store where ids are
//! generated (course, streams, questions).

use aws_sdk_dynamodb::types::AttributeValue;
use livestream::auth::{Authenticator, Identity, Role};
use livestream::model::chat::SendMessageInput;
use livestream::model::{Course, Enrollment, Question, QuestionStatus, Stream, StreamStatus, now};
use livestream::service;
use livestream::store::{Store, keys};
use livestream::video::Channel;

use crate::dev_token;

pub const TEACHER: &str = "teacher-1";
pub const STUDENT: &str = "student-1";
pub const OTHER_STUDENT: &str = "student-2";
pub const COURSE: &str = "01JD5Z7A1B2C3D4E5F6G7H8J9K";
/// Live; most samples act on it.
pub const STREAM_LIVE: &str = "01JD5Z8Q6T3V0K2M4N6P8R0S2T";
/// Scheduled: `start-stream`, `update-stream`, `update-stream-settings`.
pub const STREAM_SCHEDULED: &str = "01JD5Z8Q6T3V0K2M4N6P8R0S3A";
/// Scheduled, for `cancel-stream`.
pub const STREAM_TO_CANCEL: &str = "01JD5Z8Q6T3V0K2M4N6P8R0S4B";
/// Live, for `stop-stream` (which ends it: the others stay live).
pub const STREAM_TO_STOP: &str = "01JD5Z8Q6T3V0K2M4N6P8R0S5C";
/// Scheduled, with a video channel: the `events/ivs/` samples push to it, so it goes
/// live from its encoder, drops and comes back.
pub const STREAM_VIDEO: &str = "01JD5Z8Q6T3V0K2M4N6P8R0S6D";
/// The channel of [`STREAM_VIDEO`], as the `events/ivs/` samples name it.
pub const VIDEO_CHANNEL: &str = "arn:aws:ivs:us-east-1:000000000000:channel/SampleChan01";
/// Open, asked by student-2 so student-1 may upvote it.
pub const QUESTION_OPEN: &str = "01JD5ZB9C8D7E6F5G4H3J2K1M0";
pub const QUESTION_PENDING: &str = "01JD5ZB9C8D7E6F5G4H3J2K1M1";
pub const QUESTION_DISMISSED: &str = "01JD5ZB9C8D7E6F5G4H3J2K1M2";
pub const QUESTION_TO_DISMISS: &str = "01JD5ZB9C8D7E6F5G4H3J2K1M3";
pub const QUESTION_TO_HIDE: &str = "01JD5ZB9C8D7E6F5G4H3J2K1M4";
/// student-1's open WebSocket connection to the live stream (`ws-default`, `ws-disconnect`).
pub const CONNECTION: &str = "ExampleConn1=";
/// Connections the samples create or expire; removed on reseed.
const OTHER_CONNECTIONS: &[&str] = &["ExampleConn0=", "ExampleConn2="];

const STREAMS: &[&str] = &[
    STREAM_LIVE,
    STREAM_SCHEDULED,
    STREAM_TO_CANCEL,
    STREAM_TO_STOP,
    STREAM_VIDEO,
];

fn person(user_id: &str, role: Role) -> Identity {
    Identity {
        user_id: user_id.into(),
        role,
        display_name: user_id.into(),
    }
}

/// Deletes every item of a partition (a stream's or course's items and their index
/// entries, which live on the same items).
async fn clear_partition(store: &Store, pk: String) -> Result<(), String> {
    let items = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk))
        .projection_expression("PK, SK")
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| format!("reading the seeded items: {e}"))?;
    for key in items {
        store
            .client()
            .delete_item()
            .table_name(store.table())
            .set_key(Some(key))
            .send()
            .await
            .map_err(|e| format!("resetting the seeded items: {e}"))?;
    }
    Ok(())
}

fn stream(id: &str, title: &str) -> Stream {
    let at = now();
    Stream {
        id: id.into(),
        title: title.into(),
        description: "Seeded for the sample events".into(),
        course_id: COURSE.into(),
        instructor_id: TEACHER.into(),
        status: StreamStatus::Scheduled,
        stream_key: format!("sk_sample_{}", id.to_lowercase()),
        is_public: true,
        created_at: at,
        updated_at: at,
        ..Default::default()
    }
}

fn question(id: &str, status: QuestionStatus) -> Question {
    let at = now();
    Question {
        id: id.into(),
        stream_id: STREAM_LIVE.into(),
        user_id: OTHER_STUDENT.into(),
        display_name: OTHER_STUDENT.into(),
        text: "How do lifetimes relate to scopes?".into(),
        status,
        created_at: at,
        updated_at: at,
        ..Default::default()
    }
}

/// Writes (or resets) everything the sample events refer to. `jwt_secret` signs the
/// token of the seeded WebSocket connection, as the stack's `$connect` checks it.
pub async fn seed(store: &Store, jwt_secret: &str) -> Result<(), String> {
    let fail = |what: &'static str| move |e: livestream::ApiError| format!("{what}: {e}");
    for id in STREAMS {
        clear_partition(store, keys::stream_pk(id)).await?;
    }
    clear_partition(store, keys::course_pk(COURSE)).await?;
    clear_partition(store, keys::channel_pk(VIDEO_CHANNEL)).await?;
    for id in OTHER_CONNECTIONS.iter().chain([&CONNECTION]) {
        clear_partition(store, keys::connection_pk(id)).await?;
    }

    let teacher = person(TEACHER, Role::Teacher);
    let at = now();
    store
        .create_course(&Course {
            id: COURSE.into(),
            title: "Rust 101".into(),
            description: "Seeded for the sample events".into(),
            teacher_id: TEACHER.into(),
            created_at: at,
        })
        .await
        .map_err(|e| format!("course: {e}"))?;
    for student in [STUDENT, OTHER_STUDENT] {
        store
            .enroll(&Enrollment {
                course_id: COURSE.into(),
                user_id: student.into(),
                enrolled_by: TEACHER.into(),
                enrolled_at: at,
            })
            .await
            .map_err(|e| format!("enrollment: {e}"))?;
    }
    for (id, title) in [
        (STREAM_LIVE, "Ownership and borrowing"),
        (STREAM_SCHEDULED, "Lifetimes"),
        (STREAM_TO_CANCEL, "Traits (to cancel)"),
        (STREAM_TO_STOP, "Iterators (to stop)"),
        (STREAM_VIDEO, "Closures (goes live from its encoder)"),
    ] {
        store
            .create_stream(&stream(id, title))
            .await
            .map_err(|e| format!("stream: {e}"))?;
    }
    // A channel as the video service would have made it; the samples' events name it.
    let channel = Channel {
        arn: VIDEO_CHANNEL.into(),
        ingest_url: "rtmp://127.0.0.1:1935/app/".into(),
        playback_url: "http://127.0.0.1:3000/video/SampleChan01/index.m3u8".into(),
        stream_key: "sk_us-east-1_SampleKeyOfTheSeededVideoStream".into(),
        stream_key_arn: "arn:aws:ivs:us-east-1:000000000000:stream-key/SampleKey001".into(),
    };
    store
        .set_channel(STREAM_VIDEO, &channel, at)
        .await
        .map_err(|e| format!("channel: {e}"))?;
    for id in [STREAM_LIVE, STREAM_TO_STOP] {
        service::streams::start(store, &teacher, id)
            .await
            .map_err(fail("start"))?;
    }
    for student in [STUDENT, OTHER_STUDENT] {
        service::participation::join(store, &person(student, Role::Student), STREAM_LIVE)
            .await
            .map_err(fail("join"))?;
    }
    // Message 1 for `pin-chat-message`, 2 for `hide-chat-message`.
    for student in [STUDENT, OTHER_STUDENT] {
        service::chat::send(
            store,
            &person(student, Role::Student),
            STREAM_LIVE,
            SendMessageInput {
                message: "Hello from the seed".into(),
                message_type: None,
            },
        )
        .await
        .map_err(fail("chat"))?;
    }
    for (id, status) in [
        (QUESTION_OPEN, QuestionStatus::Open),
        (QUESTION_PENDING, QuestionStatus::Pending),
        (QUESTION_DISMISSED, QuestionStatus::Dismissed),
        (QUESTION_TO_DISMISS, QuestionStatus::Open),
        (QUESTION_TO_HIDE, QuestionStatus::Open),
    ] {
        store
            .ask(&question(id, status))
            .await
            .map_err(|e| format!("question: {e}"))?;
    }
    let auth =
        Authenticator::hs256(jwt_secret.as_bytes(), None, None).map_err(|e| e.to_string())?;
    let token = dev_token(jwt_secret, STUDENT, Role::Student, STUDENT, 24);
    service::connections::connect(store, &auth, CONNECTION, Some(&token), Some(STREAM_LIVE))
        .await
        .map_err(fail("connection"))?;
    Ok(())
}
