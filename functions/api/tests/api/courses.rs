use http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, student, teacher};

#[tokio::test]
async fn teachers_create_courses_and_enroll_students() {
    let app = TestApp::spawn().await;
    let t = teacher("t1");
    let course = app.course(&t).await;

    let path = format!("/api/courses/{course}/enrollments");
    let reply = app.post(&path, &t, json!({"user_id": "s1"})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["user_id"], "s1");
    let again = app.post(&path, &t, json!({"user_id": "s1"})).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "enrolling twice is idempotent"
    );
    assert_eq!(again.body["enrolled_at"], reply.body["enrolled_at"]);

    let mine = app.get("/api/courses/mine", &student("s1")).await;
    let ids: Vec<&str> = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [course.as_str()]);
    let taught = app.get("/api/courses/mine", &t).await;
    assert_eq!(taught.body["items"][0]["teacher_id"], "t1");
    assert!(
        app.get("/api/courses/mine", &student("s2")).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn only_the_courses_teacher_enrolls() {
    let app = TestApp::spawn().await;
    let course = app.course(&teacher("t1")).await;
    let path = format!("/api/courses/{course}/enrollments");
    let reply = app
        .post(&path, &teacher("t2"), json!({"user_id": "s1"}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "not_course_teacher")
    );
    let reply = app
        .post(&path, &student("s1"), json!({"user_id": "s1"}))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app
        .post(&path, &teacher("t1"), json!({"user_id": "bad#id"}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = app
        .post(
            "/api/courses/01J00000000000000000000000/enrollments",
            &teacher("t1"),
            json!({"user_id": "s1"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        app.get("/api/courses/mine", &student("s1")).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn students_cannot_create_courses_and_titles_are_validated() {
    let app = TestApp::spawn().await;
    let reply = app
        .post("/api/courses", &student("s1"), json!({"title": "Mine"}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "teacher_only")
    );
    let reply = app
        .post("/api/courses", &teacher("t1"), json!({"title": "   "}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}
