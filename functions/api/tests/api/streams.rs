use http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, admin, student, teacher};

fn future(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339()
}

#[tokio::test]
async fn a_teacher_creates_a_stream_and_only_they_see_its_key() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let course = app.course(&t).await;
    let reply = app
        .post(
            "/api/livestream/",
            &t,
            json!({
                "title": "  Ownership and borrowing  ",
                "description": "Live coding",
                "course_id": course,
                "scheduled_at": future(2),
                "quality_settings": {"resolution": "1080p", "frame_rate": 60, "bitrate_kbps": 6000},
                "is_recording": true
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json");
    let body = &reply.body;
    assert_eq!(body["title"], "Ownership and borrowing");
    assert_eq!(body["status"], "scheduled");
    assert_eq!(body["instructor_id"], "t1");
    assert_eq!(body["viewer_count"], 0);
    assert_eq!(body["quality_settings"]["resolution"], "1080p");
    assert_eq!(body["is_public"], true);
    assert_eq!(body["is_recording"], true);
    let key = body["stream_key"].as_str().unwrap();
    assert!(key.len() >= 32);
    let id = body["id"].as_str().unwrap();

    let as_owner = app.get(&format!("/api/livestream/{id}"), &t).await;
    assert_eq!(as_owner.body["stream_key"], key);
    let as_student = app
        .get(&format!("/api/livestream/{id}"), &student("s1"))
        .await;
    assert_eq!(as_student.status, StatusCode::OK);
    assert!(as_student.body.get("stream_key").is_none());
    let as_admin = app
        .get(&format!("/api/livestream/{id}"), &admin("a1"))
        .await;
    assert!(as_admin.body.get("stream_key").is_none());
}

#[tokio::test]
async fn creating_requires_a_teacher_who_teaches_the_course() {
    let app = TestApp::spawn().await;
    let course = app.course(&teacher("t1")).await;
    let body = json!({"title": "x", "course_id": course});

    let reply = app
        .call("POST", "/api/livestream/", None, Some(body.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "unauthorized");

    let reply = app
        .post("/api/livestream/", &student("s1"), body.clone())
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "teacher_only")
    );

    let reply = app
        .post("/api/livestream/", &teacher("t2"), body.clone())
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "not_course_teacher")
    );

    let missing = json!({"title": "x", "course_id": "01J00000000000000000000000"});
    let reply = app.post("/api/livestream/", &teacher("t1"), missing).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "course_not_found")
    );

    let mine = app.get("/api/livestream/mine", &teacher("t1")).await;
    assert_eq!(
        mine.body["items"].as_array().unwrap().len(),
        0,
        "refusals store nothing"
    );
}

#[tokio::test]
async fn invalid_input_is_refused_with_every_field_named() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let course = app.course(&t).await;
    let reply = app
        .post(
            "/api/livestream/",
            &t,
            json!({
                "title": "",
                "description": "d".repeat(5001),
                "course_id": course,
                "scheduled_at": "2001-01-01T00:00:00Z",
                "quality_settings": {"resolution": "8K", "frame_rate": 25, "bitrate_kbps": 20000}
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.code(), "validation_failed");
    let fields: Vec<&str> = reply.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "title",
            "description",
            "scheduled_at",
            "quality_settings.resolution",
            "quality_settings.frame_rate",
            "quality_settings.bitrate_kbps"
        ]
    );

    let reply = app
        .post(
            "/api/livestream/",
            &t,
            json!({"title": "x".repeat(201), "course_id": course}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);

    let reply = app.call("POST", "/api/livestream/", Some(&t), None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "missing_body")
    );

    let reply = app
        .post(
            "/api/livestream/",
            &t,
            json!({"title": "x", "course_id": course, "frame_rate": 30}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(reply.body["error"]["details"][0]["field"], "frame_rate");

    let reply = app
        .post(
            "/api/livestream/",
            &t,
            json!({"title": "x", "course_id": course, "is_public": "yes"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["error"]["details"][0]["field"], "is_public");

    let mine = app.get("/api/livestream/mine", &t).await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn start_stop_run_the_lifecycle_and_compute_the_duration() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.stream(&t, json!({})).await;

    let live = app
        .post(&format!("/api/livestream/{id}/start"), &t, json!({}))
        .await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.body["status"], "live");
    assert!(live.body["started_at"].is_string());

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ended = app
        .post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{:?}", ended.body);
    assert_eq!(ended.body["status"], "ended");
    let started: chrono::DateTime<chrono::Utc> =
        ended.body["started_at"].as_str().unwrap().parse().unwrap();
    let stopped: chrono::DateTime<chrono::Utc> =
        ended.body["ended_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(ended.body["duration"], (stopped - started).num_seconds());
    assert!(ended.body["duration"].as_i64().unwrap() >= 1);
}

#[tokio::test]
async fn wrong_transitions_are_conflicts() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.stream(&t, json!({})).await;

    let reply = app
        .post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "stream_not_live")
    );

    app.post(&format!("/api/livestream/{id}/start"), &t, json!({}))
        .await;
    let reply = app
        .post(&format!("/api/livestream/{id}/start"), &t, json!({}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "stream_not_scheduled")
    );
    let reply = app
        .post(&format!("/api/livestream/{id}/cancel"), &t, json!({}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "stream_not_scheduled")
    );

    app.post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    let reply = app
        .post(&format!("/api/livestream/{id}/stop"), &t, json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reply = app
        .call(
            "PUT",
            &format!("/api/livestream/{id}"),
            Some(&t),
            Some(json!({"title": "late"})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "stream_finished")
    );
}

#[tokio::test]
async fn a_cancelled_stream_cannot_start() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.stream(&t, json!({})).await;
    let reply = app
        .post(&format!("/api/livestream/{id}/cancel"), &t, json!({}))
        .await;
    assert_eq!(reply.body["status"], "cancelled");
    let reply = app
        .post(&format!("/api/livestream/{id}/start"), &t, json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
}

#[tokio::test]
async fn only_the_owner_manages_a_stream() {
    let app = TestApp::spawn().await;
    let (id, _) = app.stream(&teacher("t1"), json!({})).await;
    for (who, status, code) in [
        (teacher("t2"), StatusCode::FORBIDDEN, "not_stream_owner"),
        (student("s1"), StatusCode::FORBIDDEN, "not_stream_owner"),
        (admin("a1"), StatusCode::FORBIDDEN, "not_stream_owner"),
    ] {
        for action in ["start", "stop", "cancel"] {
            let reply = app
                .post(&format!("/api/livestream/{id}/{action}"), &who, json!({}))
                .await;
            assert_eq!((reply.status, reply.code()), (status, code), "{action}");
        }
        let reply = app
            .call(
                "PUT",
                &format!("/api/livestream/{id}"),
                Some(&who),
                Some(json!({"title": "mine now"})),
            )
            .await;
        assert_eq!((reply.status, reply.code()), (status, code));
    }
    let reply = app
        .call("POST", &format!("/api/livestream/{id}/start"), None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = app
        .post(
            "/api/livestream/01J00000000000000000000000/start",
            &teacher("t1"),
            json!({}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "stream_not_found")
    );
    let reply = app
        .post("/api/livestream/not-an-id/start", &teacher("t1"), json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let stream = app
        .get(&format!("/api/livestream/{id}"), &teacher("t1"))
        .await;
    assert_eq!(stream.body["status"], "scheduled");
    assert_eq!(stream.body["title"], "Live lecture");
}

#[tokio::test]
async fn the_owner_updates_details_and_invalid_updates_change_nothing() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.stream(&t, json!({})).await;
    let path = format!("/api/livestream/{id}");
    let at = future(5);
    let reply = app
        .call(
            "PUT",
            &path,
            Some(&t),
            Some(json!({"title": "New title", "scheduled_at": at, "quality_settings": {"frame_rate": 60}, "is_public": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["title"], "New title");
    assert_eq!(reply.body["is_public"], false);
    assert_eq!(reply.body["quality_settings"]["frame_rate"], 60);
    assert_eq!(
        reply.body["quality_settings"]["resolution"], "720p",
        "unchanged fields are kept"
    );

    let reply = app
        .call(
            "PUT",
            &path,
            Some(&t),
            Some(json!({"title": "ok", "quality_settings": {"bitrate_kbps": 100}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let current = app.get(&path, &t).await;
    assert_eq!(current.body["title"], "New title");

    app.post(&format!("{path}/start"), &t, json!({})).await;
    let reply = app
        .call(
            "PUT",
            &path,
            Some(&t),
            Some(json!({"scheduled_at": future(1)})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a live stream has no schedule to move"
    );
    let reply = app
        .call(
            "PUT",
            &path,
            Some(&t),
            Some(json!({"quality_settings": {"resolution": "4K"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["quality_settings"]["resolution"], "4K");
}

#[tokio::test]
async fn concurrent_starts_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, _) = app.stream(&t, json!({})).await;
    let path = format!("/api/livestream/{id}/start");
    let replies = futures::future::join_all((0..20).map(|_| app.post(&path, &t, json!({})))).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let conflicts = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflicts), (1, 19));
}

#[tokio::test]
async fn private_streams_are_seen_by_enrolled_students_the_instructor_and_admins() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (id, course) = app.live_stream(&t, json!({"is_public": false})).await;
    app.enroll(&t, &course, "s-in").await;
    let path = format!("/api/livestream/{id}");

    assert_eq!(
        app.get(&path, &student("s-in")).await.status,
        StatusCode::OK
    );
    assert_eq!(app.get(&path, &t).await.status, StatusCode::OK);
    assert_eq!(app.get(&path, &admin("a1")).await.status, StatusCode::OK);
    let reply = app.get(&path, &student("s-out")).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "stream_private")
    );
    let reply = app.get(&path, &teacher("t2")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let listed = |reply: crate::helpers::Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        listed(app.get("/api/livestream/active", &student("s-in")).await),
        [id.as_str()]
    );
    assert_eq!(
        listed(app.get("/api/livestream/active", &admin("a1")).await),
        [id.as_str()]
    );
    assert!(listed(app.get("/api/livestream/active", &student("s-out")).await).is_empty());
}

#[tokio::test]
async fn active_lists_only_live_streams_newest_first_with_a_cursor() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let mut live = Vec::new();
    for _ in 0..5 {
        live.push(app.live_stream(&t, json!({})).await.0);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (scheduled, _) = app.stream(&t, json!({})).await;
    let ended = live.remove(0);
    app.post(&format!("/api/livestream/{ended}/stop"), &t, json!({}))
        .await;

    let s = student("s1");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/livestream/active?limit=2&cursor={c}"),
            None => "/api/livestream/active?limit=2".to_string(),
        };
        let reply = app.get(&path, &s).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        for item in reply.body["items"].as_array().unwrap() {
            assert!(item.get("stream_key").is_none());
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut expected = live.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    assert!(!seen.contains(&scheduled) && !seen.contains(&ended));

    let reply = app.get("/api/livestream/active?cursor=garbage", &s).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "invalid_cursor")
    );
    let reply = app.get("/api/livestream/active?limit=1000", &s).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn mine_lists_a_teachers_streams_in_every_status() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let (a, _) = app.stream(&t, json!({})).await;
    let (b, _) = app.live_stream(&t, json!({})).await;
    let (c, _) = app.stream(&t, json!({})).await;
    app.post(&format!("/api/livestream/{c}/cancel"), &t, json!({}))
        .await;
    app.stream(&teacher("t2"), json!({})).await;

    let reply = app.get("/api/livestream/mine", &t).await;
    let items = reply.body["items"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [c.as_str(), b.as_str(), a.as_str()]);
    assert!(
        items.iter().all(|s| s["stream_key"].is_string()),
        "the owner sees keys"
    );
    let statuses: Vec<&str> = items
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["cancelled", "live", "scheduled"]);

    let reply = app.get("/api/livestream/mine", &student("s1")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // A cursor from one teacher's listing cannot page through another's.
    let first = app.get("/api/livestream/mine?limit=1", &t).await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let reply = app
        .get(
            &format!("/api/livestream/mine?cursor={cursor}"),
            &teacher("t2"),
        )
        .await;
    assert_eq!(reply.code(), "invalid_cursor");
}
