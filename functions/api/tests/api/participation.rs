use http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, admin, student, teacher};

#[tokio::test]
async fn joining_is_idempotent_and_only_for_live_visible_streams() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (scheduled, _) = app.stream(&t, json!({})).await;
    let reply = app
        .post(
            &format!("/api/livestream/{scheduled}/join"),
            &student("s1"),
            json!({}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "stream_not_live")
    );

    let (id, course) = app.live_stream(&t, json!({"is_public": false})).await;
    let join = format!("/api/livestream/{id}/join");
    let reply = app.post(&join, &student("outsider"), json!({})).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "stream_private")
    );
    let reply = app.call("POST", &join, None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    app.enroll(&t, &course, "s1").await;
    for _ in 0..2 {
        let reply = app.post(&join, &student("s1"), json!({})).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["viewer_count"], 1);
        assert_eq!(reply.body["participant"]["is_watching"], true);
        assert_eq!(reply.body["participant"]["can_chat"], true);
    }
    let reply = app.post(&join, &t, json!({})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body["participant"].is_null(),
        "the instructor is not a viewer"
    );
    assert_eq!(reply.body["viewer_count"], 1);

    let leave = format!("/api/livestream/{id}/leave");
    for _ in 0..2 {
        let reply = app.post(&leave, &student("s1"), json!({})).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["viewer_count"], 0);
    }
    let reply = app.post(&leave, &student("s1"), json!({})).await;
    assert!(reply.body["participant"]["left_at"].is_string());
}

#[tokio::test]
async fn a_hundred_concurrent_joins_and_leaves_leave_the_count_exact() {
    let app = TestApp::spawn().await;
    let (id, _) = app.live_stream(&teacher("t1"), json!({})).await;
    let join = format!("/api/livestream/{id}/join");
    let leave = format!("/api/livestream/{id}/leave");
    let users: Vec<String> = (0..100).map(|i| student(&format!("s{i}"))).collect();
    // 60 users join; then, at once, 40 of them leave while 40 new ones join... and every
    // even user of the first group joins again (idempotent).
    for r in
        futures::future::join_all(users[..60].iter().map(|u| app.post(&join, u, json!({})))).await
    {
        assert_eq!(r.status, StatusCode::OK);
    }
    let ops = (0..40)
        .map(|i| app.post(&leave, &users[i], json!({})))
        .chain((60..100).map(|i| app.post(&join, &users[i], json!({}))))
        .chain(
            (40..60)
                .step_by(2)
                .map(|i| app.post(&join, &users[i], json!({}))),
        );
    for r in futures::future::join_all(ops).await {
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let stream = app
        .get(&format!("/api/livestream/{id}"), &teacher("t1"))
        .await;
    assert_eq!(
        stream.body["viewer_count"], 60,
        "users 40..100 are still joined"
    );
    assert_eq!(stream.body["unique_viewers"], 100);
    // The peak depends on how the concurrent joins and leaves interleaved.
    let peak = stream.body["max_viewers"].as_i64().unwrap();
    assert!((60..=100).contains(&peak), "{peak}");
}

#[tokio::test]
async fn the_instructor_sets_permissions_and_moderators_list_participants() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.live_stream(&t, json!({})).await;
    app.post(
        &format!("/api/livestream/{id}/join"),
        &student("s1"),
        json!({}),
    )
    .await;
    app.post(
        &format!("/api/livestream/{id}/join"),
        &student("s2"),
        json!({}),
    )
    .await;
    let path = format!("/api/livestream/{id}/participants/s1");

    for who in [student("s2"), teacher("t2")] {
        let reply = app
            .call(
                "PUT",
                &path,
                Some(&who),
                Some(json!({"is_moderator": true})),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::FORBIDDEN, "not_stream_owner")
        );
    }
    let reply = app
        .call(
            "PUT",
            &format!("/api/livestream/{id}/participants/ghost"),
            Some(&t),
            Some(json!({"can_chat": false})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "participant_not_found")
    );
    let reply = app
        .call("PUT", &path, Some(&t), Some(json!({"is_moderator": "yes"})))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["error"]["details"][0]["field"], "is_moderator");

    let list = format!("/api/livestream/{id}/participants");
    let reply = app.get(&list, &student("s1")).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "not_moderator")
    );

    let reply = app
        .call(
            "PUT",
            &path,
            Some(&t),
            Some(json!({"is_moderator": true, "can_ask_questions": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["is_moderator"], true);
    assert_eq!(reply.body["can_ask_questions"], false);
    assert_eq!(reply.body["can_chat"], true);
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert_eq!(stream.body["moderator_ids"], json!(["s1"]));
    let reply = app.get(&list, &student("s1")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let users: Vec<&str> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["s1", "s2"]);
    let reply = app
        .call(
            "PUT",
            &format!("/api/livestream/{id}/participants/s2"),
            Some(&admin("a1")),
            Some(json!({"can_chat": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "admins may too");
    app.call("PUT", &path, Some(&t), Some(json!({"is_moderator": false})))
        .await;
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert!(
        stream.body.get("moderator_ids").is_none(),
        "{:?}",
        stream.body
    );
    assert_eq!(
        app.get(&list, &student("s1")).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn settings_are_the_instructors_and_validated() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.live_stream(&t, json!({})).await;
    let path = format!("/api/livestream/{id}/settings");
    let reply = app
        .call(
            "PUT",
            &path,
            Some(&student("s1")),
            Some(json!({"chat_slow_mode_seconds": 5})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app
        .call(
            "PUT",
            &path,
            Some(&t),
            Some(json!({"chat_slow_mode_seconds": 301, "blocked_words": ["", "x".repeat(51)]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["error"]["details"].as_array().unwrap().len(), 3);
    let reply = app
        .call("PUT", &path, Some(&t), Some(json!({"chat_slow_mode_seconds": 10, "blocked_words": ["Spam", "spam", "buy now"], "questions_require_approval": true})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["chat_slow_mode_seconds"], 10);
    assert_eq!(reply.body["blocked_words"], json!(["spam", "buy now"]));
    assert_eq!(reply.body["questions_require_approval"], true);
    let seen_by_student = app
        .get(&format!("/api/livestream/{id}"), &student("s1"))
        .await;
    assert!(seen_by_student.body.get("blocked_words").is_none());
}
