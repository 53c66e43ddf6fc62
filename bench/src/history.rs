//! A store file with a long history: chat sends and idle change-stream polls against
//! a table already holding 0, 10,000 and 100,000 items (each write also left a change
//! record), on disk as the local stack keeps it.

use std::time::Instant;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use livestream::apigw::{HttpRequestSpec, http_request};
use livestream::auth::Role;
use livestream::embedded::EmbeddedDynamo;
use livestream::store::{n, s};
use livestream::testing::{TestEnv, teacher_stream, token};

use crate::Row;

const CHATS: usize = 300;
const POLLS: usize = 300;

/// Writes `count` chat-sized items of other streams with BatchWriteItem.
async fn fill(env: &TestEnv, count: usize) {
    let client = env.dynamo.client();
    let table = env.store().table().to_string();
    let text = "x".repeat(200);
    let batches: Vec<Vec<WriteRequest>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(25)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| {
                    let item = [
                        ("PK", s(format!("STREAM#history-{}", i / 1000))),
                        ("SK", s(format!("CHAT#{i:012}"))),
                        ("kind", s("filler")),
                        ("message", s(text.clone())),
                        ("seq", n(i)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                        .build()
                })
                .collect()
        })
        .collect();
    let writes = futures::stream::iter(batches.into_iter().map(|batch| {
        let client = client.clone();
        let table = table.clone();
        async move {
            client
                .batch_write_item()
                .request_items(table, batch)
                .send()
                .await
                .expect("filler batch is written");
        }
    }));
    use futures::StreamExt;
    writes.buffer_unordered(8).collect::<Vec<()>>().await;
}

async fn chat_sends(env: &TestEnv, label: &str) -> Row {
    let stream = teacher_stream(env.store(), true, true).await;
    let bearer = format!(
        "Bearer {}",
        token(livestream::testing::TEACHER, Role::Teacher)
    );
    let path = format!("/api/livestream/{}/chat", stream.id);
    let mut latencies = Vec::with_capacity(CHATS);
    let started = Instant::now();
    for i in 0..CHATS {
        let body = format!(r#"{{"message":"message {i}"}}"#);
        let request = http_request(&HttpRequestSpec {
            method: "POST",
            route_path: "/api/livestream/{id}/chat",
            path: &path,
            path_parameters: vec![("id".into(), stream.id.clone())],
            headers: vec![("authorization".into(), bearer.clone())],
            body: Some(&body),
            ..Default::default()
        });
        let start = Instant::now();
        let response = livestream_api::invoke("send-chat-message", &env.state, request)
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "chat is accepted");
        latencies.push(start.elapsed());
    }
    Row {
        name: format!("{label}: chat send (sequential)"),
        ops: CHATS,
        elapsed: started.elapsed(),
        latencies,
    }
}

async fn idle_polls(env: &TestEnv, label: &str) -> Row {
    let mut reader = env.change_stream().await;
    reader.drain().await.unwrap();
    let mut latencies = Vec::with_capacity(POLLS);
    let started = Instant::now();
    for _ in 0..POLLS {
        let start = Instant::now();
        let records = reader.next_records(1000).await.unwrap();
        assert!(records.is_empty(), "nothing is written meanwhile");
        latencies.push(start.elapsed());
    }
    Row {
        name: format!("{label}: idle change-stream poll"),
        ops: POLLS,
        elapsed: started.elapsed(),
        latencies,
    }
}

/// Rows for each history size, with the store file indexed as the local stack opens
/// it; and, for comparison, 10,000 items in a file opened without the indexes.
pub async fn rows() -> Vec<Row> {
    let dir = std::env::temp_dir().join(format!("livestream-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rows = Vec::new();
    for (items, indexed) in [(0, true), (10_000, true), (100_000, true), (10_000, false)] {
        let path = dir.join(format!("history-{items}-{indexed}.db"));
        let db = if indexed {
            livestream::embedded::open_file(&path).unwrap()
        } else {
            dynoxide::Database::new(&path.to_string_lossy()).unwrap()
        };
        let dynamo = EmbeddedDynamo::serve(db, "127.0.0.1:0").await.unwrap();
        let env = TestEnv::on(dynamo).await;
        // Filled and measured with the store's commits as the local stack makes them
        // (handed to the OS, no fsync), so filling takes seconds, not minutes.
        let fill_started = Instant::now();
        fill(&env, items).await;
        let fill_time = fill_started.elapsed();
        let label = format!(
            "{}k items on disk{}",
            items / 1000,
            if indexed { "" } else { ", store unindexed" }
        );
        rows.push(chat_sends(&env, &label).await);
        rows.push(idle_polls(&env, &label).await);
        if items > 0 {
            rows.push(Row {
                name: format!("{label}: filling (BatchWriteItem)"),
                ops: items,
                elapsed: fill_time,
                latencies: Vec::new(),
            });
        }
        env.dynamo.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    rows
}
