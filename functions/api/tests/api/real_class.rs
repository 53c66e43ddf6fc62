//! A real class, not a scripted one: everyone at once, a stop in the middle of it,
//! people who vanish, and input nobody should send.

use std::collections::BTreeSet;

use futures::future::join_all;
use http::StatusCode;
use livestream::model::{ChatMessage, MessageType, now};
use livestream::realtime::Connections;
use serde_json::{Value, json};

use crate::helpers::{TestApp, student, teacher};

/// A live public stream of `t1` with `students` joined over HTTP.
async fn class(app: &TestApp, students: usize) -> (String, String) {
    let t = teacher("t1");
    let (id, _) = app.live_stream(&t, json!({})).await;
    let joins = (0..students).map(|i| {
        let path = format!("/api/livestream/{id}/join");
        async move {
            app.post(&path, &student(&format!("s{i}")), json!({}))
                .await
                .status
        }
    });
    for status in join_all(joins).await {
        assert_eq!(status, StatusCode::OK);
    }
    (id, t)
}

fn seqs(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_whole_class_chatting_at_once_gets_no_errors_and_gap_free_numbers() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, 200).await;
    let path = format!("/api/livestream/{id}/chat");
    let sends = (0..200).map(|i| {
        let path = path.clone();
        let app = &app;
        async move {
            app.post(
                &path,
                &student(&format!("s{i}")),
                json!({"message": "1 if you can hear me"}),
            )
            .await
        }
    });
    let replies = join_all(sends).await;
    let mut numbers = BTreeSet::new();
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert!(numbers.insert(reply.body["seq"].as_i64().unwrap()));
    }
    assert_eq!(numbers, (1..=200).collect::<BTreeSet<i64>>());

    // Every acknowledged message is stored once, in number order, readable from any point.
    let mut read = Vec::new();
    let mut since = 0;
    loop {
        let page = app.get(&format!("{path}?since={since}&limit=70"), &t).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let got = seqs(&page.body);
        if got.is_empty() {
            break;
        }
        since = page.body["last_seq"].as_i64().unwrap();
        read.extend(got);
    }
    assert_eq!(read, (1..=200).collect::<Vec<i64>>());
    let middle = app.get(&format!("{path}?since=150&limit=100"), &t).await;
    assert_eq!(seqs(&middle.body), (151..=200).collect::<Vec<i64>>());
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert_eq!(stream.body["chat_messages_count"], 200);
}

#[tokio::test]
async fn one_student_sending_a_burst_gets_every_message_stored_once() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, 1).await;
    let path = format!("/api/livestream/{id}/chat");
    let sends = (0..60).map(|i| {
        let path = path.clone();
        let app = &app;
        async move {
            app.post(&path, &student("s0"), json!({"message": format!("m{i}")}))
                .await
        }
    });
    let replies = join_all(sends).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::CREATED));
    let listed = app.get(&format!("{path}?limit=100"), &t).await;
    assert_eq!(seqs(&listed.body), (1..=60).collect::<Vec<i64>>());
    let texts: BTreeSet<String> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), 60);
}

#[tokio::test]
async fn readers_wait_for_a_taken_number_and_give_it_up_when_its_writer_died() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, 1).await;
    let store = app.env.store();
    let path = format!("/api/livestream/{id}/chat");
    let first = app
        .post(&path, &student("s0"), json!({"message": "a"}))
        .await;
    assert_eq!(first.body["seq"], 1);

    // A writer takes number 2 and stalls; number 3 is written.
    let stalled = store.take_chat_seq(&id).await.unwrap().0;
    assert_eq!(stalled, 2);
    let third = app
        .post(&path, &student("s0"), json!({"message": "c"}))
        .await;
    assert_eq!(third.body["seq"], 3);

    // Readers hold at 1: a reader that moved on to 3 would never see 2.
    let page = app.get(&format!("{path}?since=0"), &t).await;
    assert_eq!(seqs(&page.body), vec![1]);
    assert_eq!(page.body["last_seq"], 1);

    // The stalled writer finishes: everything appears, in order.
    let message = |seq: i64, created_at| ChatMessage {
        id: livestream::model::new_id(),
        seq,
        stream_id: id.clone(),
        user_id: "s0".into(),
        display_name: "s0".into(),
        role: livestream::auth::Role::Student,
        message: format!("late {seq}"),
        message_type: MessageType::Text,
        created_at,
        hidden: false,
        hidden_by: None,
        hidden_at: None,
    };
    store.put_chat(&message(2, now())).await.unwrap();
    let page = app.get(&format!("{path}?since=0"), &t).await;
    assert_eq!(seqs(&page.body), vec![1, 2, 3]);

    // A writer that takes number 4 and dies: once a later message is older than the
    // grace period, readers give 4 up and move on.
    let dead = store.take_chat_seq(&id).await.unwrap().0;
    let later = store.take_chat_seq(&id).await.unwrap().0;
    let long_ago = now() - chrono::Duration::seconds(30);
    store.put_chat(&message(later, long_ago)).await.unwrap();
    let page = app.get(&format!("{path}?since=3"), &t).await;
    assert_eq!(seqs(&page.body), vec![later]);
    assert_eq!(page.body["last_seq"], later);
    // The dead writer coming back cannot write into the past any more.
    let err = store.put_chat(&message(dead, now())).await.unwrap_err();
    assert!(matches!(
        err,
        livestream::store::StoreError::ConditionFailed
    ));
    // And a hidden gap cannot be hidden, pinned or fetched as a message.
    let hide = app
        .post(&format!("{path}/{dead}/hide"), &t, json!({}))
        .await;
    assert_eq!(hide.status, StatusCode::NOT_FOUND, "{:?}", hide.body);
}

/// Every write of the class after the stop, as (method, path, body, by the teacher).
fn writes_after_stop(id: &str, question: &str) -> Vec<(&'static str, String, Value, bool)> {
    let s = |p: &str| format!("/api/livestream/{id}{p}");
    let q = |p: &str| format!("/api/livestream/{id}/questions/{question}{p}");
    vec![
        ("POST", s("/chat"), json!({"message": "late"}), false),
        ("POST", s("/questions"), json!({"text": "late?"}), false),
        ("POST", s("/join"), json!({}), false),
        ("POST", q("/upvote"), json!({}), false),
        ("DELETE", q("/upvote"), json!({}), false),
        ("PUT", q("/answer"), json!({"answer": "late"}), true),
        ("POST", q("/hide"), json!({}), true),
        ("POST", q("/approve"), json!({}), true),
        ("POST", q("/dismiss"), json!({}), true),
        ("POST", q("/reopen"), json!({}), true),
        ("POST", q("/highlight"), json!({}), true),
        ("DELETE", s("/questions/highlight"), json!({}), true),
        ("POST", s("/chat/1/hide"), json!({}), true),
        ("POST", s("/chat/1/pin"), json!({}), true),
        ("DELETE", s("/chat/pin"), json!({}), true),
        (
            "PUT",
            s("/settings"),
            json!({"chat_slow_mode_seconds": 5}),
            true,
        ),
        (
            "PUT",
            s("/participants/s1"),
            json!({"can_chat": false}),
            true,
        ),
        ("PUT", s(""), json!({"title": "renamed"}), true),
    ]
}

#[tokio::test]
async fn once_ended_nothing_about_the_class_changes_and_stats_equal_counters() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, 3).await;
    let chat = app
        .post(
            &format!("/api/livestream/{id}/chat"),
            &student("s0"),
            json!({"message": "hi"}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::CREATED);
    let asked = app
        .post(
            &format!("/api/livestream/{id}/questions"),
            &student("s0"),
            json!({"text": "why?"}),
        )
        .await;
    let question = asked.body["id"].as_str().unwrap().to_string();
    let vote = app
        .post(
            &format!("/api/livestream/{id}/questions/{question}/upvote"),
            &student("s1"),
            json!({}),
        )
        .await;
    assert_eq!(vote.status, StatusCode::OK);

    let stopped = app
        .post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    assert_eq!(stopped.status, StatusCode::OK);
    let before = app.get(&format!("/api/livestream/{id}"), &t).await.body;

    for (method, path, body, by_teacher) in writes_after_stop(&id, &question) {
        let who = if by_teacher { t.clone() } else { student("s2") };
        let reply = app.call(method, &path, Some(&who), Some(body)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::CONFLICT, "stream_finished"),
            "{method} {path}: {:?}",
            reply.body
        );
    }
    // Leaving stays idempotent; reads keep working.
    let leave = app
        .post(
            &format!("/api/livestream/{id}/leave"),
            &student("s1"),
            json!({}),
        )
        .await;
    assert_eq!(leave.status, StatusCode::OK, "{:?}", leave.body);
    for read in ["", "/chat", "/questions", "/participants", "/stats"] {
        let reply = app.get(&format!("/api/livestream/{id}{read}"), &t).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {read}: {:?}", reply.body);
    }

    let after = app.get(&format!("/api/livestream/{id}"), &t).await.body;
    let mut unchanged = before.clone();
    unchanged["updated_at"] = after["updated_at"].clone();
    assert_eq!(after, unchanged);
    let stats = app
        .get(&format!("/api/livestream/{id}/stats"), &t)
        .await
        .body;
    assert_eq!(stats["is_final"], true);
    for (stat, counter) in [
        ("chat_messages_count", "chat_messages_count"),
        ("questions_count", "questions_count"),
        ("questions_answered_count", "questions_answered_count"),
        ("upvotes_count", "upvotes_count"),
        ("peak_viewers", "max_viewers"),
        ("total_unique_viewers", "unique_viewers"),
        ("current_viewers", "viewer_count"),
    ] {
        assert_eq!(stats[stat], after[counter], "{stat} vs {counter}");
    }
}

#[tokio::test]
async fn votes_racing_the_stop_are_counted_exactly_once_or_refused() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, 60).await;
    let asked = app
        .post(
            &format!("/api/livestream/{id}/questions"),
            &student("s0"),
            json!({"text": "race?"}),
        )
        .await;
    let question = asked.body["id"].as_str().unwrap().to_string();
    let vote_path = format!("/api/livestream/{id}/questions/{question}/upvote");
    let votes = (1..60).map(|i| {
        let path = vote_path.clone();
        let app = &app;
        async move { app.post(&path, &student(&format!("s{i}")), json!({})).await }
    });
    let stop_path = format!("/api/livestream/{id}/stop");
    let stop = app.post(&stop_path, &t, json!({}));
    let (replies, stopped) = tokio::join!(join_all(votes), stop);
    assert_eq!(stopped.status, StatusCode::OK, "{:?}", stopped.body);
    let mut accepted = 0;
    for reply in &replies {
        match (reply.status, reply.code()) {
            (StatusCode::OK, _) => accepted += 1,
            (StatusCode::CONFLICT, "stream_finished") => {}
            other => panic!("unexpected answer {other:?}: {:?}", reply.body),
        }
    }
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await.body;
    let stats = app
        .get(&format!("/api/livestream/{id}/stats"), &t)
        .await
        .body;
    let listed = app
        .get(&format!("/api/livestream/{id}/questions"), &t)
        .await
        .body;
    assert_eq!(stream["upvotes_count"], accepted);
    assert_eq!(stats["upvotes_count"], accepted);
    assert_eq!(listed["items"][0]["upvotes"], accepted);
}

#[tokio::test]
async fn stopping_ends_everyone_s_presence_and_answers_what_get_returns() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, 5).await;
    let stopped = app
        .post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    assert_eq!(stopped.status, StatusCode::OK);
    assert_eq!(stopped.body["viewer_count"], 0);
    assert_eq!(stopped.body["max_viewers"], 5);
    assert_eq!(stopped.body["unique_viewers"], 5);
    let got = app.get(&format!("/api/livestream/{id}"), &t).await.body;
    assert_eq!(got, stopped.body);

    let participants = app
        .get(&format!("/api/livestream/{id}/participants"), &t)
        .await
        .body;
    let ended_at: chrono::DateTime<chrono::Utc> =
        got["ended_at"].as_str().unwrap().parse().unwrap();
    for p in participants["items"].as_array().unwrap() {
        assert_eq!(p["is_watching"], false, "{p}");
        let left: chrono::DateTime<chrono::Utc> = p["left_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(left, ended_at);
    }
    let stats = app
        .get(&format!("/api/livestream/{id}/stats"), &t)
        .await
        .body;
    assert_eq!(stats["current_viewers"], 0);
    assert_eq!(stats["peak_viewers"], 5);
}

#[tokio::test]
async fn http_viewers_who_stop_sending_heartbeats_are_swept() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, 3).await;
    let store = app.env.store();
    // Nobody to ask about connections: there are none.
    let sockets = Connections::local("http://127.0.0.1:9");
    let report = livestream::service::sweep::run(store, &sockets, None, now())
        .await
        .unwrap();
    assert_eq!(report.http_presences_ended, 0);

    // s0 keeps joining (the heartbeat); the others vanish. The sweep runs as if a
    // minute had passed since `between`: the first joins are older, the heartbeat not.
    let between = now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let heartbeat = app
        .post(
            &format!("/api/livestream/{id}/join"),
            &student("s0"),
            json!({}),
        )
        .await;
    assert_eq!(heartbeat.status, StatusCode::OK);
    let swept_at = between
        + chrono::Duration::seconds(livestream::service::presence::HTTP_PRESENCE_TIMEOUT_SECS);
    let report = livestream::service::sweep::run(store, &sockets, None, swept_at)
        .await
        .unwrap();
    assert_eq!(report.http_presences_ended, 2);
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await.body;
    assert_eq!(stream["viewer_count"], 1);
    assert_eq!(stream["max_viewers"], 3);
    let p = store.participant(&id, "s1").await.unwrap().unwrap();
    assert!(!p.is_watching);
    // A swept viewer who comes back is counted again.
    let back = app
        .post(
            &format!("/api/livestream/{id}/join"),
            &student("s1"),
            json!({}),
        )
        .await;
    assert_eq!(back.body["viewer_count"], 2);
}

#[tokio::test]
async fn bad_input_is_a_4xx_that_changes_nothing() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, 1).await;
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let participant = format!("/api/livestream/{id}/participants/s0");
    for body in [
        json!({}),
        json!({"can_chat": null}),
        json!({"is_moderator": null, "can_chat": null, "can_ask_questions": null}),
    ] {
        let reply = app
            .call("PUT", &participant, Some(&t), Some(body.clone()))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{body}: {:?}",
            reply.body
        );
    }
    let cursors = [
        format!(r#"{{"PK":"STREAM#{id}","SK":"QUESTION#x"}}"#),
        format!(r#"{{"PK":"STREAM#{id}"}}"#),
        format!(r#"{{"PK":"STREAM#{id}","SK":"CHAT#x","GSI1PK":"y"}}"#),
        r#"{"GSI1PK":"STATUS#live"}"#.to_string(),
        r#"{"PK":"STREAM#other","SK":"CHAT#000000000001"}"#.to_string(),
    ];
    for cursor in &cursors {
        for list in ["chat", "participants"] {
            let reply = app
                .get(
                    &format!("/api/livestream/{id}/{list}?cursor={}", b64(cursor)),
                    &t,
                )
                .await;
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::BAD_REQUEST, "invalid_cursor"),
                "{list} {cursor}: {:?}",
                reply.body
            );
        }
        for list in ["/api/livestream/active", "/api/livestream/mine"] {
            let reply = app.get(&format!("{list}?cursor={}", b64(cursor)), &t).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{list} {cursor}");
        }
    }
    for offset in [
        "q:18446744073709551615",
        "q:99999999999999999999999",
        "q:-1",
    ] {
        let reply = app
            .get(
                &format!("/api/livestream/{id}/questions?cursor={}", b64(offset)),
                &t,
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_cursor"),
            "{offset}"
        );
    }
    for since in ["-1", "99999999999999999999999", "abc"] {
        let reply = app
            .get(&format!("/api/livestream/{id}/chat?since={since}"), &t)
            .await;
        assert!(
            reply.status.is_client_error(),
            "since={since}: {:?}",
            reply.status
        );
    }

    let chat = format!("/api/livestream/{id}/chat");
    let send_raw = |body: &'static str| {
        let chat = chat.clone();
        let app = &app;
        async move {
            let (route, params) = livestream::routes::match_route("POST", &chat).unwrap();
            let token = student("s0");
            let request = livestream::apigw::http_request(&livestream::apigw::HttpRequestSpec {
                method: "POST",
                route_path: route.path,
                path: &chat,
                path_parameters: params,
                headers: vec![("authorization".into(), format!("Bearer {token}"))],
                body: Some(body),
                ..Default::default()
            });
            livestream_api::invoke(route.function, &app.env.state, request)
                .await
                .unwrap()
        }
    };
    let trailing = send_raw(r#"{"message":"a"} junk"#).await;
    assert_eq!(trailing.status(), StatusCode::BAD_REQUEST);
    for invisible in [
        "\u{200B}\u{200B}",
        "\u{FEFF}",
        "\u{202E}\u{202C}",
        " \u{2060} ",
    ] {
        let reply = app
            .post(&chat, &student("s0"), json!({"message": invisible}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{invisible:?}"
        );
    }
    let wrong_type = app
        .post(&chat, &student("s0"), json!({"message": 42}))
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_type.body["error"]["details"][0]["field"], "message");

    // Nothing above was stored; a message with a bidi override is stored without it.
    let listed = app.get(&chat, &t).await;
    assert!(seqs(&listed.body).is_empty(), "{:?}", listed.body);
    let sent = app
        .post(&chat, &student("s0"), json!({"message": "abc\u{202E}def"}))
        .await;
    assert_eq!(sent.body["message"], "abcdef");
    assert_eq!(sent.body["seq"], 1);
}
