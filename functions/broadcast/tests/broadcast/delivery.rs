use livestream::auth::Role;
use livestream::service::streams;
use livestream::testing::identity;

use crate::helpers::{Harness, question_events, types};

#[tokio::test]
async fn viewer_counts_reach_every_connection_of_the_stream_once_and_no_other_stream() {
    let mut h = Harness::start().await;
    let a = h.stream(true).await;
    let b = h.stream(true).await;
    h.broadcast().await;
    h.connect("a1", "s1", Role::Student, &a).await;
    h.connect("a2", "s2", Role::Student, &a).await;
    h.connect("b1", "s3", Role::Student, &b).await;
    let (response, _) = h.broadcast().await;
    assert!(response.batch_item_failures.is_empty());

    for id in ["a1", "a2"] {
        let events = h.management.events(id);
        assert_eq!(
            types(&events),
            ["viewers.updated"],
            "{id}: coalesced to one per stream"
        );
        assert_eq!(events[0]["stream_id"], a.id.as_str());
        assert_eq!(events[0]["data"]["viewer_count"], 2);
        assert_eq!(events[0]["data"]["max_viewers"], 2);
    }
    let events = h.management.events("b1");
    assert_eq!(types(&events), ["viewers.updated"]);
    assert_eq!(events[0]["stream_id"], b.id.as_str());
    assert_eq!(events[0]["data"]["viewer_count"], 1);
}

#[tokio::test]
async fn status_changes_are_broadcast_and_waiting_viewers_start_counting() {
    let mut h = Harness::start().await;
    let stream = h.stream(false).await;
    h.connect("c1", "s1", Role::Student, &stream).await;
    h.connect("t1", "teacher-1", Role::Teacher, &stream).await;
    h.broadcast().await;
    assert_eq!(h.viewer_count(&stream).await, 0);

    let teacher = identity("teacher-1", Role::Teacher);
    streams::start(h.store(), &teacher, &stream.id)
        .await
        .unwrap();
    h.broadcast().await;
    assert_eq!(
        h.viewer_count(&stream).await,
        1,
        "the waiting student now counts"
    );
    for id in ["c1", "t1"] {
        let events = h.management.events(id);
        assert_eq!(types(&events), ["stream.status"], "{id}");
        assert_eq!(events[0]["data"]["status"], "live");
    }
    h.broadcast().await;
    assert_eq!(
        types(&h.management.events("c1")),
        ["stream.status", "viewers.updated"]
    );

    streams::stop(h.store(), None, &teacher, &stream.id)
        .await
        .unwrap();
    h.broadcast().await;
    let events = h.management.events("c1");
    let last = events
        .iter()
        .rev()
        .find(|e| e["type"] == "stream.status")
        .unwrap();
    assert_eq!(last["data"]["status"], "ended");
    assert!(last["data"]["duration"].is_number());
    assert_eq!(
        events.last().unwrap()["data"]["viewer_count"],
        0,
        "nobody watches an ended stream"
    );
    // After the last events, the server closes the stream's sockets.
    for id in ["c1", "t1"] {
        assert!(h.management.was_closed(id), "{id}");
        assert!(h.store().connection(id).await.unwrap().is_none(), "{id}");
    }
}

#[tokio::test]
async fn no_event_carries_the_stream_key() {
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    h.connect("c1", "s1", Role::Student, &stream).await;
    let teacher = identity("teacher-1", Role::Teacher);
    let input = serde_json::from_value(serde_json::json!({"title": "Renamed"})).unwrap();
    streams::update(h.store(), None, &teacher, &stream.id, input)
        .await
        .unwrap();
    streams::stop(h.store(), None, &teacher, &stream.id)
        .await
        .unwrap();
    h.broadcast().await;
    let events = h.management.events("c1");
    assert!(types(&events).contains(&"stream.updated".to_string()));
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&stream.stream_key));
    assert!(!text.contains("stream_key"));
}

#[tokio::test]
async fn a_batch_goes_to_each_connection_as_one_frame() {
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    h.connect("c1", "s1", Role::Student, &stream).await;
    h.broadcast().await;
    h.management.clear();
    let teacher = identity("teacher-1", Role::Teacher);
    for i in 0..5 {
        let input =
            serde_json::from_value(serde_json::json!({"title": format!("Title {i}")})).unwrap();
        streams::update(h.store(), None, &teacher, &stream.id, input)
            .await
            .unwrap();
    }
    let (_, report) = h.broadcast().await;
    assert_eq!(report.events, 5);
    assert_eq!(h.management.post_count(), 1);
    let frames = h.management.frames("c1");
    let events = frames[0].as_array().unwrap();
    let titles: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["title"].as_str().unwrap())
        .collect();
    let sequences: Vec<u128> = events
        .iter()
        .map(|e| e["sequence"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers grow: {sequences:?}"
    );
    assert_eq!(
        titles,
        ["Title 0", "Title 1", "Title 2", "Title 3", "Title 4"],
        "in order"
    );
}

#[tokio::test]
async fn gone_connections_are_pruned_and_their_presence_ends() {
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    h.connect("c1", "s1", Role::Student, &stream).await;
    h.connect("c2", "s2", Role::Student, &stream).await;
    h.management.mark_gone("c2");
    let (response, report) = h.broadcast().await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.pruned, 1);
    assert!(h.store().connection("c2").await.unwrap().is_none());
    assert!(h.store().connection("c1").await.unwrap().is_some());
    assert_eq!(h.viewer_count(&stream).await, 1);
    // The pruning itself changes the count, which the survivors then hear about.
    h.broadcast().await;
    let last = h.management.events("c1").pop().unwrap();
    assert_eq!(last["data"]["viewer_count"], 1);
}

#[tokio::test]
async fn connections_removed_by_ttl_end_their_presence() {
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    h.connect("c1", "s1", Role::Student, &stream).await;
    let mut connection = h.store().connection("c1").await.unwrap().unwrap();
    assert_eq!(h.viewer_count(&stream).await, 1);
    // Its $disconnect never came and its TTL has passed.
    h.store().delete_connection("c1").await.unwrap();
    connection.ttl = chrono::Utc::now().timestamp() - 10;
    h.store().put_connection(&connection).await.unwrap();
    h.broadcast().await;
    let swept = h.env.dynamo.db.sweep_ttl().unwrap();
    assert_eq!(swept, 1);
    let (response, _) = h.broadcast().await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.viewer_count(&stream).await, 0);
}

#[tokio::test]
async fn failures_are_reported_per_record_not_for_the_whole_batch() {
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    h.connect("c1", "s1", Role::Student, &stream).await;
    let event = h.records().await;
    let sequences: Vec<String> = event
        .records
        .iter()
        .filter_map(|r| r.change.sequence_number.clone())
        .collect();
    // A broadcaster whose table is unreachable cannot list connections.
    let broken = livestream_broadcast::BroadcastState::new(
        livestream::store::Store::new(h.store().client().clone(), "no-such-table"),
        h.management.connections(),
    );
    let (response, _) = livestream_broadcast::handle_batch(&broken, event).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let failed = response.batch_item_failures[0]
        .item_identifier
        .clone()
        .unwrap();
    assert!(sequences.contains(&failed), "names a record of the batch");
    assert_eq!(h.management.post_count(), 0);
}

#[tokio::test]
async fn chat_messages_and_hides_reach_the_stream_in_order_without_hidden_text() {
    use livestream::model::Session;
    use livestream::service::{chat, presence};
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    let other = h.stream(true).await;
    h.connect("c1", "s1", Role::Student, &stream).await;
    h.connect("t1", "teacher-1", Role::Teacher, &stream).await;
    h.connect("o1", "s9", Role::Student, &other).await;
    h.broadcast().await;
    h.management.clear();
    let s2 = identity("s2", Role::Student);
    presence::enter(h.store(), &s2, &stream, &Session::Http)
        .await
        .unwrap();
    for text in ["first", "rude words", "third"] {
        let input = serde_json::from_value(serde_json::json!({ "message": text })).unwrap();
        chat::send(h.store(), &s2, &stream.id, input).await.unwrap();
    }
    let teacher = identity("teacher-1", Role::Teacher);
    chat::hide(h.store(), &teacher, &stream.id, "2")
        .await
        .unwrap();
    let (response, _) = h.broadcast().await;
    assert!(response.batch_item_failures.is_empty());

    for id in ["c1", "t1"] {
        let events = h.management.events(id);
        let chat: Vec<_> = events
            .iter()
            .filter(|e| e["type"].as_str().unwrap().starts_with("chat."))
            .collect();
        let seqs: Vec<(String, i64)> = chat
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_string(),
                    e["data"]["seq"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seqs,
            [
                ("chat.message".into(), 1),
                ("chat.message".into(), 2),
                ("chat.message".into(), 3),
                ("chat.hidden".into(), 2)
            ],
            "{id}"
        );
        assert!(
            !chat[3].to_string().contains("rude"),
            "a hide event never carries the text"
        );
    }
    assert!(
        h.management.events("o1").is_empty(),
        "another stream's connection hears nothing"
    );
}

#[tokio::test]
async fn questions_reach_each_audience_with_the_right_view() {
    use livestream::model::Session;
    use livestream::service::{presence, questions};
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    h.connect("t1", "teacher-1", Role::Teacher, &stream).await;
    h.connect("a1", "asker", Role::Student, &stream).await;
    h.connect("o1", "other", Role::Student, &stream).await;
    h.broadcast().await;
    h.management.clear();
    let asker = identity("asker", Role::Student);
    presence::enter(h.store(), &asker, &stream, &Session::Http)
        .await
        .unwrap();
    let input =
        serde_json::from_value(serde_json::json!({"text": "a shy question", "anonymous": true}))
            .unwrap();
    let asked = questions::ask(h.store(), &asker, &stream.id, input)
        .await
        .unwrap();
    let qid = asked["id"].as_str().unwrap().to_string();
    let voter = identity("other", Role::Student);
    for _ in 0..3 {
        questions::upvote(h.store(), &voter, &stream.id, &qid)
            .await
            .unwrap();
        questions::remove_upvote(h.store(), &voter, &stream.id, &qid)
            .await
            .unwrap();
    }
    questions::upvote(h.store(), &voter, &stream.id, &qid)
        .await
        .unwrap();
    h.broadcast().await;

    let teacher_view = question_events(&h, "t1");
    assert_eq!(
        types(&teacher_view),
        ["question.created", "question.updated"],
        "updates coalesced per question"
    );
    assert_eq!(teacher_view[0]["data"]["user_id"], "asker");
    assert_eq!(teacher_view[1]["data"]["upvotes"], 1);
    let other_view = question_events(&h, "o1");
    assert_eq!(types(&other_view), ["question.created", "question.updated"]);
    assert!(other_view.iter().all(|e| e["data"]["user_id"].is_null()));
    assert!(
        !serde_json::to_string(&other_view)
            .unwrap()
            .contains("asker")
    );

    // Hidden: students get only the fact, moderators the question.
    h.management.clear();
    let teacher = identity("teacher-1", Role::Teacher);
    questions::hide(h.store(), &teacher, &stream.id, &qid)
        .await
        .unwrap();
    h.broadcast().await;
    let other_view = question_events(&h, "o1");
    assert_eq!(other_view.len(), 1);
    assert_eq!(other_view[0]["data"]["hidden"], true);
    assert!(other_view[0]["data"].get("text").is_none());
    assert_eq!(
        question_events(&h, "t1")[0]["data"]["text"],
        "a shy question"
    );
}

#[tokio::test]
async fn pending_questions_go_only_to_moderators_and_the_asker() {
    use livestream::model::Session;
    use livestream::service::{participation, presence, questions};
    let mut h = Harness::start().await;
    let stream = h.stream(true).await;
    let teacher = identity("teacher-1", Role::Teacher);
    let settings =
        serde_json::from_value(serde_json::json!({"questions_require_approval": true})).unwrap();
    participation::update_settings(h.store(), &teacher, &stream.id, settings)
        .await
        .unwrap();
    h.connect("t1", "teacher-1", Role::Teacher, &stream).await;
    h.connect("a1", "asker", Role::Student, &stream).await;
    h.connect("o1", "other", Role::Student, &stream).await;
    h.connect("m1", "helper", Role::Student, &stream).await;
    let make_moderator = serde_json::from_value(serde_json::json!({"is_moderator": true})).unwrap();
    participation::update_permissions(h.store(), &teacher, &stream.id, "helper", make_moderator)
        .await
        .unwrap();
    let updated = h.store().stream(&stream.id).await.unwrap().unwrap();
    assert_eq!(updated.moderator_ids, ["helper"]);
    h.broadcast().await;
    h.management.clear();
    let asker = identity("asker", Role::Student);
    presence::enter(h.store(), &asker, &stream, &Session::Http)
        .await
        .unwrap();
    let input = serde_json::from_value(serde_json::json!({"text": "please approve"})).unwrap();
    let asked = questions::ask(h.store(), &asker, &stream.id, input)
        .await
        .unwrap();
    h.broadcast().await;
    assert_eq!(types(&question_events(&h, "t1")), ["question.created"]);
    assert_eq!(types(&question_events(&h, "a1")), ["question.created"]);
    assert_eq!(
        types(&question_events(&h, "m1")),
        ["question.created"],
        "a student moderator sees the queue"
    );
    assert!(question_events(&h, "o1").is_empty());
    h.management.clear();
    questions::approve(
        h.store(),
        &teacher,
        &stream.id,
        asked["id"].as_str().unwrap(),
    )
    .await
    .unwrap();
    h.broadcast().await;
    assert_eq!(types(&question_events(&h, "o1")), ["question.updated"]);
}
