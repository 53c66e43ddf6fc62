//! The attendance report against the embedded DynamoDB, after a class driven through the
//! real presence rules: a student in two tabs, a socket that dropped and was swept, an
//! HTTP-only viewer whose heartbeat lapsed, and an enrolled student who never came.

use std::time::Duration;

use chrono::{DateTime, Utc};
use livestream::auth::{Authenticator, Identity, Role};
use livestream::model::chat::SendMessageInput;
use livestream::model::question::{AnswerInput, AskInput};
use livestream::model::{Course, Participant, Session, Stream, new_id, now};
use livestream::service::attendance::{self, AttendanceReport, AttendanceRow};
use livestream::service::{chat, connections, courses, presence, questions, stats, streams, sweep};
use livestream::store::Store;
use livestream::testing::{RecordingManagementApi, TEACHER, TEST_SECRET, TestEnv, identity, token};

fn teacher() -> Identity {
    identity(TEACHER, Role::Teacher)
}

/// A live private class of a new course with these students enrolled.
async fn class_of(store: &Store, enrolled: &[&str]) -> Stream {
    let course = Course {
        id: new_id(),
        title: "Course".into(),
        description: String::new(),
        teacher_id: TEACHER.into(),
        created_at: now(),
    };
    store.create_course(&course).await.unwrap();
    for user_id in enrolled {
        let input = serde_json::from_value(serde_json::json!({ "user_id": user_id })).unwrap();
        courses::enroll(store, &teacher(), &course.id, input)
            .await
            .unwrap();
    }
    let input = serde_json::from_value(serde_json::json!({
        "title": "Attendance lecture",
        "course_id": course.id,
        "is_public": false,
    }))
    .unwrap();
    let stream = streams::create(store, None, &teacher(), input)
        .await
        .unwrap();
    streams::start(store, &teacher(), &stream.id).await.unwrap()
}

async fn connect(store: &Store, user: &str, connection_id: &str, stream: &Stream) {
    let auth = Authenticator::hs256(TEST_SECRET, None, None).unwrap();
    connections::connect(
        store,
        &auth,
        connection_id,
        Some(&token(user, Role::Student)),
        Some(&stream.id),
    )
    .await
    .unwrap();
}

async fn say(store: &Store, who: &Identity, stream: &Stream, text: &str) {
    let input = SendMessageInput {
        message: text.into(),
        message_type: None,
    };
    chat::send(store, who, &stream.id, input).await.unwrap();
}

fn row<'a>(report: &'a AttendanceReport, user_id: &str) -> &'a AttendanceRow {
    report
        .rows
        .iter()
        .find(|r| r.user_id == user_id)
        .unwrap_or_else(|| panic!("no row for {user_id}: {report:#?}"))
}

/// Whole seconds of one watching period, as the presence rules count it.
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds()
}

fn share(watch_time: i64, duration: i64) -> f64 {
    ((watch_time as f64 / duration as f64).min(1.0) * 10_000.0).round() / 10_000.0
}

async fn participant(store: &Store, stream: &Stream, user_id: &str) -> Participant {
    store
        .participant(&stream.id, user_id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn every_figure_of_a_class_with_tabs_dropped_sockets_and_lapsed_heartbeats_is_exact() {
    let env = TestEnv::start().await;
    let store = env.store();
    let sockets = RecordingManagementApi::start().await;
    let stream = class_of(store, &["s1", "s2", "s3", "s4"]).await;
    let (s1, s2) = (identity("s1", Role::Student), identity("s2", Role::Student));
    // s3 watches without a socket and calls itself something a spreadsheet would run.
    let s3 = Identity {
        display_name: "=HYPERLINK(\"http://x\",\"y\")".into(),
        ..identity("s3", Role::Student)
    };

    connect(store, "s1", "tab-1", &stream).await;
    connect(store, "s1", "tab-2", &stream).await;
    connect(store, "s2", "s2-socket", &stream).await;
    presence::enter(store, &s3, &stream, &Session::Http)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // One of s1's tabs closes: they still watch.
    connections::disconnect(store, "tab-1").await.unwrap();
    say(store, &s1, &stream, "first").await;
    say(store, &s1, &stream, "second").await;
    say(store, &s2, &stream, "hello").await;
    let announcement = SendMessageInput {
        message: "Break in five minutes".into(),
        message_type: Some("announcement".into()),
    };
    chat::send(store, &teacher(), &stream.id, announcement)
        .await
        .unwrap();
    let asked = questions::ask(
        store,
        &s3,
        &stream.id,
        AskInput {
            text: "Is this on the exam?".into(),
            anonymous: Some(true),
        },
    )
    .await
    .unwrap();
    let question_id = asked["id"].as_str().unwrap().to_string();
    for voter in [&s1, &s2] {
        questions::upvote(store, voter, &stream.id, &question_id)
            .await
            .unwrap();
    }
    let answer = AnswerInput {
        answer: "Yes.".into(),
    };
    questions::answer(store, &teacher(), &stream.id, &question_id, answer)
        .await
        .unwrap();

    // s2's socket dies without a $disconnect, and s3 stops sending heartbeats: the
    // sweeper, run as if minutes had passed, ends both.
    sockets.mark_gone("s2-socket");
    let later = now() + chrono::Duration::minutes(10);
    let report = sweep::run(store, &sockets.connections(), None, later)
        .await
        .unwrap();
    assert_eq!(
        (report.http_presences_ended, report.connections_gone),
        (1, 1)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // While the class is on: s1 is still watching.
    let live = attendance::report(store, &teacher(), &stream.id)
        .await
        .unwrap();
    let p1 = participant(store, &stream, "s1").await;
    assert!(p1.is_watching);
    let s1_live = row(&live, "s1");
    assert!(s1_live.is_watching && s1_live.left_at.is_none());
    assert_eq!(s1_live.watch_time, seconds(p1.joined_at, live.computed_at));
    assert!(s1_live.watch_time >= 2, "{s1_live:?}");
    assert_eq!(
        live.duration,
        seconds(stream.started_at.unwrap(), live.computed_at)
    );

    // The last tab closes; then the class ends.
    connections::disconnect(store, "tab-2").await.unwrap();
    let ended = streams::stop(store, None, &teacher(), &stream.id)
        .await
        .unwrap();
    let duration = ended.duration.unwrap();
    let report = attendance::report(store, &teacher(), &stream.id)
        .await
        .unwrap();
    assert_eq!(report.duration, duration);
    assert_eq!(report.ended_at, ended.ended_at);

    // Each of s1, s2 and s3 watched one period, from their first join to when the rules
    // ended it: the last tab, the sweep of the dead socket, the sweep of the heartbeat.
    for (user, messages, questions_asked, upvotes) in
        [("s1", 2, 0, 1), ("s2", 1, 0, 1), ("s3", 0, 1, 0)]
    {
        let p = participant(store, &stream, user).await;
        let left = p.left_at.unwrap();
        let r = row(&report, user);
        assert_eq!(r.joined_at, Some(p.joined_at), "{user}");
        assert_eq!(r.left_at, Some(left), "{user}");
        assert!(!r.is_watching, "{user}");
        assert_eq!(r.watch_time, seconds(p.joined_at, left), "{user}");
        assert!(r.watch_time >= 1, "{user}: {r:?}");
        assert_eq!(r.watched_share, share(r.watch_time, duration), "{user}");
        assert_eq!(
            (r.chat_messages_count, r.questions_count, r.upvotes_count),
            (messages, questions_asked, upvotes),
            "{user}"
        );
        assert!(r.enrolled && r.role == Role::Student, "{user}");
    }
    assert!(row(&report, "s1").watch_time > row(&report, "s2").watch_time);
    assert_eq!(
        row(&report, "s3").display_name.as_deref(),
        Some(s3.display_name.as_str())
    );

    // The instructor wrote without joining; s4 never came.
    let instructor = row(&report, TEACHER);
    assert_eq!(
        (
            instructor.role,
            instructor.joined_at,
            instructor.watch_time,
            instructor.chat_messages_count
        ),
        (Role::Teacher, None, 0, 1)
    );
    let absent = row(&report, "s4");
    assert_eq!(
        (
            absent.enrolled,
            absent.display_name.clone(),
            absent.joined_at,
            absent.watch_time,
            absent.watched_share,
            absent.chat_messages_count + absent.questions_count + absent.upvotes_count
        ),
        (true, None, None, 0, 0.0, 0)
    );
    assert_eq!(report.rows.len(), 5);

    // The totals are the statistics' figures.
    let figures = stats::get(store, &teacher(), &stream.id).await.unwrap();
    let totals = &report.totals;
    assert_eq!(totals.total_watch_time, figures.total_watch_time);
    assert_eq!(
        totals.total_watch_time,
        ["s1", "s2", "s3"]
            .iter()
            .map(|u| row(&report, u).watch_time)
            .sum::<i64>()
    );
    assert_eq!(
        (
            totals.chat_messages_count,
            totals.questions_count,
            totals.upvotes_count
        ),
        (
            figures.chat_messages_count,
            figures.questions_count,
            figures.upvotes_count
        )
    );
    assert_eq!(
        (
            totals.chat_messages_count,
            totals.questions_count,
            totals.upvotes_count
        ),
        (4, 1, 2)
    );
    assert_eq!(
        (totals.attended, totals.enrolled, totals.enrolled_absent),
        (3, 4, 1)
    );
    assert_eq!(totals.attended, figures.unique_viewers);

    // The same report later: the class is over, nothing moves.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = attendance::report(store, &teacher(), &stream.id)
        .await
        .unwrap();
    assert_eq!(again.rows, report.rows);
    assert_eq!(again.totals, report.totals);

    // The CSV reads back to the same figures.
    let csv_text = attendance::to_csv(&report).unwrap();
    assert!(csv_text.ends_with("\r\n"));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[0], "user_id");
    assert_eq!(header[7], "watch_time");
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), report.rows.len() + 1);
    for (record, r) in records.iter().zip(&report.rows) {
        let field = |name: &str| &record[header.iter().position(|h| h == name).unwrap()];
        assert_eq!(field("user_id"), r.user_id);
        assert_eq!(field("role"), r.role.as_str());
        assert_eq!(field("watch_time").parse::<i64>().unwrap(), r.watch_time);
        assert_eq!(
            field("watched_share").parse::<f64>().unwrap(),
            r.watched_share
        );
        assert_eq!(
            field("chat_messages_count").parse::<i64>().unwrap(),
            r.chat_messages_count
        );
        assert_eq!(
            field("questions_count").parse::<i64>().unwrap(),
            r.questions_count
        );
        assert_eq!(
            field("upvotes_count").parse::<i64>().unwrap(),
            r.upvotes_count
        );
        let joined = field("joined_at");
        assert_eq!(
            (!joined.is_empty()).then(|| joined.parse::<DateTime<Utc>>().unwrap()),
            r.joined_at
        );
    }
    let s3_record = records.iter().find(|r| &r[0] == "s3").unwrap();
    assert_eq!(
        &s3_record[1], "'=HYPERLINK(\"http://x\",\"y\")",
        "no formula runs"
    );
    let total = records.last().unwrap();
    assert_eq!(&total[0], "TOTAL");
    assert_eq!(total[7].parse::<i64>().unwrap(), figures.total_watch_time);
}

#[tokio::test]
async fn only_the_instructor_and_admins_see_the_attendance() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = class_of(store, &["s1"]).await;
    presence::enter(
        store,
        &identity("s1", Role::Student),
        &stream,
        &Session::Http,
    )
    .await
    .unwrap();
    for who in [
        identity("s1", Role::Student),
        identity("outsider", Role::Student),
        identity("teacher-2", Role::Teacher),
    ] {
        let err = attendance::report(store, &who, &stream.id)
            .await
            .unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (403, "not_stream_owner"),
            "{}",
            who.user_id
        );
    }
    let admin = attendance::report(store, &identity("admin-1", Role::Admin), &stream.id)
        .await
        .unwrap();
    assert_eq!(admin.totals.attended, 1);
    let missing = attendance::report(store, &teacher(), &new_id())
        .await
        .unwrap_err();
    assert_eq!(missing.status().as_u16(), 404);
}
