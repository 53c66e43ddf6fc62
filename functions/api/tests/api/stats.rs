use http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, admin, student, teacher};

#[tokio::test]
async fn the_stats_of_a_scripted_class_match_the_script() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.live_stream(&t, json!({})).await;
    let join = format!("/api/livestream/{id}/join");
    let leave = format!("/api/livestream/{id}/leave");
    let chat = format!("/api/livestream/{id}/chat");
    // Five students join; two leave; one of them comes back; one more joins.
    for s in ["s1", "s2", "s3", "s4", "s5"] {
        app.post(&join, &student(s), json!({})).await;
    }
    app.post(&leave, &student("s4"), json!({})).await;
    app.post(&leave, &student("s5"), json!({})).await;
    app.post(&join, &student("s4"), json!({})).await;
    app.post(&join, &student("s6"), json!({})).await;
    for (s, m) in [("s1", "a"), ("s2", "b"), ("s1", "c"), ("s6", "d")] {
        assert_eq!(
            app.post(&chat, &student(s), json!({"message": m}))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    app.post(
        &chat,
        &t,
        json!({"message": "welcome", "message_type": "announcement"}),
    )
    .await;

    let live = app.get(&format!("/api/livestream/{id}/stats"), &t).await;
    assert_eq!(live.status, StatusCode::OK, "{:?}", live.body);
    assert_eq!(live.body["is_final"], false);
    assert_eq!(live.body["max_viewers"], 5);
    assert_eq!(live.body["viewer_count"], 5);
    assert_eq!(live.body["unique_viewers"], 6);
    // The old names stay readable for one release.
    assert_eq!(live.body["peak_viewers"], 5);
    assert_eq!(live.body["current_viewers"], 5);
    assert_eq!(live.body["total_unique_viewers"], 6);
    assert_eq!(live.body["chat_messages_count"], 5);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let stopped = app
        .post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    let duration = stopped.body["duration"].as_i64().unwrap();
    let ended_at: chrono::DateTime<chrono::Utc> =
        stopped.body["ended_at"].as_str().unwrap().parse().unwrap();

    let stats = app.get(&format!("/api/livestream/{id}/stats"), &t).await;
    let body = &stats.body;
    assert_eq!(body["is_final"], true);
    assert_eq!(body["status"], "ended");
    assert_eq!(body["max_viewers"], 5);
    assert_eq!(body["unique_viewers"], 6);
    assert_eq!(
        body["viewer_count"], 0,
        "the stop ended everyone's presence"
    );
    assert_eq!(body["peak_viewers"], 5);
    assert_eq!(body["total_unique_viewers"], 6);
    assert_eq!(body["chat_messages_count"], 5);
    assert_eq!(body["questions_count"], 0);
    assert_eq!(body["duration"], duration);
    // Watch time is what the participants' records add up to, up to the end.
    let participants = app.env.store().all_participants(&id).await.unwrap();
    assert_eq!(participants.len(), 6);
    let total: i64 = participants.iter().map(|p| p.watched_until(ended_at)).sum();
    assert_eq!(body["total_watch_time"], total);
    assert_eq!(body["average_watch_time"], total / 6);
    let expected = livestream::service::stats::engagement_score(total / 6, duration, 5, 6);
    assert_eq!(body["engagement_score"], expected);

    // The snapshot is final: people leaving afterwards do not change it.
    app.post(&leave, &student("s1"), json!({})).await;
    let again = app.get(&format!("/api/livestream/{id}/stats"), &t).await;
    assert_eq!(again.body, stats.body);
}

#[tokio::test]
async fn stats_are_for_the_instructor_and_admins() {
    let app = TestApp::spawn().await;
    let (id, _) = app.live_stream(&teacher("t1"), json!({})).await;
    let path = format!("/api/livestream/{id}/stats");
    assert_eq!(
        app.get(&path, &student("s1")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&path, &teacher("t2")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get(&path, &admin("a1")).await.status, StatusCode::OK);
    assert_eq!(
        app.get(
            "/api/livestream/01J00000000000000000000000/stats",
            &admin("a1")
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}
