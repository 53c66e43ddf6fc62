use futures::future::join_all;
use livestream::auth::Role;
use livestream::testing::token;

use crate::helpers::{WsApp, query};

#[tokio::test]
async fn connecting_records_the_connection_and_counts_the_viewer_once_per_user() {
    let app = WsApp::spawn().await;
    let stream = app.stream(true, true).await;
    let s1 = token("s1", Role::Student);
    assert_eq!(app.connect("c1", &query(&s1, &stream.id)).await, 200);
    assert_eq!(app.connect("c2", &query(&s1, &stream.id)).await, 200);
    let conn = app.store().connection("c1").await.unwrap().unwrap();
    assert_eq!(
        (conn.user_id.as_str(), conn.stream_id.as_str()),
        ("s1", stream.id.as_str())
    );
    assert!(conn.ttl > chrono::Utc::now().timestamp() + 7200);
    assert_eq!(
        app.reload(&stream).await.viewer_count,
        1,
        "two tabs, one viewer"
    );

    assert_eq!(app.disconnect("c1").await, 200);
    assert_eq!(app.reload(&stream).await.viewer_count, 1);
    assert_eq!(app.disconnect("c2").await, 200);
    let after = app.reload(&stream).await;
    assert_eq!(
        (after.viewer_count, after.unique_viewers, after.max_viewers),
        (0, 1, 1)
    );
    assert!(app.store().connection("c1").await.unwrap().is_none());
    assert_eq!(
        app.disconnect("c2").await,
        200,
        "a repeated $disconnect is harmless"
    );
    assert_eq!(app.reload(&stream).await.viewer_count, 0);
}

#[tokio::test]
async fn refused_connections_store_nothing() {
    let app = WsApp::spawn().await;
    let private = app.stream(true, false).await;
    let s1 = token("s1", Role::Student);
    assert_eq!(
        app.connect("c1", &format!("stream_id={}", private.id))
            .await,
        401
    );
    assert_eq!(
        app.connect("c2", &query("not-a-jwt", &private.id)).await,
        401
    );
    assert_eq!(
        app.connect("c3", &query(&s1, &private.id)).await,
        403,
        "not enrolled"
    );
    assert_eq!(
        app.connect("c4", &query(&s1, "01J00000000000000000000000"))
            .await,
        404
    );
    assert_eq!(app.connect("c5", &format!("token={s1}")).await, 400);
    for id in ["c1", "c2", "c3", "c4", "c5"] {
        assert!(app.store().connection(id).await.unwrap().is_none(), "{id}");
    }
    let after = app.reload(&private).await;
    assert_eq!((after.viewer_count, after.unique_viewers), (0, 0));
}

#[tokio::test]
async fn enrolled_students_and_the_instructor_may_watch_private_streams() {
    let app = WsApp::spawn().await;
    let private = app.stream(true, false).await;
    let enrollment = livestream::model::Enrollment {
        course_id: private.course_id.clone(),
        user_id: "s-in".into(),
        enrolled_by: "teacher-1".into(),
        enrolled_at: livestream::model::now(),
    };
    app.store().enroll(&enrollment).await.unwrap();
    assert_eq!(
        app.connect("c1", &query(&token("s-in", Role::Student), &private.id))
            .await,
        200
    );
    assert_eq!(
        app.connect(
            "c2",
            &query(&token("teacher-1", Role::Teacher), &private.id)
        )
        .await,
        200
    );
    assert!(
        app.store()
            .connection("c2")
            .await
            .unwrap()
            .unwrap()
            .is_staff
    );
    assert_eq!(
        app.reload(&private).await.viewer_count,
        1,
        "the instructor is not a viewer"
    );
}

#[tokio::test]
async fn connecting_before_the_start_waits_without_counting() {
    let app = WsApp::spawn().await;
    let stream = app.stream(false, true).await;
    assert_eq!(
        app.connect("c1", &query(&token("s1", Role::Student), &stream.id))
            .await,
        200
    );
    assert_eq!(app.reload(&stream).await.viewer_count, 0);
    let teacher = livestream::testing::identity("teacher-1", Role::Teacher);
    livestream::service::streams::start(app.store(), &teacher, &stream.id)
        .await
        .unwrap();
    livestream::service::connections::enter_waiting_connections(app.store(), &stream.id)
        .await
        .unwrap();
    assert_eq!(app.reload(&stream).await.viewer_count, 1);
    assert_eq!(app.disconnect("c1").await, 200);
    assert_eq!(app.reload(&stream).await.viewer_count, 0);
}

#[tokio::test]
async fn many_users_connecting_and_disconnecting_at_once_leave_exact_counts() {
    let app = WsApp::spawn().await;
    let stream = app.stream(true, true).await;
    let tokens: Vec<String> = (0..40)
        .map(|i| token(&format!("s{i}"), Role::Student))
        .collect();
    let queries: Vec<String> = tokens.iter().map(|t| query(t, &stream.id)).collect();
    let connects = queries.iter().enumerate().flat_map(|(i, q)| {
        let app = &app;
        [0, 1].map(move |tab| async move { app.connect(&format!("c{i}-{tab}"), q).await })
    });
    assert!(join_all(connects).await.iter().all(|s| *s == 200));
    assert_eq!(app.reload(&stream).await.viewer_count, 40);
    // Every user closes one tab; users 0..10 close both.
    let closes = (0..40).flat_map(|i| {
        let app = &app;
        let tabs: Vec<u32> = if i < 10 { vec![0, 1] } else { vec![0] };
        tabs.into_iter()
            .map(move |tab| async move { app.disconnect(&format!("c{i}-{tab}")).await })
    });
    join_all(closes).await;
    let after = app.reload(&stream).await;
    assert_eq!(
        (after.viewer_count, after.max_viewers, after.unique_viewers),
        (30, 40, 40)
    );
}
