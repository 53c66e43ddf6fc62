use http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, student, teacher};

async fn class(app: &TestApp, students: &[&str]) -> (String, String) {
    let t = teacher("t1");
    let (id, _) = app.live_stream(&t, json!({})).await;
    for s in students {
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

async fn ask(app: &TestApp, id: &str, who: &str, body: Value) -> Reply {
    app.post(
        &format!("/api/livestream/{id}/questions"),
        &student(who),
        body,
    )
    .await
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn participants_ask_and_refusals_change_nothing() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, &["s1", "s2"]).await;
    let reply = ask(
        &app,
        &id,
        "s1",
        json!({"text": "  What is a lifetime?\nReally?  "}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["text"], "What is a lifetime?\nReally?");
    assert_eq!(
        (
            reply.body["status"].as_str(),
            reply.body["upvotes"].as_i64()
        ),
        (Some("open"), Some(0))
    );

    for (who, body, status, code) in [
        (
            "never-joined",
            json!({"text": "hi"}),
            StatusCode::FORBIDDEN,
            "not_joined",
        ),
        (
            "s1",
            json!({"text": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "s1",
            json!({"text": "x".repeat(1001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "s1",
            json!({"question": "hi"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let reply = ask(&app, &id, who, body.clone()).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{body}");
    }
    app.call(
        "PUT",
        &format!("/api/livestream/{id}/participants/s2"),
        Some(&t),
        Some(json!({"can_ask_questions": false})),
    )
    .await;
    let reply = ask(&app, &id, "s2", json!({"text": "may I?"})).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "questions_disabled")
    );

    let stream = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert_eq!(stream.body["questions_count"], 1);
    app.post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    let reply = ask(&app, &id, "s1", json!({"text": "after the end?"})).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "stream_finished")
    );
}

#[tokio::test]
async fn fifty_concurrent_upvotes_count_fifty_and_one_user_counts_once() {
    let app = TestApp::spawn().await;
    let voters: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    let mut everyone: Vec<&str> = voters.iter().map(String::as_str).collect();
    everyone.push("asker");
    let (id, t) = class(&app, &everyone).await;
    let q = ask(&app, &id, "asker", json!({"text": "Vote for me"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/livestream/{id}/questions/{q}/upvote");
    let tokens: Vec<String> = voters.iter().map(|v| student(v)).collect();
    let replies =
        futures::future::join_all(tokens.iter().map(|tok| app.post(&path, tok, json!({})))).await;
    assert!(
        replies.iter().all(|r| r.status == StatusCode::OK),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let one = student("v0");
    let replies =
        futures::future::join_all((0..20).map(|_| app.post(&path, &one, json!({})))).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    let list = app
        .get(&format!("/api/livestream/{id}/questions"), &one)
        .await;
    assert_eq!(list.body["items"][0]["upvotes"], 50);
    assert_eq!(list.body["items"][0]["has_upvoted"], true);
    let stream = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert_eq!(stream.body["upvotes_count"], 50);

    let reply = app.post(&path, &student("asker"), json!({})).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "own_question")
    );
    // Withdrawing is exact too, and idempotent.
    let replies =
        futures::future::join_all((0..10).map(|_| app.call("DELETE", &path, Some(&one), None)))
            .await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    let list = app
        .get(&format!("/api/livestream/{id}/questions"), &one)
        .await;
    assert_eq!(
        (
            list.body["items"][0]["upvotes"].as_i64(),
            list.body["items"][0]["has_upvoted"].as_bool()
        ),
        (Some(49), Some(false))
    );
    assert_eq!(
        app.get(&format!("/api/livestream/{id}"), &t).await.body["upvotes_count"],
        49
    );
}

#[tokio::test]
async fn anonymous_askers_are_known_only_to_moderators_and_themselves() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, &["s1", "s2"]).await;
    ask(
        &app,
        &id,
        "s1",
        json!({"text": "A shy question", "anonymous": true}),
    )
    .await;
    let path = format!("/api/livestream/{id}/questions");
    let as_other = app.get(&path, &student("s2")).await;
    assert!(as_other.body["items"][0]["user_id"].is_null());
    assert!(!as_other.body.to_string().contains("s1"));
    let as_asker = app.get(&path, &student("s1")).await;
    assert_eq!(
        (
            as_asker.body["items"][0]["user_id"].as_str(),
            as_asker.body["items"][0]["is_mine"].as_bool()
        ),
        (Some("s1"), Some(true))
    );
    let as_teacher = app.get(&path, &t).await;
    assert_eq!(as_teacher.body["items"][0]["user_id"], "s1");
}

#[tokio::test]
async fn the_approval_queue_holds_questions_until_a_moderator_approves() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, &["s1", "s2"]).await;
    app.call(
        "PUT",
        &format!("/api/livestream/{id}/settings"),
        Some(&t),
        Some(json!({"questions_require_approval": true})),
    )
    .await;
    let q = ask(&app, &id, "s1", json!({"text": "Pending?"})).await;
    assert_eq!(q.body["status"], "pending");
    let q = q.body["id"].as_str().unwrap().to_string();
    let path = format!("/api/livestream/{id}/questions");
    assert!(
        ids(&app.get(&path, &student("s2")).await).is_empty(),
        "others do not see it"
    );
    assert_eq!(
        ids(&app.get(&path, &student("s1")).await),
        [q.as_str()],
        "the asker does"
    );
    let reply = app
        .get(&format!("{path}?status=pending"), &student("s2"))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "not_moderator")
    );
    assert_eq!(
        ids(&app.get(&format!("{path}?status=pending"), &t).await),
        [q.as_str()]
    );
    let reply = app
        .post(&format!("{path}/{q}/upvote"), &student("s2"), json!({}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "question_not_votable")
    );

    assert_eq!(
        app.post(&format!("{path}/{q}/approve"), &student("s2"), json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let reply = app
        .post(&format!("{path}/{q}/approve"), &t, json!({}))
        .await;
    assert_eq!(reply.body["status"], "open");
    assert_eq!(ids(&app.get(&path, &student("s2")).await), [q.as_str()]);
    let reply = app
        .post(&format!("{path}/{q}/approve"), &t, json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "approving twice is harmless");
}

#[tokio::test]
async fn answers_sorting_filters_and_moderation() {
    let app = TestApp::spawn().await;
    let (id, t) = class(&app, &["s1", "s2", "s3"]).await;
    let path = format!("/api/livestream/{id}/questions");
    let mut q = Vec::new();
    for (who, text) in [("s1", "first"), ("s2", "second"), ("s3", "third")] {
        q.push(
            ask(&app, &id, who, json!({"text": text})).await.body["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // second gets 2 votes, third 1.
    for (voter, target) in [("s1", 1), ("s3", 1), ("s1", 2)] {
        app.post(
            &format!("{path}/{}/upvote", q[target]),
            &student(voter),
            json!({}),
        )
        .await;
    }
    assert_eq!(
        ids(&app.get(&format!("{path}?sort=top"), &student("s1")).await),
        [q[1].clone(), q[2].clone(), q[0].clone()]
    );
    assert_eq!(
        ids(&app
            .get(&format!("{path}?sort=recent"), &student("s1"))
            .await),
        [q[2].clone(), q[1].clone(), q[0].clone()]
    );
    let reply = app.get(&format!("{path}?sort=loud"), &student("s1")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);

    let answer = format!("{path}/{}/answer", q[1]);
    let reply = app
        .call(
            "PUT",
            &answer,
            Some(&student("s1")),
            Some(json!({"answer": "no"})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "not_moderator")
    );
    let reply = app
        .call("PUT", &answer, Some(&t), Some(json!({"answer": ""})))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let replies = futures::future::join_all((0..5).map(|i| {
        app.call(
            "PUT",
            &answer,
            Some(&t),
            Some(json!({"answer": format!("Answer {i}")})),
        )
    }))
    .await;
    assert!(
        replies.iter().all(|r| r.status == StatusCode::OK),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let reply = &replies[0];
    assert_eq!(
        (
            reply.body["status"].as_str(),
            reply.body["answered_by"].as_str()
        ),
        (Some("answered"), Some("t1"))
    );
    assert!(reply.body["answered_at"].is_string());
    assert_eq!(
        app.get(&format!("/api/livestream/{id}"), &t).await.body["questions_answered_count"],
        1,
        "counted once"
    );
    assert_eq!(
        ids(&app
            .get(&format!("{path}?filter=answered"), &student("s1"))
            .await),
        [q[1].clone()]
    );
    assert_eq!(
        ids(&app
            .get(
                &format!("{path}?filter=unanswered&sort=recent"),
                &student("s1")
            )
            .await),
        [q[2].clone(), q[0].clone()]
    );

    // Highlight, then hide: the hidden question leaves the board and the highlight.
    let reply = app
        .post(&format!("{path}/{}/highlight", q[2]), &t, json!({}))
        .await;
    assert_eq!(reply.body["highlighted_question_id"], q[2].as_str());
    assert_eq!(
        app.get(&path, &student("s1")).await.body["highlighted_question_id"],
        q[2].as_str()
    );
    let reply = app
        .post(&format!("{path}/{}/hide", q[2]), &t, json!({}))
        .await;
    assert_eq!(reply.body["hidden"], true);
    let board = app.get(&path, &student("s1")).await;
    assert!(!ids(&board).contains(&q[2]));
    assert!(board.body["highlighted_question_id"].is_null());
    let reply = app
        .post(&format!("{path}/{}/highlight", q[2]), &t, json!({}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "question_not_highlightable")
    );
    assert!(
        ids(&app.get(&path, &t).await).contains(&q[2]),
        "moderators still see it"
    );

    // Dismiss and reopen.
    let reply = app
        .post(&format!("{path}/{}/dismiss", q[0]), &t, json!({}))
        .await;
    assert_eq!(reply.body["status"], "dismissed");
    assert!(!ids(&app.get(&path, &student("s1")).await).contains(&q[0]));
    let reply = app
        .call(
            "PUT",
            &format!("{path}/{}/answer", q[0]),
            Some(&t),
            Some(json!({"answer": "late"})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "question_wrong_state")
    );
    let reply = app
        .post(&format!("{path}/{}/reopen", q[0]), &t, json!({}))
        .await;
    assert_eq!(reply.body["status"], "open");
    let reply = app
        .post(&format!("{path}/{}/reopen", q[0]), &t, json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reply = app
        .call("DELETE", &format!("{path}/highlight"), Some(&t), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app
        .post(
            &format!("{path}/01J00000000000000000000000/upvote"),
            &student("s1"),
            json!({}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "question_not_found")
    );
}

#[tokio::test]
async fn listings_page_with_a_cursor() {
    let app = TestApp::spawn().await;
    let (id, _) = class(&app, &["s1"]).await;
    for i in 0..5 {
        ask(&app, &id, "s1", json!({"text": format!("q{i}")})).await;
    }
    let path = format!("/api/livestream/{id}/questions?sort=recent&limit=2");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.clone(),
        };
        let page = app.get(&url, &student("s1")).await;
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q["text"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["q4", "q3", "q2", "q1", "q0"]);
    let reply = app
        .get(&format!("{path}&cursor=bogus"), &student("s1"))
        .await;
    assert_eq!(reply.code(), "invalid_cursor");
}

#[tokio::test]
async fn a_question_action_answers_for_the_stream_before_the_question() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (private, _) = app.live_stream(&t, json!({"is_public": false})).await;
    let missing = "01J00000000000000000000000";
    let upvote = |stream: &str| format!("/api/livestream/{stream}/questions/{missing}/upvote");
    let answer = format!("/api/livestream/{private}/questions/{missing}/answer");

    // Someone outside a private class learns nothing of its questions.
    let reply = app
        .post(&upvote(&private), &student("outsider"), json!({}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "stream_private")
    );
    let reply = app
        .call(
            "PUT",
            &answer,
            Some(&student("outsider")),
            Some(json!({"answer": "x"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app.post(&upvote(missing), &student("s1"), json!({})).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "stream_not_found")
    );
    let reply = app
        .call("PUT", &answer, Some(&t), Some(json!({"answer": "x"})))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "question_not_found")
    );

    app.post(&format!("/api/livestream/{private}/stop"), &t, json!({}))
        .await;
    let reply = app
        .call("PUT", &answer, Some(&t), Some(json!({"answer": "x"})))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "stream_finished")
    );
}
