//! Listing a stream's connections against the embedded DynamoDB.

use futures::future::join_all;
use livestream::auth::Role;
use livestream::model::connection::CONNECTION_TTL_SECS;
use livestream::model::{Connection, Recipient};
use livestream::testing::{TestEnv, teacher_stream};

#[tokio::test]
async fn recipients_are_every_connection_across_pages_with_what_delivery_needs() {
    let env = TestEnv::start().await;
    let store = env.store();
    let stream = teacher_stream(store, true, true).await;
    let other = teacher_stream(store, true, true).await;
    let now = chrono::Utc::now();
    // More than the 1,000 connections of one page.
    let connection = |i: usize, stream_id: &str| Connection {
        connection_id: format!("c{i}-{stream_id}"),
        stream_id: stream_id.to_string(),
        user_id: format!("u{i}"),
        role: if i.is_multiple_of(100) {
            Role::Teacher
        } else {
            Role::Student
        },
        display_name: format!("User {i}"),
        is_staff: i.is_multiple_of(100),
        connected_at: now,
        private_ok: i.is_multiple_of(3),
        ttl: now.timestamp() + CONNECTION_TTL_SECS,
    };
    let writes = (0..1005)
        .map(|i| connection(i, &stream.id))
        .chain((0..3).map(|i| connection(i, &other.id)))
        .collect::<Vec<_>>();
    for written in join_all(writes.iter().map(|c| store.put_connection(c))).await {
        written.unwrap();
    }

    let recipients = store.stream_recipients(&stream.id).await.unwrap();
    let connections = store.stream_connections(&stream.id).await.unwrap();
    assert_eq!(connections.len(), 1005);
    let expected: Vec<Recipient> = connections.iter().map(Recipient::from).collect();
    assert_eq!(
        recipients, expected,
        "the same connections, in the same order"
    );
    assert_eq!(recipients.iter().filter(|r| r.is_staff).count(), 11);
    assert_eq!(recipients.iter().filter(|r| r.private_ok).count(), 335);
}
