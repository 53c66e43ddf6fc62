//! `cargo run --profile local -p livestream-bench`: measures the hot paths against the
//! embedded DynamoDB on loopback and prints a table. Numbers are for this machine and
//! the embedded store (one SQLite writer); DynamoDB itself scales writes across items.

mod cold_start;
mod cost;
mod fanout_sim;
mod history;
mod live;
mod peer;
mod video;

use std::time::{Duration, Instant};

use futures::future::join_all;
use livestream::apigw::{HttpRequestSpec, http_request};
use livestream::auth::Role;
use livestream::model::{Session, Stream};
use livestream::service::{connections, presence, questions, streams};
use livestream::testing::{RecordingManagementApi, TestEnv, identity, teacher_stream, token};
use livestream_broadcast::BroadcastState;

// The allocator `cargo run -p local` runs with (local/src/main.rs), so the figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub(crate) struct Row {
    name: String,
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Row {
    fn print(&self) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| -> String {
            if l.is_empty() {
                return "-".into();
            }
            let i = ((l.len() as f64 - 1.0) * p).round() as usize;
            format!("{:.2}", l[i].as_secs_f64() * 1000.0)
        };
        println!(
            "| {:<60} | {:>7} | {:>9.0} | {:>8} | {:>8} |",
            self.name,
            self.ops,
            self.ops as f64 / self.elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99)
        );
    }
}

async fn timed<F: std::future::Future<Output = ()>>(f: F) -> Duration {
    let start = Instant::now();
    f.await;
    start.elapsed()
}

async fn live_stream(env: &TestEnv) -> Stream {
    teacher_stream(env.store(), true, true).await
}

/// GET /api/livestream/{id} through the handler, one request at a time.
async fn get_stream_latency(env: &TestEnv, stream: &Stream, n: usize) -> Row {
    let bearer = format!("Bearer {}", token("s1", Role::Student));
    let path = format!("/api/livestream/{}", stream.id);
    let mut latencies = Vec::with_capacity(n);
    let elapsed = timed(async {
        for _ in 0..n {
            let req = http_request(&HttpRequestSpec {
                method: "GET",
                route_path: "/api/livestream/{id}",
                path: &path,
                path_parameters: vec![("id".into(), stream.id.clone())],
                headers: vec![("authorization".into(), bearer.clone())],
                ..Default::default()
            });
            let start = Instant::now();
            let response = livestream_api::invoke("get-stream", &env.state, req)
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            latencies.push(start.elapsed());
        }
    })
    .await;
    Row {
        name: "get-stream handler (sequential)".into(),
        ops: n,
        elapsed,
        latencies,
    }
}

/// Distinct users joining at once, then leaving at once.
async fn presence_concurrency(env: &TestEnv, n: usize) -> Vec<Row> {
    let stream = live_stream(env).await;
    let users: Vec<_> = (0..n)
        .map(|i| identity(&format!("u{i}"), Role::Student))
        .collect();
    let mut rows = Vec::new();
    for (name, joining) in [
        ("join (distinct users, all at once)", true),
        ("leave (distinct users, all at once)", false),
    ] {
        let started = Instant::now();
        let latencies = join_all(users.iter().map(|u| {
            let stream = &stream;
            async move {
                let start = Instant::now();
                if joining {
                    presence::enter(env.store(), u, stream, &Session::Http)
                        .await
                        .unwrap();
                } else {
                    presence::exit(env.store(), &stream.id, &u.user_id, &Session::Http)
                        .await
                        .unwrap();
                }
                start.elapsed()
            }
        }))
        .await;
        rows.push(Row {
            name: name.into(),
            ops: n,
            elapsed: started.elapsed(),
            latencies,
        });
    }
    let after = env.store().stream(&stream.id).await.unwrap().unwrap();
    assert_eq!(
        (after.viewer_count, after.max_viewers, after.unique_viewers),
        (0, n as i64, n as i64)
    );
    rows
}

/// `n` joined students asking at once, then upvoting one question at once.
async fn question_concurrency(env: &TestEnv, n: usize) -> Vec<Row> {
    let stream = live_stream(env).await;
    let students: Vec<_> = (0..n)
        .map(|i| identity(&format!("q{i}"), Role::Student))
        .collect();
    for who in &students {
        presence::enter(env.store(), who, &stream, &Session::Http)
            .await
            .unwrap();
    }
    let asked = Instant::now();
    let asks = join_all(students.iter().map(|who| {
        let stream = &stream;
        async move {
            let start = Instant::now();
            let input = serde_json::from_value(serde_json::json!({ "text": "why?" })).unwrap();
            let question = questions::ask(env.store(), who, &stream.id, input)
                .await
                .unwrap();
            (
                start.elapsed(),
                question["id"].as_str().unwrap().to_string(),
            )
        }
    }))
    .await;
    let asked = asked.elapsed();
    let popular = asks[0].1.clone();
    let voted = Instant::now();
    let votes = join_all(students.iter().skip(1).map(|who| {
        let (stream, popular) = (&stream, &popular);
        async move {
            let start = Instant::now();
            questions::upvote(env.store(), who, &stream.id, popular)
                .await
                .unwrap();
            start.elapsed()
        }
    }))
    .await;
    let voted = voted.elapsed();
    let after = env.store().stream(&stream.id).await.unwrap().unwrap();
    assert_eq!(
        (after.questions_count, after.upvotes_count),
        (n as i64, n as i64 - 1)
    );
    vec![
        Row {
            name: "ask (distinct joined users, all at once)".into(),
            ops: n,
            elapsed: asked,
            latencies: asks.into_iter().map(|(l, _)| l).collect(),
        },
        Row {
            name: "upvote one question (distinct users, all at once)".into(),
            ops: n - 1,
            elapsed: voted,
            latencies: votes,
        },
    ]
}

/// One change-stream batch fanned out to `n` connections of one stream.
async fn broadcast_fan_out(env: &TestEnv, n: usize) -> Row {
    let stream = live_stream(env).await;
    let management = RecordingManagementApi::start().await;
    let auth = livestream::auth::Authenticator::hs256(livestream::testing::TEST_SECRET, None, None)
        .unwrap();
    for i in 0..n {
        let t = token(&format!("v{i}"), Role::Student);
        connections::connect(
            env.store(),
            &auth,
            &format!("conn-{i}"),
            Some(&t),
            Some(&stream.id),
        )
        .await
        .unwrap();
    }
    let mut reader = env.change_stream().await;
    let teacher = identity("teacher-1", Role::Teacher);
    for i in 0..10 {
        let input = serde_json::from_value(serde_json::json!({"title": format!("t{i}")})).unwrap();
        streams::update(env.store(), None, &teacher, &stream.id, input)
            .await
            .unwrap();
    }
    let event = reader.drain().await.unwrap();
    let state = BroadcastState::new(env.store().clone(), management.connections());
    let started = Instant::now();
    let (_, report) = livestream_broadcast::handle_batch(&state, event).await;
    let elapsed = started.elapsed();
    assert_eq!(
        report.posts, n,
        "one frame per connection for the whole batch"
    );
    Row {
        name: format!("broadcast: 10 events to {n} connections (posts)"),
        ops: report.posts,
        elapsed,
        latencies: vec![elapsed],
    }
}

/// A live class on `base` (the local stack, or the peer, which serves the same fixture
/// routes): the teacher's token, the stream's id and `students` joined students' tokens.
async fn class_on(
    client: &reqwest::Client,
    base: &str,
    students: usize,
) -> (String, String, Vec<String>) {
    let teacher = local::dev_token(local::LOCAL_JWT_SECRET, "teacher-1", Role::Teacher, "T", 1);
    let call = |path: String, token: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let course: serde_json::Value = call(
        "/api/courses".into(),
        &teacher,
        serde_json::json!({"title": "Bench"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let stream: serde_json::Value = call(
        "/api/livestream/".into(),
        &teacher,
        serde_json::json!({"title": "Burst", "course_id": course["id"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = stream["id"].as_str().unwrap().to_string();
    let started = call(
        format!("/api/livestream/{id}/start"),
        &teacher,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    assert!(started.status().is_success(), "the class starts");
    let tokens: Vec<String> = (0..students)
        .map(|i| {
            local::dev_token(
                local::LOCAL_JWT_SECRET,
                &format!("b{i}"),
                Role::Student,
                "B",
                1,
            )
        })
        .collect();
    for joined in join_all(tokens.iter().map(|t| {
        call(
            format!("/api/livestream/{id}/join"),
            t,
            serde_json::json!({}),
        )
    }))
    .await
    {
        assert!(joined.unwrap().status().is_success(), "a student joins");
    }
    (teacher, id, tokens)
}

/// What a burst sends.
#[derive(Clone, Copy, PartialEq)]
enum Load {
    /// `POST .../chat`: 201 expected.
    Chat,
    /// `GET /api/livestream/{id}`: 200 expected.
    GetStream,
}

/// Every student of `tokens` at once, each sending in a loop until `total` requests are
/// done: each request's latency and status (0: no answer), and the time it all took.
/// Like a real HTTP-only client, each student joins again every 20 s (the heartbeat);
/// without it the local stack's sweeper ends their presence after a minute.
async fn burst(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    tokens: &[String],
    total: usize,
    load: Load,
) -> (Vec<(Duration, u16)>, Duration) {
    let per_client = total.div_ceil(tokens.len());
    let heartbeat = async {
        loop {
            tokio::time::sleep(Duration::from_secs(20)).await;
            join_all(tokens.iter().map(|t| {
                client
                    .post(format!("{base}/api/livestream/{id}/join"))
                    .bearer_auth(t)
                    .json(&serde_json::json!({}))
                    .send()
            }))
            .await;
        }
    };
    let started = Instant::now();
    let sends = join_all(tokens.iter().map(|t| async move {
        let mut out = Vec::with_capacity(per_client);
        for i in 0..per_client {
            let request = match load {
                Load::Chat => client
                    .post(format!("{base}/api/livestream/{id}/chat"))
                    .json(&serde_json::json!({"message": format!("message {i}")})),
                Load::GetStream => client.get(format!("{base}/api/livestream/{id}")),
            };
            let start = Instant::now();
            let status = match request.bearer_auth(t).send().await {
                Ok(r) if r.status().is_success() => r.status().as_u16(),
                Ok(r) => {
                    let status = r.status().as_u16();
                    eprintln!("refused: {status} {}", r.text().await.unwrap_or_default());
                    status
                }
                Err(e) => {
                    eprintln!("request failed: {e}");
                    0
                }
            };
            out.push((start.elapsed(), status));
        }
        out
    }));
    let results = tokio::select! {
        results = sends => results,
        () = heartbeat => unreachable!("the heartbeat loops until the sends are done"),
    };
    (results.into_iter().flatten().collect(), started.elapsed())
}

fn burst_row(name: String, results: &[(Duration, u16)], elapsed: Duration) -> Row {
    Row {
        name,
        ops: results.len(),
        elapsed,
        latencies: results.iter().map(|(d, _)| *d).collect(),
    }
}

fn errors_of(results: &[(Duration, u16)], expected: u16) -> usize {
    results.iter().filter(|(_, s)| *s != expected).count()
}

/// Chat sends through the whole local stack over HTTP (as a class's browsers send
/// them), `concurrency` students at once, each sending in a loop until `total` are
/// sent. Counts errors (anything but 201) and checks that the stored numbers are
/// exactly 1..=accepted.
async fn chat_burst(
    client: &reqwest::Client,
    base: &str,
    concurrency: usize,
    total: usize,
) -> (Row, usize) {
    let (teacher, id, students) = class_on(client, base, concurrency).await;
    let (all, elapsed) = burst(client, base, &id, &students, total, Load::Chat).await;
    let errors = errors_of(&all, 201);
    let mut by_status = std::collections::BTreeMap::new();
    for (_, status) in all.iter().filter(|(_, status)| *status != 201) {
        *by_status.entry(*status).or_insert(0usize) += 1;
    }
    if !by_status.is_empty() {
        eprintln!("chat, {concurrency} senders: errors by status {by_status:?}");
    }
    let accepted = all.len() - errors;
    // Every acknowledged message is stored once, numbered 1..=accepted without gaps.
    let mut since = 0;
    loop {
        let page: serde_json::Value = client
            .get(format!(
                "{base}/api/livestream/{id}/chat?since={since}&limit=100"
            ))
            .bearer_auth(&teacher)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        for (i, m) in items.iter().enumerate() {
            assert_eq!(
                m["seq"].as_i64().unwrap(),
                since + 1 + i as i64,
                "a gap in the chat"
            );
        }
        if items.is_empty() {
            break;
        }
        since = page["last_seq"].as_i64().unwrap();
    }
    assert_eq!(
        since as usize, accepted,
        "stored messages differ from acknowledged ones"
    );
    (
        burst_row(
            format!("chat over HTTP, {concurrency} senders at once"),
            &all,
            elapsed,
        ),
        errors,
    )
}

/// One level of the comparison with the peer: req/s, p50 ms and errors of each side.
struct Compared {
    what: &'static str,
    concurrency: usize,
    this: (f64, f64, usize),
    peer: (f64, f64, usize),
}

fn rate_p50(results: &[(Duration, u16)], elapsed: Duration, expected: u16) -> (f64, f64, usize) {
    let mut l: Vec<Duration> = results.iter().map(|(d, _)| *d).collect();
    l.sort();
    let p50 = l.get(l.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    (
        results.len() as f64 / elapsed.as_secs_f64(),
        p50,
        errors_of(results, expected),
    )
}

/// The peer's side of one level, and the same load on the local stack right before it.
async fn compare_level(
    client: &reqwest::Client,
    stack: &str,
    peer: &str,
    concurrency: usize,
    total: usize,
    load: Load,
) -> Compared {
    let mut sides = Vec::new();
    for base in [stack, peer] {
        let (_, id, students) = class_on(client, base, concurrency).await;
        let (results, elapsed) = burst(client, base, &id, &students, total, load).await;
        let expected = if load == Load::Chat { 201 } else { 200 };
        sides.push(rate_p50(&results, elapsed, expected));
    }
    Compared {
        what: if load == Load::Chat {
            "chat POST"
        } else {
            "GET stream"
        },
        concurrency,
        this: sides[0],
        peer: sides[1],
    }
}

fn print_comparison(levels: &[Compared]) {
    println!(
        "\n| {:<10} | {:>7} | {:>10} | {:>10} | {:>6} | {:>13} | {:>13} | {:>13} |",
        "load",
        "clients",
        "this req/s",
        "peer req/s",
        "ratio",
        "this p50 ms",
        "peer p50 ms",
        "errors t / p"
    );
    println!(
        "|{:-<12}|{:->9}|{:->12}|{:->12}|{:->8}|{:->15}|{:->15}|{:->15}|",
        "", "", "", "", "", "", "", ""
    );
    for l in levels {
        println!(
            "| {:<10} | {:>7} | {:>10.0} | {:>10.0} | {:>5.1}x | {:>13.1} | {:>13.1} | {:>13} |",
            l.what,
            l.concurrency,
            l.this.0,
            l.peer.0,
            l.this.0 / l.peer.0.max(f64::EPSILON),
            l.this.1,
            l.peer.1,
            format!("{} / {}", l.this.2, l.peer.2)
        );
    }
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Cold starts of a real function next to a hello-world Lambda built in this run.
async fn cold_starts(env: &TestEnv, runs: usize) {
    let secret = std::str::from_utf8(livestream::testing::TEST_SECRET).unwrap();
    local::seed::seed(env.store(), secret)
        .await
        .expect("the sample ids are seeded");
    println!(
        "building the measured binaries (release, the profile the Lambda is deployed with)..."
    );
    let dir = cold_start::build(&[
        ("livestream-bench", "hello-lambda"),
        ("livestream-bootstrap", "bootstrap"),
    ]);
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../events/http/get-stream.json")).unwrap();
    let base: Vec<(String, String)> = [
        ("TABLE_NAME", livestream::testing::TEST_TABLE),
        ("DYNAMODB_ENDPOINT", env.dynamo.endpoint.as_str()),
        ("JWT_SECRET", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("_HANDLER", "get-stream"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut rows = vec![
        cold_start::measure(
            "hello-world Lambda",
            &dir.join("hello-lambda"),
            &[],
            &event,
            runs,
        )
        .await,
        cold_start::measure(
            "bootstrap, _HANDLER=get-stream",
            &dir.join("bootstrap"),
            &base,
            &event,
            runs,
        )
        .await,
    ];
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    if std::path::Path::new(bundle).exists() {
        let mut with_bundle = base.clone();
        with_bundle.push(("SSL_CERT_FILE".into(), bundle.into()));
        rows.push(
            cold_start::measure(
                "bootstrap, get-stream, system roots (SSL_CERT_FILE)",
                &dir.join("bootstrap"),
                &with_bundle,
                &event,
                runs,
            )
            .await,
        );
    }
    println!();
    cold_start::print(&rows);
}

const GROUPS: [&str; 9] = [
    "handlers", "chat", "history", "live", "storm", "fan-out", "video", "cold", "cost",
];

/// Measures the hot paths through the local stack and prints tables. Figures are this
/// machine's: compare them with a peer measured in the same run, never across days.
#[derive(Debug, clap::Parser)]
#[command(name = "livestream-bench")]
struct Cli {
    /// Groups to run (default: every group but `cold` and `cost`, which build release
    /// binaries of their own).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(GROUPS))]
    groups: Vec<String>,
}

#[tokio::main]
async fn main() {
    let chosen = <Cli as clap::Parser>::parse().groups;
    let runs = |group: &str| {
        (chosen.is_empty() && !["cold", "cost"].contains(&group))
            || chosen.iter().any(|c| c == group)
    };
    if runs("cold") {
        cold_starts(&TestEnv::start().await, 20).await;
    }
    if runs("cost") {
        // BENCH_COST_RUNS (default 20) warm invocations per action.
        let invocations = std::env::var("BENCH_COST_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        let cost_rows = cost::rows(invocations).await;
        cost::print(&cost_rows, invocations);
    }
    let mut rows = Vec::new();
    if runs("handlers") {
        let env = TestEnv::start().await;
        let stream = live_stream(&env).await;
        rows.push(get_stream_latency(&env, &stream, 500).await);
        rows.extend(presence_concurrency(&env, 200).await);
        rows.extend(question_concurrency(&env, 200).await);
        rows.push(broadcast_fan_out(&env, 500).await);
    }
    if runs("history") {
        rows.extend(history::rows().await);
    }
    let mut notes = Vec::new();
    if runs("live") {
        // BENCH_VIEWERS (default 1000) sockets for 10 s of chat; then 200 with the
        // 1-second delivery window the deployment uses.
        let viewers = std::env::var("BENCH_VIEWERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        for (viewers, seconds, window) in [(viewers, 10, 0), (200, 5, 1000)] {
            let (live_rows, live_notes) =
                live::rows(viewers, seconds, Duration::from_millis(window)).await;
            rows.extend(live_rows);
            notes.extend(live_notes);
        }
    }
    if runs("storm") && !runs("live") {
        // The live group's connect storm alone: 1,000 sockets opening at once while the
        // teacher chats, without its steady part.
        let (storm_rows, storm_notes) = live::rows(1000, 0, Duration::ZERO).await;
        rows.extend(storm_rows.into_iter().take(1));
        notes.extend(storm_notes);
    }
    if runs("fan-out") {
        let (fan_out_rows, fan_out_notes) = fanout_sim::rows().await;
        rows.extend(fan_out_rows);
        notes.extend(fan_out_notes);
    }
    if runs("video") {
        // A push through the local stack with ffmpeg (skipped without it), about 2 minutes.
        let (video_rows, video_notes) = video::rows().await;
        rows.extend(video_rows);
        notes.extend(video_notes);
    }

    let mut chat_errors = Vec::new();
    let mut compared = Vec::new();
    if runs("chat") {
        // The local stack as `cargo run -p local` runs it: data on disk, functions in-process.
        let data = tempfile::tempdir().unwrap();
        let stack = local::LocalStack::start(local::Config::on_free_ports(Some(
            data.path().to_path_buf(),
        )))
        .await
        .unwrap();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(500)
            .build()
            .unwrap();
        // BENCH_CHAT_SENDERS (e.g. "1" or "1,16") runs only those levels.
        let chosen: Option<Vec<usize>> = std::env::var("BENCH_CHAT_SENDERS").ok().map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        });
        let levels = |default: &[usize]| chosen.clone().unwrap_or_else(|| default.to_vec());
        // The replaced design in the same run, the same client, levels interleaved
        // (this stack, then the peer): only a ratio measured so means anything. First,
        // while both stores are fresh.
        match peer::Peer::start().await {
            Ok(peer) => {
                for concurrency in levels(&[1, 16, 64, 256]) {
                    let total = if concurrency == 1 { 1000 } else { 2000 };
                    for load in [Load::Chat, Load::GetStream] {
                        compared.push(
                            compare_level(
                                &client,
                                &stack.http_url,
                                &peer.url,
                                concurrency,
                                total,
                                load,
                            )
                            .await,
                        );
                    }
                }
            }
            Err(why) => println!("no peer column: {why}"),
        }
        for concurrency in levels(&[1, 16, 64, 256, 500]) {
            let total = if concurrency == 1 { 1000 } else { 3000 };
            let (row, errors) = chat_burst(&client, &stack.http_url, concurrency, total).await;
            chat_errors.push((concurrency, errors));
            rows.push(row);
        }
        stack.shutdown().await;
    }

    println!(
        "| {:<60} | {:>7} | {:>9} | {:>8} | {:>8} |",
        "benchmark", "ops", "ops/s", "p50 ms", "p99 ms"
    );
    println!(
        "|{:-<62}|{:->9}|{:->11}|{:->10}|{:->10}|",
        "", "", "", "", ""
    );
    for row in &rows {
        row.print();
    }
    for note in notes {
        println!("{note}");
    }
    for (concurrency, errors) in chat_errors {
        println!("chat, {concurrency} senders at once: {errors} errors (anything but 201)");
    }
    if !compared.is_empty() {
        print_comparison(&compared);
    }
    if let Some(rss) = peak_rss_mib() {
        println!("\npeak RSS of the benchmark process (store included): {rss:.1} MiB");
    }
}
