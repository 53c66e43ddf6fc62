//! The replay read against the embedded DynamoDB: a recorded class's chat and questions
//! come back by their offset into the recording, paged without loss or repeat, with
//! what students may not see left out.

use chrono::{DateTime, Utc};
use livestream::auth::{Identity, Role};
use livestream::model::chat::SendMessageInput;
use livestream::model::question::{AnswerInput, AskInput};
use livestream::model::recording::{Recording, RecordingState};
use livestream::model::{ChatMessage, Course, Session, Stream, new_id, now};
use livestream::service::replay::{self, ReplayPage, ReplayQuery};
use livestream::service::{chat, presence, questions, streams};
use livestream::store::Store;
use livestream::testing::{TEACHER, TestEnv, identity};
use serde_json::Value;

fn teacher() -> Identity {
    identity(TEACHER, Role::Teacher)
}

/// A live, recorded class of a new course whose recording started `lead_ms` after the
/// class went live, with `students` enrolled and joined.
async fn recorded_class(
    store: &Store,
    public: bool,
    lead_ms: i64,
    students: &[&Identity],
) -> Stream {
    let course = Course {
        id: new_id(),
        title: "Course".into(),
        description: String::new(),
        teacher_id: TEACHER.into(),
        created_at: now(),
    };
    store.create_course(&course).await.unwrap();
    for student in students {
        livestream::service::courses::enroll(
            store,
            &teacher(),
            &course.id,
            serde_json::from_value(serde_json::json!({ "user_id": student.user_id })).unwrap(),
        )
        .await
        .unwrap();
    }
    let input = serde_json::from_value(serde_json::json!({
        "title": "Recorded lecture",
        "course_id": course.id,
        "is_public": public,
        "is_recording": true,
    }))
    .unwrap();
    let stream = streams::create(store, None, &teacher(), input)
        .await
        .unwrap();
    let stream = streams::start(store, &teacher(), &stream.id).await.unwrap();
    let started = stream.started_at.unwrap();
    let recording = Recording {
        state: RecordingState::Recording,
        session_id: "st-test".into(),
        bucket: "recordings".into(),
        key_prefix: format!("ivs/v1/000000000000/{}", stream.id),
        started_at: Some(started + chrono::TimeDelta::milliseconds(lead_ms)),
        ended_at: None,
        duration_ms: None,
        failure_reason: None,
        event_ms: started.timestamp_millis(),
    };
    let stream = store
        .replace_recording(&stream.id, &recording, None)
        .await
        .unwrap();
    for student in students {
        presence::enter(store, student, &stream, &Session::Http)
            .await
            .unwrap();
    }
    stream
}

fn origin(stream: &Stream) -> DateTime<Utc> {
    replay::replay_origin(stream).unwrap()
}

async fn say(store: &Store, who: &Identity, stream: &Stream, text: &str) -> ChatMessage {
    let input = SendMessageInput {
        message: text.into(),
        message_type: None,
    };
    let sent = chat::send(store, who, &stream.id, input).await.unwrap();
    // Messages a few milliseconds apart: distinct, known offsets.
    tokio::time::sleep(std::time::Duration::from_millis(7)).await;
    sent
}

fn query(
    from: Option<i64>,
    to: Option<i64>,
    limit: Option<i32>,
    cursor: Option<&str>,
) -> ReplayQuery {
    ReplayQuery::parse(
        from.map(|f| f.to_string()).as_deref(),
        to.map(|t| t.to_string()).as_deref(),
        limit.map(|l| l.to_string()).as_deref(),
        cursor,
    )
    .unwrap()
}

/// Every page of a range, following the cursors.
async fn read_all(
    store: &Store,
    who: &Identity,
    stream: &Stream,
    from: Option<i64>,
    to: Option<i64>,
    limit: i32,
) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page: ReplayPage = replay::read(
            store,
            who,
            &stream.id,
            query(from, to, Some(limit), cursor.as_deref()),
        )
        .await
        .unwrap();
        pages += 1;
        assert!(page.items.len() <= limit as usize);
        items.extend(page.items.iter().map(|e| serde_json::to_value(e).unwrap()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (items, pages),
        }
        assert!(pages < 1000, "paging does not end");
    }
}

fn offset_of(at: DateTime<Utc>, stream: &Stream) -> i64 {
    (at - origin(stream)).num_milliseconds()
}

/// `(type, offset_ms, chat seq or question id)` of each event.
fn summary(items: &[Value]) -> Vec<(String, i64, String)> {
    items
        .iter()
        .map(|e| {
            let id = match e["type"].as_str().unwrap() {
                "chat" => e["message"]["seq"].to_string(),
                _ => e["question"]["id"].as_str().unwrap().to_string(),
            };
            (
                e["type"].as_str().unwrap().to_string(),
                e["offset_ms"].as_i64().unwrap(),
                id,
            )
        })
        .collect()
}

#[tokio::test]
async fn messages_come_back_at_their_offset_into_the_recording_and_ranges_select_them() {
    let env = TestEnv::start().await;
    let store = env.store();
    let s1 = identity("s1", Role::Student);
    let stream = recorded_class(store, true, 0, &[&s1]).await;
    let mut sent = Vec::new();
    for i in 0..8 {
        sent.push(say(store, &s1, &stream, &format!("message {i}")).await);
    }
    let (all, _) = read_all(store, &s1, &stream, None, None, 100).await;
    let expected: Vec<(String, i64, String)> = sent
        .iter()
        .map(|m| {
            (
                "chat".into(),
                offset_of(m.created_at, &stream),
                m.seq.to_string(),
            )
        })
        .collect();
    assert_eq!(summary(&all), expected);
    assert_eq!(all[3]["message"]["message"], "message 3");
    assert!(expected.windows(2).all(|w| w[0].1 < w[1].1), "{expected:?}");

    // A range is inclusive at both ends: from the 3rd message's offset to the 6th's.
    let (from, to) = (expected[2].1, expected[5].1);
    let (range, _) = read_all(store, &s1, &stream, Some(from), Some(to), 100).await;
    assert_eq!(summary(&range), expected[2..=5].to_vec());
    // One millisecond inside each end leaves those two out.
    let (inner, _) = read_all(store, &s1, &stream, Some(from + 1), Some(to - 1), 100).await;
    assert_eq!(summary(&inner), expected[3..=4].to_vec());
}

#[tokio::test]
async fn what_came_before_the_recording_started_is_at_offset_zero() {
    let env = TestEnv::start().await;
    let store = env.store();
    let s1 = identity("s1", Role::Student);
    // The recording starts a minute after the class went live.
    let stream = recorded_class(store, true, 60_000, &[&s1]).await;
    let early = say(store, &s1, &stream, "before the video").await;
    assert!(early.created_at < origin(&stream));
    let (all, _) = read_all(store, &s1, &stream, Some(0), Some(10), 100).await;
    assert_eq!(
        summary(&all),
        vec![("chat".into(), 0, early.seq.to_string())]
    );
    let (later, _) = read_all(store, &s1, &stream, Some(1), None, 100).await;
    assert!(later.is_empty());
}

#[tokio::test]
async fn pages_cover_every_event_once_in_order() {
    let env = TestEnv::start().await;
    let store = env.store();
    let (s1, s2) = (identity("s1", Role::Student), identity("s2", Role::Student));
    let stream = recorded_class(store, true, 0, &[&s1, &s2]).await;
    let ask = |who: Identity, text: &str| {
        let input = AskInput {
            text: text.into(),
            anonymous: None,
        };
        let stream_id = stream.id.clone();
        async move {
            let asked = questions::ask(store, &who, &stream_id, input)
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            asked["id"].as_str().unwrap().to_string()
        }
    };
    let mut question_ids = Vec::new();
    for i in 0..23 {
        let who = if i % 2 == 0 { &s1 } else { &s2 };
        say(store, who, &stream, &format!("m{i}")).await;
        if i % 5 == 0 {
            question_ids.push(ask(who.clone(), &format!("question {i}?")).await);
        }
    }
    // Two answers, later in the class: each is an event of its own.
    for id in &question_ids[..2] {
        let answer = AnswerInput {
            answer: "Because.".into(),
        };
        questions::answer(store, &teacher(), &stream.id, id, answer)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The question being answered now, highlighted later still.
    questions::highlight(store, &teacher(), &stream.id, &question_ids[2])
        .await
        .unwrap();
    let (whole, pages) = read_all(store, &s1, &stream, None, None, 500).await;
    assert_eq!(pages, 1);
    let counted = |kind: &str| whole.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(
        (
            counted("chat"),
            counted("question"),
            counted("answer"),
            counted("highlight")
        ),
        (23, 5, 2, 1)
    );
    let highlighted = whole.last().unwrap();
    assert_eq!(highlighted["type"], "highlight");
    assert_eq!(highlighted["question"]["id"], question_ids[2].as_str());
    let offsets: Vec<i64> = summary(&whole).iter().map(|e| e.1).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    for limit in [1, 2, 3, 7] {
        let (paged, pages) = read_all(store, &s1, &stream, None, None, limit).await;
        assert_eq!(summary(&paged), summary(&whole), "limit {limit}");
        assert!(
            pages >= whole.len() / limit as usize,
            "limit {limit}: {pages} pages"
        );
    }
    // An answer event carries the answer, at the time it was given.
    let answered = whole.iter().find(|e| e["type"] == "answer").unwrap();
    assert_eq!(answered["question"]["answer"], "Because.");
    let at: DateTime<Utc> = answered["question"]["answered_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(answered["offset_ms"], offset_of(at, &stream));
}

#[tokio::test]
async fn hidden_messages_and_questions_are_left_out_for_students_only() {
    let env = TestEnv::start().await;
    let store = env.store();
    let s1 = identity("s1", Role::Student);
    let stream = recorded_class(store, true, 0, &[&s1]).await;
    let kept = say(store, &s1, &stream, "fine").await;
    let rude = say(store, &s1, &stream, "rude").await;
    let asked = questions::ask(
        store,
        &s1,
        &stream.id,
        AskInput {
            text: "off topic?".into(),
            anonymous: None,
        },
    )
    .await
    .unwrap();
    let question_id = asked["id"].as_str().unwrap();
    chat::hide(store, &teacher(), &stream.id, &rude.seq.to_string())
        .await
        .unwrap();
    questions::hide(store, &teacher(), &stream.id, question_id)
        .await
        .unwrap();

    let (student_view, _) = read_all(store, &s1, &stream, None, None, 100).await;
    assert_eq!(
        summary(&student_view),
        vec![(
            "chat".into(),
            offset_of(kept.created_at, &stream),
            kept.seq.to_string()
        )]
    );
    assert!(
        !serde_json::to_string(&student_view)
            .unwrap()
            .contains("rude")
    );

    let (teacher_view, _) = read_all(store, &teacher(), &stream, None, None, 100).await;
    assert_eq!(teacher_view.len(), 3);
    assert_eq!(teacher_view[1]["message"]["hidden"], true);
    assert_eq!(teacher_view[2]["type"], "question");
    assert_eq!(teacher_view[2]["question"]["hidden"], true);

    // The same page boundaries for students: a page of only hidden messages still
    // leads on to what follows.
    let (paged, _) = read_all(store, &s1, &stream, None, None, 1).await;
    assert_eq!(summary(&paged), summary(&student_view));
}

#[tokio::test]
async fn bad_ranges_and_cursors_are_refused_with_the_field_at_fault() {
    for (from, to, limit, field) in [
        (Some("-1"), None, None, "from_ms"),
        (Some("abc"), None, None, "from_ms"),
        (None, Some("1.5"), None, "to_ms"),
        (Some("500"), Some("499"), None, "to_ms"),
        (None, None, Some("0"), "limit"),
        (None, None, Some("501"), "limit"),
    ] {
        let err = ReplayQuery::parse(from, to, limit, None).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.code(), "validation_failed");
        assert_eq!(
            err.body()["error"]["details"][0]["field"],
            field,
            "{from:?} {to:?} {limit:?}"
        );
    }
    let both = ReplayQuery::parse(Some("-5"), Some("x"), None, None).unwrap_err();
    assert_eq!(both.body()["error"]["details"].as_array().unwrap().len(), 2);
    for cursor in [
        "not base64 !",
        "e30",
        "eyJhdCI6MSwia2luZCI6ImNoYXQiLCJpZCI6IngifQ",
    ] {
        let err = ReplayQuery::parse(None, None, None, Some(cursor)).unwrap_err();
        assert_eq!(err.code(), "invalid_cursor", "{cursor}");
    }
    assert!(ReplayQuery::parse(Some("0"), Some("0"), Some("500"), None).is_ok());
}

#[tokio::test]
async fn a_private_class_replays_only_for_its_course_and_a_class_never_live_has_none() {
    let env = TestEnv::start().await;
    let store = env.store();
    let s1 = identity("s1", Role::Student);
    let stream = recorded_class(store, false, 0, &[&s1]).await;
    say(store, &s1, &stream, "members only").await;
    let (enrolled, _) = read_all(store, &s1, &stream, None, None, 100).await;
    assert_eq!(enrolled.len(), 1);
    let outsider = identity("outsider", Role::Student);
    let err = replay::read(store, &outsider, &stream.id, query(None, None, None, None))
        .await
        .unwrap_err();
    assert_eq!((err.status().as_u16(), err.code()), (403, "stream_private"));

    let scheduled = livestream::testing::teacher_stream(store, false, true).await;
    let err = replay::read(store, &s1, &scheduled.id, query(None, None, None, None))
        .await
        .unwrap_err();
    assert_eq!((err.status().as_u16(), err.code()), (409, "no_replay"));
}

#[tokio::test]
async fn the_replay_stays_after_the_class_ends() {
    let env = TestEnv::start().await;
    let store = env.store();
    let s1 = identity("s1", Role::Student);
    let stream = recorded_class(store, true, 0, &[&s1]).await;
    let sent = say(store, &s1, &stream, "see you").await;
    streams::stop(store, None, &teacher(), &stream.id)
        .await
        .unwrap();
    let (after, _) = read_all(store, &s1, &stream, None, None, 100).await;
    assert_eq!(
        summary(&after),
        vec![(
            "chat".into(),
            offset_of(sent.created_at, &stream),
            sent.seq.to_string()
        )]
    );
}
