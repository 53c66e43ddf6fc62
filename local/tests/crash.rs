//! A class writing at full speed while the stack is killed (`kill -9`) or stopped
//! (SIGTERM): what was acknowledged is there after the restart, and every count the
//! stream and its final statistics give equals the items stored.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, TEACHER, spawn_stack, token};
use livestream::auth::Role;
use serde_json::{Value, json};

const STUDENTS: usize = 30;

fn student(i: usize) -> String {
    format!("crash-student-{i}")
}

/// What the class was told was stored.
#[derive(Clone, Default)]
struct Acknowledged {
    chat_seqs: Vec<i64>,
}

/// Every student sends chat and votes (up, withdrawn, up again) as fast as answers
/// come, until the stack stops answering.
fn class_burst(
    base: &str,
    stream_id: &str,
    question_id: &str,
    acked: Arc<Mutex<Acknowledged>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..STUDENTS)
        .map(|i| {
            let http = reqwest::Client::new();
            let chat = format!("{base}/api/livestream/{stream_id}/chat");
            let vote = format!("{base}/api/livestream/{stream_id}/questions/{question_id}/upvote");
            let bearer = token(&student(i), Role::Student);
            let acked = acked.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let sent = http
                        .post(&chat)
                        .bearer_auth(&bearer)
                        .json(&json!({ "message": format!("{i}/{n}") }))
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    if response.status().as_u16() == 201 {
                        let Ok(message) = response.json::<Value>().await else {
                            return;
                        };
                        acked
                            .lock()
                            .unwrap()
                            .chat_seqs
                            .push(message["seq"].as_i64().unwrap());
                    }
                    let method = if n % 2 == 0 {
                        reqwest::Method::POST
                    } else {
                        reqwest::Method::DELETE
                    };
                    if http
                        .request(method, &vote)
                        .bearer_auth(&bearer)
                        .send()
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        })
        .collect()
}

async fn join_class(api: &Client, stream_id: &str) {
    for i in 0..STUDENTS {
        let (status, body) = api
            .call(
                "POST",
                &format!("/api/livestream/{stream_id}/join"),
                &token(&student(i), Role::Student),
                None,
            )
            .await;
        assert!(status == 200 || status == 201, "join: {status} {body}");
    }
}

/// Every chat message stored, read as the instructor: their numbers.
async fn stored_chat(api: &Client, stream_id: &str) -> Vec<i64> {
    let teacher = token(TEACHER, Role::Teacher);
    let mut seqs = Vec::new();
    let mut since = 0;
    loop {
        let (status, page) = api
            .call(
                "GET",
                &format!("/api/livestream/{stream_id}/chat?since={since}&limit=100"),
                &teacher,
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        seqs.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["seq"].as_i64().unwrap()),
        );
        let last = page["last_seq"].as_i64().unwrap();
        if last == since {
            return seqs;
        }
        since = last;
    }
}

/// The upvotes on the stream's questions, as the instructor reads them.
async fn question_upvotes(api: &Client, stream_id: &str) -> (i64, i64) {
    let teacher = token(TEACHER, Role::Teacher);
    let (status, page) = api
        .call(
            "GET",
            &format!("/api/livestream/{stream_id}/questions?limit=100"),
            &teacher,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    let upvotes = items.iter().map(|q| q["upvotes"].as_i64().unwrap()).sum();
    (items.len() as i64, upvotes)
}

/// After a restart: nothing acknowledged is missing, no number holds readers back,
/// and the stream's counters equal the items.
async fn assert_counts_equal_items(api: &Client, stream_id: &str, acked: &Acknowledged) {
    let stored = stored_chat(api, stream_id).await;
    for seq in &acked.chat_seqs {
        assert!(
            stored.contains(seq),
            "acknowledged message {seq} is missing"
        );
    }
    let stream = api.stream(stream_id).await;
    assert_eq!(
        stream["chat_messages_count"],
        stored.len() as i64,
        "{stream}"
    );
    let (questions, upvotes) = question_upvotes(api, stream_id).await;
    assert_eq!(stream["questions_count"], questions, "{stream}");
    assert_eq!(stream["upvotes_count"], upvotes, "{stream}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_class_killed_three_times_mid_burst_ends_with_stats_equal_to_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = spawn_stack(dir.path()).await;
    let api = Client::new(&stack.http);
    let stream_id = api.live_stream(true, &[]).await;
    join_class(&api, &stream_id).await;
    let (status, question) = api
        .call(
            "POST",
            &format!("/api/livestream/{stream_id}/questions"),
            &token(&student(0), Role::Student),
            Some(json!({ "text": "Will this survive a crash?" })),
        )
        .await;
    assert_eq!(status, 201, "{question}");
    let question_id = question["id"].as_str().unwrap().to_string();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));

    for round in 0..3 {
        let burst = class_burst(&stack.http, &stream_id, &question_id, acked.clone());
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        stack.kill();
        for task in burst {
            task.await.unwrap();
        }
        stack = spawn_stack(dir.path()).await;
        let api = Client::new(&stack.http);
        let so_far = acked.lock().unwrap().clone();
        assert_counts_equal_items(&api, &stream_id, &so_far).await;
        // The class goes on after the restart: students join again.
        join_class(&api, &stream_id).await;
    }
    let acked = acked.lock().unwrap().chat_seqs.len();
    assert!(acked > 50, "the bursts wrote only {acked} messages");

    let api = Client::new(&stack.http);
    let ended = api.stop(&stream_id).await;
    let stored = stored_chat(&api, &stream_id).await;
    let (questions, upvotes) = question_upvotes(&api, &stream_id).await;
    let (status, stats) = api
        .call(
            "GET",
            &format!("/api/livestream/{stream_id}/stats"),
            &token(TEACHER, Role::Teacher),
            None,
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    for figures in [&ended, &stats] {
        assert_eq!(
            figures["chat_messages_count"],
            stored.len() as i64,
            "{figures}"
        );
        assert_eq!(figures["questions_count"], questions, "{figures}");
        assert_eq!(figures["upvotes_count"], upvotes, "{figures}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_the_requests_in_flight_before_the_stack_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = spawn_stack(dir.path()).await;
    let api = Client::new(&stack.http);
    let stream_id = api.live_stream(true, &[]).await;
    join_class(&api, &stream_id).await;
    let (_, question) = api
        .call(
            "POST",
            &format!("/api/livestream/{stream_id}/questions"),
            &token(&student(0), Role::Student),
            Some(json!({ "text": "Does a clean stop lose anything?" })),
        )
        .await;
    let question_id = question["id"].as_str().unwrap().to_string();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));

    let burst = class_burst(&stack.http, &stream_id, &question_id, acked.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = stack.terminate();
    assert!(status.success(), "the stack exited with {status}");
    for task in burst {
        task.await.unwrap();
    }

    stack = spawn_stack(dir.path()).await;
    let api = Client::new(&stack.http);
    let stored = stored_chat(&api, &stream_id).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.chat_seqs.len() > 20,
        "the burst wrote only {}",
        acked.chat_seqs.len()
    );
    // Every number taken was written: a drained request leaves no gap behind, not even
    // after the last message.
    let taken = api.stream(&stream_id).await["chat_seq"].as_i64().unwrap();
    let expected: Vec<i64> = (1..=taken).collect();
    assert_eq!(stored, expected);
    assert_counts_equal_items(&api, &stream_id, &acked).await;
}
