//! Rights on open sockets: a stream turning private, a stream ending, connections
//! that died without saying goodbye.

use livestream::auth::Role;
use livestream::model::Session;
use livestream::service::{chat, courses, presence, streams, sweep};
use livestream::testing::identity;

use crate::helpers::{Harness, types};

/// A live public stream of `teacher-1`'s course, in which `enrolled` is enrolled.
async fn live_public_class_with_an_enrolled_student(
    h: &Harness,
) -> (livestream::model::Stream, livestream::auth::Identity) {
    let stream = h.stream(true).await;
    let teacher = identity("teacher-1", Role::Teacher);
    let input = serde_json::from_value(serde_json::json!({ "user_id": "enrolled" })).unwrap();
    courses::enroll(h.store(), &teacher, &stream.course_id, input)
        .await
        .unwrap();
    (stream, teacher)
}

#[tokio::test]
async fn turning_private_closes_outsiders_and_sends_them_nothing_more() {
    let mut h = Harness::start().await;
    let (stream, teacher) = live_public_class_with_an_enrolled_student(&h).await;
    h.connect("in", "enrolled", Role::Student, &stream).await;
    h.connect("out", "outsider", Role::Student, &stream).await;
    h.connect("t1", "teacher-1", Role::Teacher, &stream).await;
    // An outsider who only joined over HTTP.
    let http_outsider = identity("http-outsider", Role::Student);
    presence::enter(h.store(), &http_outsider, &stream, &Session::Http)
        .await
        .unwrap();
    h.broadcast().await;
    assert_eq!(h.viewer_count(&stream).await, 3);
    h.management.clear();

    let private = serde_json::from_value(serde_json::json!({ "is_public": false })).unwrap();
    streams::update(h.store(), None, &teacher, &stream.id, private)
        .await
        .unwrap();
    // Written after the change committed, in the same batch as the change.
    let input = serde_json::from_value(serde_json::json!({ "message": "private now" })).unwrap();
    chat::send(h.store(), &teacher, &stream.id, input)
        .await
        .unwrap();
    let (response, _) = h.broadcast().await;
    assert!(response.batch_item_failures.is_empty());

    assert!(h.management.was_closed("out"));
    assert!(
        h.management.events("out").is_empty(),
        "{:?}",
        h.management.events("out")
    );
    assert!(h.store().connection("out").await.unwrap().is_none());
    let enrolled = h.store().connection("in").await.unwrap().unwrap();
    assert!(
        enrolled.private_ok,
        "admitted when the stream turned private"
    );
    for allowed in ["in", "t1"] {
        assert!(!h.management.was_closed(allowed), "{allowed}");
        let events = types(&h.management.events(allowed));
        assert!(
            events.contains(&"chat.message".to_string()),
            "{allowed}: {events:?}"
        );
    }
    let outsider = h
        .store()
        .participant(&stream.id, "outsider")
        .await
        .unwrap()
        .unwrap();
    assert!(!outsider.is_watching);
    let http = h
        .store()
        .participant(&stream.id, "http-outsider")
        .await
        .unwrap()
        .unwrap();
    assert!(!http.is_watching);
    assert_eq!(
        h.viewer_count(&stream).await,
        1,
        "only the enrolled student"
    );
    // Their HTTP reads are refused too.
    let outsider = identity("outsider", Role::Student);
    let err = chat::list(h.store(), &outsider, &stream.id, 0, Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "stream_private");
}

#[tokio::test]
async fn connections_that_died_without_disconnect_are_swept() {
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    h.connect("alive", "s1", Role::Student, &stream).await;
    h.connect("dead", "s2", Role::Student, &stream).await;
    h.broadcast().await;
    assert_eq!(h.viewer_count(&stream).await, 2);
    h.management.mark_gone("dead");

    // Not checked again until they have been quiet for the check interval.
    let now = livestream::model::now();
    let report = sweep::run(h.store(), &h.state.connections, None, now)
        .await
        .unwrap();
    assert_eq!(report.connections_gone, 0);
    let later = now
        + chrono::Duration::seconds(
            livestream::service::connections::CONNECTION_CHECK_AFTER_SECS + 1,
        );
    let report = sweep::run(h.store(), &h.state.connections, None, later)
        .await
        .unwrap();
    assert_eq!(report.connections_gone, 1);
    assert_eq!(h.viewer_count(&stream).await, 1);
    assert!(h.store().connection("dead").await.unwrap().is_none());
    assert!(h.store().connection("alive").await.unwrap().is_some());
    // The live one was marked alive: the same sweep again finds nothing to check.
    let report = sweep::run(h.store(), &h.state.connections, None, later)
        .await
        .unwrap();
    assert_eq!(report, Default::default());
}

#[tokio::test]
async fn a_socket_whose_write_landed_after_the_turn_to_private_is_admitted_or_closed() {
    let mut h = Harness::start().await;
    let (stream, teacher) = live_public_class_with_an_enrolled_student(&h).await;
    h.connect("t1", "teacher-1", Role::Teacher, &stream).await;
    let private = serde_json::from_value(serde_json::json!({ "is_public": false })).unwrap();
    streams::update(h.store(), None, &teacher, &stream.id, private)
        .await
        .unwrap();
    h.broadcast().await;

    // Two `$connect`s that read the stream while it was public, whose writes land
    // only now, after the broadcaster handled the change.
    for (connection_id, user_id) in [("late-in", "enrolled"), ("late-out", "outsider")] {
        let connection = livestream::model::Connection {
            connection_id: connection_id.into(),
            stream_id: stream.id.clone(),
            user_id: user_id.into(),
            role: Role::Student,
            display_name: user_id.into(),
            is_staff: false,
            connected_at: livestream::model::now(),
            private_ok: false,
            ttl: i64::MAX,
        };
        h.store().put_connection(&connection).await.unwrap();
    }
    h.management.clear();
    let input = serde_json::from_value(serde_json::json!({ "message": "still here?" })).unwrap();
    chat::send(h.store(), &teacher, &stream.id, input)
        .await
        .unwrap();
    let (response, _) = h.broadcast().await;
    assert!(response.batch_item_failures.is_empty());

    for allowed in ["late-in", "t1"] {
        let events = types(&h.management.events(allowed));
        assert!(
            events.contains(&"chat.message".to_string()),
            "{allowed}: {events:?}"
        );
    }
    let late_in = h.store().connection("late-in").await.unwrap().unwrap();
    assert!(late_in.private_ok);
    assert!(h.management.was_closed("late-out"));
    assert!(
        h.management.events("late-out").is_empty(),
        "{:?}",
        h.management.events("late-out")
    );
    assert!(h.store().connection("late-out").await.unwrap().is_none());
}
