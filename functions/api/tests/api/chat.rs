use http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, student, teacher};

async fn class(app: &TestApp) -> (String, String) {
    let t = teacher("t1");
    let (id, _) = app.live_stream(&t, json!({})).await;
    for s in ["s1", "s2", "s3"] {
        let reply = app
            .post(
                &format!("/api/livestream/{id}/join"),
                &student(s),
                json!({}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
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
async fn participants_chat_and_refusals_change_nothing() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app).await;
    let chat = format!("/api/livestream/{id}/chat");
    let reply = app
        .post(&chat, &student("s1"), json!({"message": "  Hello!  "}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(
        (reply.body["message"].as_str(), reply.body["seq"].as_i64()),
        (Some("Hello!"), Some(1))
    );
    assert_eq!(reply.body["display_name"], "s1");

    let cases = [
        (
            student("never-joined"),
            json!({"message": "hi"}),
            StatusCode::FORBIDDEN,
            "not_joined",
        ),
        (
            student("s1"),
            json!({"message": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            student("s1"),
            json!({"message": "x".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            student("s1"),
            json!({"message": "bell\u{7}"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            student("s1"),
            json!({"message": "hi", "message_type": "announcement"}),
            StatusCode::FORBIDDEN,
            "announcement_not_allowed",
        ),
        (
            student("s1"),
            json!({"text": "hi"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (who, body, status, code) in cases {
        let reply = app.post(&chat, &who, body.clone()).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{body}");
    }
    let reply = app
        .call("POST", &chat, None, Some(json!({"message": "hi"})))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let reply = app
        .post(
            &chat,
            &t,
            json!({"message": "Welcome all", "message_type": "announcement"}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "the instructor need not join"
    );
    // A refusal that got as far as taking a number left it as a gap: no message, no
    // count, and readers move past it.
    let announcement = reply.body["seq"].as_i64().unwrap();
    let list = app.get(&chat, &student("s2")).await;
    assert_eq!(seqs(&list.body), [1, announcement]);
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert_eq!(stream.body["chat_messages_count"], 2);

    app.post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    let reply = app
        .post(&chat, &student("s1"), json!({"message": "still there?"}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "stream_finished")
    );
    assert_eq!(
        seqs(&app.get(&chat, &student("s2")).await.body),
        [1, announcement]
    );
}

#[tokio::test]
async fn slow_mode_limits_students_with_retry_after_and_spares_moderators() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app).await;
    app.call(
        "PUT",
        &format!("/api/livestream/{id}/settings"),
        Some(&t),
        Some(json!({"chat_slow_mode_seconds": 30})),
    )
    .await;
    let chat = format!("/api/livestream/{id}/chat");
    assert_eq!(
        app.post(&chat, &student("s1"), json!({"message": "one"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let reply = app
        .post(&chat, &student("s1"), json!({"message": "two"}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(
        app.post(&chat, &student("s2"), json!({"message": "mine"}))
            .await
            .status,
        StatusCode::CREATED
    );
    for _ in 0..3 {
        assert_eq!(
            app.post(&chat, &t, json!({"message": "teacher"}))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    // Concurrent sends from one student in slow mode: exactly one gets through.
    let s3 = student("s3");
    let replies = futures::future::join_all(
        (0..10).map(|i| app.post(&chat, &s3, json!({"message": format!("burst {i}")}))),
    )
    .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let limited = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, limited), (1, 9));
}

#[tokio::test]
async fn blocked_words_and_muted_students_are_refused() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app).await;
    app.call(
        "PUT",
        &format!("/api/livestream/{id}/settings"),
        Some(&t),
        Some(json!({"blocked_words": ["spam"]})),
    )
    .await;
    let chat = format!("/api/livestream/{id}/chat");
    let reply = app
        .post(&chat, &student("s1"), json!({"message": "Buy SPAM now"}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("blocked word")
    );
    app.call(
        "PUT",
        &format!("/api/livestream/{id}/participants/s2"),
        Some(&t),
        Some(json!({"can_chat": false})),
    )
    .await;
    let reply = app
        .post(&chat, &student("s2"), json!({"message": "hello"}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "chat_disabled")
    );
    assert!(
        app.get(&chat, &t).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn concurrent_messages_get_distinct_gap_free_sequence_numbers() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.live_stream(&t, json!({})).await;
    let users: Vec<String> = (0..30).map(|i| student(&format!("s{i}"))).collect();
    for u in &users {
        app.post(&format!("/api/livestream/{id}/join"), u, json!({}))
            .await;
    }
    let chat = format!("/api/livestream/{id}/chat");
    let replies = futures::future::join_all(
        users
            .iter()
            .map(|u| app.post(&chat, u, json!({"message": "hi"}))),
    )
    .await;
    assert!(replies.iter().all(|r| r.status == StatusCode::CREATED));
    let mut all = Vec::new();
    let mut since = 0;
    loop {
        let page = app.get(&format!("{chat}?since={since}&limit=7"), &t).await;
        let got = seqs(&page.body);
        if got.is_empty() {
            break;
        }
        since = page.body["last_seq"].as_i64().unwrap();
        all.extend(got);
    }
    assert_eq!(all, (1..=30).collect::<Vec<i64>>());
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert_eq!(
        (
            stream.body["chat_seq"].as_i64(),
            stream.body["chat_messages_count"].as_i64()
        ),
        (Some(30), Some(30))
    );
}

#[tokio::test]
async fn hidden_messages_are_left_out_for_students_and_flagged_for_moderators() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app).await;
    let chat = format!("/api/livestream/{id}/chat");
    for m in ["one", "rude", "three"] {
        app.post(&chat, &student("s1"), json!({"message": m})).await;
    }
    let reply = app
        .post(&format!("{chat}/2/hide"), &student("s2"), json!({}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "not_moderator")
    );
    app.call(
        "PUT",
        &format!("/api/livestream/{id}/participants/s2"),
        Some(&t),
        Some(json!({"is_moderator": true})),
    )
    .await;
    let reply = app
        .post(&format!("{chat}/2/hide"), &student("s2"), json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        (
            reply.body["hidden"].as_bool(),
            reply.body["hidden_by"].as_str()
        ),
        (Some(true), Some("s2"))
    );
    assert_eq!(
        app.post(&format!("{chat}/2/hide"), &t, json!({}))
            .await
            .body["hidden_by"],
        "s2",
        "idempotent"
    );
    assert_eq!(
        app.post(&format!("{chat}/99/hide"), &t, json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(&format!("{chat}/abc/hide"), &t, json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let as_student = app.get(&chat, &student("s3")).await;
    assert_eq!(seqs(&as_student.body), [1, 3]);
    assert!(!as_student.body.to_string().contains("rude"));
    assert_eq!(as_student.body["last_seq"], 3);
    let as_moderator = app.get(&chat, &student("s2")).await;
    assert_eq!(seqs(&as_moderator.body), [1, 2, 3]);
    assert_eq!(as_moderator.body["items"][1]["hidden"], true);
    let catch_up = app.get(&format!("{chat}?since=1"), &student("s3")).await;
    assert_eq!(seqs(&catch_up.body), [3]);
    assert_eq!(
        app.get(&format!("{chat}?since=-1"), &student("s3"))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn one_message_can_be_pinned_but_not_a_hidden_one() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app).await;
    let chat = format!("/api/livestream/{id}/chat");
    app.post(&chat, &student("s1"), json!({"message": "pin me"}))
        .await;
    app.post(&chat, &student("s1"), json!({"message": "hide me"}))
        .await;
    assert_eq!(
        app.post(&format!("{chat}/1/pin"), &student("s1"), json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let reply = app.post(&format!("{chat}/1/pin"), &t, json!({})).await;
    assert_eq!(reply.body["pinned_message_seq"], 1);
    app.post(&format!("{chat}/2/hide"), &t, json!({})).await;
    let reply = app.post(&format!("{chat}/2/pin"), &t, json!({})).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "message_hidden")
    );
    assert_eq!(
        app.post(&format!("{chat}/7/pin"), &t, json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.post(&format!("{chat}/1/hide"), &t, json!({})).await;
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert!(
        stream.body["pinned_message_seq"].is_null(),
        "hiding the pinned message unpins it"
    );
    app.post(&chat, &student("s1"), json!({"message": "third"}))
        .await;
    app.post(&format!("{chat}/3/pin"), &t, json!({})).await;
    let reply = app
        .call("DELETE", &format!("{chat}/pin"), Some(&t), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["pinned_message_seq"].is_null());
}
