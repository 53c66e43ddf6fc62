//! Presence accounting against the embedded DynamoDB, under concurrency.

use futures::future::join_all;
use livestream::auth::Role;
use livestream::model::{Session, Stream};
use livestream::service::{presence, streams};
use livestream::store::Store;
use livestream::testing::{TestEnv, identity, teacher_stream};

async fn live_stream(store: &Store) -> Stream {
    teacher_stream(store, true, true).await
}

async fn reload(store: &Store, stream: &Stream) -> Stream {
    store.stream(&stream.id).await.unwrap().unwrap()
}

#[tokio::test]
async fn joining_twice_is_one_viewer_and_leaving_twice_is_harmless() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = live_stream(store).await;
    let s1 = identity("s1", Role::Student);
    presence::enter(store, &s1, &stream, &Session::Http)
        .await
        .unwrap();
    presence::enter(store, &s1, &stream, &Session::Http)
        .await
        .unwrap();
    let now = reload(store, &stream).await;
    assert_eq!(
        (now.viewer_count, now.unique_viewers, now.max_viewers),
        (1, 1, 1)
    );

    presence::exit(store, &stream.id, "s1", &Session::Http)
        .await
        .unwrap();
    presence::exit(store, &stream.id, "s1", &Session::Http)
        .await
        .unwrap();
    let now = reload(store, &stream).await;
    assert_eq!(
        (now.viewer_count, now.unique_viewers, now.max_viewers),
        (0, 1, 1)
    );

    let back = presence::enter(store, &s1, &stream, &Session::Http)
        .await
        .unwrap()
        .unwrap();
    assert!(back.is_watching);
    let now = reload(store, &stream).await;
    assert_eq!(
        (now.viewer_count, now.unique_viewers),
        (1, 1),
        "a returning user is not a new unique viewer"
    );
}

#[tokio::test]
async fn several_tabs_count_once_until_the_last_one_closes() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = live_stream(store).await;
    let s1 = identity("s1", Role::Student);
    let tabs: Vec<Session> = (0..3)
        .map(|i| Session::Connection(format!("c{i}")))
        .collect();
    for tab in &tabs {
        presence::enter(store, &s1, &stream, tab).await.unwrap();
    }
    assert_eq!(reload(store, &stream).await.viewer_count, 1);
    presence::exit(store, &stream.id, "s1", &tabs[0])
        .await
        .unwrap();
    presence::exit(store, &stream.id, "s1", &tabs[1])
        .await
        .unwrap();
    assert_eq!(reload(store, &stream).await.viewer_count, 1);
    let p = presence::exit(store, &stream.id, "s1", &tabs[2])
        .await
        .unwrap()
        .unwrap();
    assert!(!p.is_watching);
    assert!(p.left_at.is_some());
    assert_eq!(reload(store, &stream).await.viewer_count, 0);
}

#[tokio::test]
async fn the_instructor_is_not_counted_and_only_live_streams_can_be_joined() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = live_stream(store).await;
    let teacher = identity("teacher-1", Role::Teacher);
    assert!(
        presence::enter(store, &teacher, &stream, &Session::Http)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(reload(store, &stream).await.viewer_count, 0);

    let ended = streams::stop(store, None, &teacher, &stream.id)
        .await
        .unwrap();
    let err = presence::enter(
        store,
        &identity("s1", Role::Student),
        &ended,
        &Session::Http,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "stream_finished");
    // The stream ended after the caller loaded it: the transaction's condition refuses.
    let err = presence::enter(
        store,
        &identity("s2", Role::Student),
        &stream,
        &Session::Http,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "stream_finished");
    let after = reload(store, &stream).await;
    assert_eq!((after.viewer_count, after.unique_viewers), (0, 0));
}

#[tokio::test]
async fn a_hundred_concurrent_joins_and_leaves_leave_the_count_exact() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = live_stream(store).await;
    let users: Vec<_> = (0..100)
        .map(|i| identity(&format!("s{i}"), Role::Student))
        .collect();
    // Everyone joins, then half leave while the other half join again: 100 concurrent ops.
    join_all(
        users
            .iter()
            .map(|u| presence::enter(store, u, &stream, &Session::Http)),
    )
    .await
    .into_iter()
    .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    let ops = users.iter().enumerate().map(|(i, u)| {
        let stream = &stream;
        async move {
            if i % 2 == 0 {
                presence::exit(store, &stream.id, &u.user_id, &Session::Http)
                    .await
                    .map(|_| ())
            } else {
                presence::enter(store, u, stream, &Session::Http)
                    .await
                    .map(|_| ())
            }
        }
    });
    for r in join_all(ops).await {
        assert!(r.is_ok(), "{r:?}");
    }
    let after = reload(store, &stream).await;
    assert_eq!(after.viewer_count, 50);
    assert_eq!(after.unique_viewers, 100);
    assert_eq!(after.max_viewers, 100);
    let watching = store
        .all_participants(&stream.id)
        .await
        .unwrap()
        .iter()
        .filter(|p| p.is_watching)
        .count();
    assert_eq!(watching, 50);
}

#[tokio::test]
async fn concurrent_joins_and_leaves_of_one_user_across_tabs_stay_consistent() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = live_stream(store).await;
    let s1 = identity("s1", Role::Student);
    let tabs: Vec<Session> = (0..10)
        .map(|i| Session::Connection(format!("c{i}")))
        .collect();
    for r in join_all(tabs.iter().map(|t| presence::enter(store, &s1, &stream, t))).await {
        r.unwrap();
    }
    assert_eq!(reload(store, &stream).await.viewer_count, 1);
    for r in join_all(
        tabs.iter()
            .map(|t| presence::exit(store, &stream.id, "s1", t)),
    )
    .await
    {
        r.unwrap();
    }
    let after = reload(store, &stream).await;
    assert_eq!(
        (after.viewer_count, after.max_viewers, after.unique_viewers),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn the_peak_survives_a_fall_in_viewers() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = live_stream(store).await;
    for i in 0..5 {
        presence::enter(
            store,
            &identity(&format!("s{i}"), Role::Student),
            &stream,
            &Session::Http,
        )
        .await
        .unwrap();
    }
    for i in 0..4 {
        presence::exit(store, &stream.id, &format!("s{i}"), &Session::Http)
            .await
            .unwrap();
    }
    presence::enter(
        store,
        &identity("s9", Role::Student),
        &stream,
        &Session::Http,
    )
    .await
    .unwrap();
    let after = reload(store, &stream).await;
    assert_eq!(
        (after.viewer_count, after.max_viewers, after.unique_viewers),
        (2, 5, 6)
    );
}

#[tokio::test]
async fn the_last_websocket_closing_ends_presence_even_with_an_http_join_open() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = live_stream(store).await;
    let s1 = identity("s1", Role::Student);
    let tab = Session::Connection("c1".into());
    presence::enter(store, &s1, &stream, &Session::Http)
        .await
        .unwrap();
    presence::enter(store, &s1, &stream, &tab).await.unwrap();
    assert_eq!(reload(store, &stream).await.viewer_count, 1);
    // A closed browser tab never calls leave; its socket closing is what counts.
    let p = presence::exit(store, &stream.id, "s1", &tab)
        .await
        .unwrap()
        .unwrap();
    assert!(!p.is_watching);
    assert!(p.sessions.is_empty());
    assert_eq!(reload(store, &stream).await.viewer_count, 0);

    // Leaving over HTTP while a socket is open keeps the user watching.
    presence::enter(store, &s1, &stream, &Session::Http)
        .await
        .unwrap();
    presence::enter(store, &s1, &stream, &tab).await.unwrap();
    presence::exit(store, &stream.id, "s1", &Session::Http)
        .await
        .unwrap();
    assert_eq!(reload(store, &stream).await.viewer_count, 1);
    presence::exit(store, &stream.id, "s1", &tab).await.unwrap();
    let after = reload(store, &stream).await;
    assert_eq!(
        (after.viewer_count, after.unique_viewers, after.max_viewers),
        (0, 1, 1)
    );
}
