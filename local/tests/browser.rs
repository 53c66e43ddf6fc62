//! The web console in a real browser: headless Chromium over WebDriver (Debian's
//! `chromium` and `chromium-driver`) against the local stack on random ports. A
//! teacher and two students, each in their own browser session, run a whole class
//! through the pages; every assertion is on what a page shows.
//!
//! Without Chromium the test explains how to install it and passes, except under CI
//! (`CI` set), where it fails. `LIVESTREAM_SCREENSHOTS=docs/screenshots` saves the
//! README's screenshots (relative paths are from the workspace root).

mod browser_support;

use std::path::Path;

use browser_support::*;
use local::LocalStack;
use serde_json::{Value, json};

/// The class video's `currentTime` once it plays the teacher's picture (1280 wide).
async fn playing_at(page: &Page) -> f64 {
    page.until_within(
        VIDEO_WAIT,
        "the teacher's video playing, 1280 wide",
        "const v = document.querySelector('#class-video'); \
         return v && v.videoWidth === 1280 && !v.paused && v.currentTime",
        vec![],
    )
    .await
    .as_f64()
    .unwrap()
}

/// Waits until the class video has played on past `from` seconds.
async fn plays_past(page: &Page, from: f64) {
    page.until_within(
        VIDEO_WAIT,
        &format!("the video playing on past {from:.1} s"),
        "const v = document.querySelector('#class-video'); \
         return v && v.currentTime > arguments[0] + 1",
        vec![json!(from)],
    )
    .await;
}

/// The stream id of the page at `#/streams/<id>`.
async fn stream_id(page: &Page) -> String {
    page.until(
        "a stream page",
        "const m = location.hash.match(/^#\\/streams\\/(.+)$/); return m && m[1]",
        vec![],
    )
    .await
    .as_str()
    .unwrap()
    .to_string()
}

/// The ids of `user`'s WebSocket connections to `stream`, read from the table.
async fn connections_of(stack: &LocalStack, stream: &str, user: &str) -> Vec<String> {
    let store = livestream::store::Store::new(
        aws_sdk_dynamodb::Client::from_conf(livestream::embedded::dynamo_config(&stack.dynamo_url)),
        local::TABLE_NAME,
    );
    store
        .stream_connections(stream)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.user_id == user)
        .map(|c| c.connection_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_and_two_students_run_a_class_in_the_browser() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let shots = screenshot_dir();
    let shots = shots.as_deref();
    let stack = LocalStack::start(random_ports()).await.unwrap();
    let base = format!("{}/", stack.http_url);
    let (teacher, s1, s2) = tokio::join!(
        Page::open(&driver, "teacher"),
        Page::open(&driver, "student-1"),
        Page::open(&driver, "student-2"),
    );

    // Sign in: each window is another person; Kim pastes a JWT instead.
    teacher
        .sign_in(&base, "teacher-1", "teacher", "Ada Teacher")
        .await;
    s1.sign_in(&base, "student-1", "student", "Sam Student")
        .await;
    let pasted = local::dev_token(
        local::LOCAL_JWT_SECRET,
        "student-2",
        livestream::auth::Role::Student,
        "Kim Student",
        1,
    );
    s2.sign_in_with_token(&base, &pasted, "Kim Student (student)")
        .await;

    // A course, and its students.
    teacher
        .type_into("#course-form [name=title]", "Rust 101")
        .await;
    teacher.click("#course-form button[type=submit]").await;
    teacher.see("#course-list li.course", "Rust 101").await;
    for student in ["student-1", "student-2"] {
        teacher
            .type_into("#course-list .enroll-form [name=user_id]", student)
            .await;
        teacher
            .click("#course-list .enroll-form button[type=submit]")
            .await;
        teacher
            .see("#course-list .status", &format!("{student} is enrolled."))
            .await;
    }

    // The API's field errors show next to their fields.
    teacher
        .type_into(
            "#stream-form [name='quality_settings.bitrate_kbps']",
            "20000",
        )
        .await;
    teacher.click("#create-stream").await;
    teacher
        .see("#stream-form .field[data-field=title] .field-error", "must")
        .await;
    teacher
        .see(
            "#stream-form .field[data-field='quality_settings.bitrate_kbps'] .field-error",
            "between 500 and 15000",
        )
        .await;

    // A private stream with every setting: only the enrolled students may watch.
    teacher
        .type_into("#stream-form [name=title]", "Ownership and borrowing")
        .await;
    teacher
        .type_into(
            "#stream-form [name=description]",
            "Moves, borrows and lifetimes, live.",
        )
        .await;
    teacher
        .select("#stream-form [name='quality_settings.resolution']", "1080p")
        .await;
    teacher
        .select("#stream-form [name='quality_settings.frame_rate']", "60")
        .await;
    teacher
        .type_into(
            "#stream-form [name='quality_settings.bitrate_kbps']",
            "4500",
        )
        .await;
    teacher.click("#stream-form [name=is_public]").await;
    teacher.click("#stream-form [name=is_recording]").await;
    teacher.click("#create-stream").await;
    let id = stream_id(&teacher).await;
    teacher.see("#stream-status", "scheduled").await;
    let key_type = teacher
        .until(
            "the stream key, masked",
            "const k = document.querySelector('#stream-key'); return k && k.value && k.type",
            vec![],
        )
        .await;
    assert_eq!(key_type, "password");
    teacher.click(".key button[aria-pressed]").await;
    teacher
        .until(
            "the stream key, revealed",
            "return document.querySelector('#stream-key').type === 'text'",
            vec![],
        )
        .await;
    let saved = teacher
        .until(
            "the saved settings",
            "const f = document.querySelector('#edit-stream-form'); \
             return f && [f.querySelector('[name=\"quality_settings.resolution\"]').value, \
                          f.querySelector('[name=\"quality_settings.frame_rate\"]').value, \
                          f.querySelector('[name=\"quality_settings.bitrate_kbps\"]').value, \
                          f.querySelector('[name=is_public]').checked, \
                          f.querySelector('[name=is_recording]').checked]",
            vec![],
        )
        .await;
    assert_eq!(saved, json!(["1080p", "60", "4500", false, true]));

    teacher.click("#start-stream").await;
    teacher.see("#stream-status", "live").await;
    teacher.see("#connection", "Live updates on").await;

    // The students find the class and join it.
    for student in [&s1, &s2] {
        student.click("#refresh-live").await;
        student.click("#live-streams .card a.button").await;
        student.see("#stream-status", "live").await;
        student.see("#connection", "Live updates on").await;
    }
    teacher.see("#viewer-count", "2").await;
    teacher.see("#unique-viewers", "2").await;
    s1.see("#viewer-count", "2").await;

    // Chat both ways.
    s1.send_chat("Hello from Sam").await;
    teacher.see("#chat-list li", "Hello from Sam").await;
    teacher.send_chat("Welcome, everyone").await;
    for page in [&teacher, &s1, &s2] {
        page.see("#chat-list li", "Hello from Sam").await;
        page.see("#chat-list li", "Welcome, everyone").await;
    }
    teacher.click("#chat-form [name=message_type]").await;
    teacher.send_chat("Quiz after the break").await;
    for page in [&s1, &s2] {
        page.see("#chat-list li.announcement", "Quiz after the break")
            .await;
    }

    // Questions: ask, upvote, answer.
    s1.type_into("#ask-form [name=text]", "What is a borrow?")
        .await;
    s1.click("#ask-send").await;
    s2.see("#question-list li", "What is a borrow?").await;
    s2.click("#question-list li button.upvote").await;
    s2.see(
        "#question-list li button.upvote[aria-pressed=true]",
        "Upvoted",
    )
    .await;
    teacher.see("#question-list li .upvotes", "1 upvote").await;
    teacher
        .type_into(
            "#question-list li [name=answer]",
            "A reference that does not own.",
        )
        .await;
    teacher
        .click("#question-list li .answer-form button[type=submit]")
        .await;
    for page in [&teacher, &s1, &s2] {
        page.see(
            "#question-list li .answer",
            "A reference that does not own.",
        )
        .await;
    }
    s1.see("#question-list li .meta", "answered").await;

    // Pin a message and highlight the question: the students see both.
    let welcome = teacher.seq_of("Welcome, everyone").await;
    teacher
        .click(&format!(
            "#chat-list li[data-seq='{welcome}'] button[aria-label^=Pin]"
        ))
        .await;
    teacher
        .click("#question-list li button[aria-label^=Highlight]")
        .await;
    for page in [&s1, &s2] {
        page.see("#pinned", "Welcome, everyone").await;
        page.see("#highlighted", "What is a borrow?").await;
    }

    // The teacher hides a message: it disappears for the students.
    s2.send_chat("Buy followers at example dot com").await;
    teacher.see("#chat-list li", "Buy followers").await;
    s1.see("#chat-list li", "Buy followers").await;
    let spam = teacher.seq_of("Buy followers").await;
    teacher
        .click(&format!(
            "#chat-list li[data-seq='{spam}'] button[aria-label^=Hide]"
        ))
        .await;
    for page in [&s1, &s2] {
        page.no_longer_see("#chat-list li", "Buy followers").await;
    }
    teacher
        .see("#chat-list li.hidden-msg", "Buy followers")
        .await;

    // Slow mode: a second message too soon shows the Retry-After countdown.
    teacher
        .type_into("#settings-form [name=chat_slow_mode_seconds]", "120")
        .await;
    teacher
        .click("#settings-form [name=questions_require_approval]")
        .await;
    teacher.click("#settings-form button[type=submit]").await;
    teacher
        .see("#settings-form .status", "Settings saved.")
        .await;
    s1.see("#slow-mode", "one message every 120 s").await;
    // Sam's last message was moments ago: slow mode counts from it.
    s1.send_chat("Too soon under slow mode").await;
    s1.see("#slow-mode", "you can send again in").await;
    s1.until(
        "the send button disabled",
        "return document.querySelector('#chat-send').disabled",
        vec![],
    )
    .await;
    s1.no_longer_see("#chat-list li", "Too soon under slow mode")
        .await;

    // The teacher sees who takes part, and turns Kim's chat off.
    teacher.see("#participants tr", "Sam Student").await;
    teacher.see("#participants tr", "Kim Student").await;
    teacher
        .click("#participants input[aria-label='May chat: Kim Student']")
        .await;
    teacher
        .until(
            "Kim's chat turned off",
            "const b = document.querySelector(\"#participants input[aria-label='May chat: Kim Student']\"); \
             return b && !b.checked",
            vec![],
        )
        .await;
    s2.send_chat("Can I still talk?").await;
    s2.see("#chat-error", "turned off your chat").await;

    // With approval on, a question waits in the queue until the teacher approves it.
    s2.type_into("#ask-form [name=text]", "Can you share the slides?")
        .await;
    s2.click("#ask-form [name=anonymous]").await;
    s2.click("#ask-send").await;
    s2.see("#question-list li", "waiting for approval").await;
    teacher
        .see("#pending-list li", "Kim Student (anonymous)")
        .await;
    s1.see("#question-list", "What is a borrow?").await;
    teacher
        .click("#pending-list li button[aria-label^=Approve]")
        .await;
    s1.see("#question-list li", "Can you share the slides?")
        .await;
    s1.see("#question-list li .meta", "Anonymous · open").await;
    teacher
        .click("#question-list li button[aria-label='Dismiss: Can you share the slides?']")
        .await;
    s1.no_longer_see("#question-list li", "Can you share the slides?")
        .await;

    teacher.screenshot(shots, "live-dashboard.png").await;
    s1.screenshot(shots, "student-view.png").await;

    // Student 2's socket drops (as API Gateway drops connections); the page reconnects
    // and catches up what it missed, showing every message once.
    let dropped = connections_of(&stack, &id, "student-2").await;
    assert_eq!(dropped.len(), 1);
    let http = reqwest::Client::new();
    // Connection ids are base64: '/' and '+' must be escaped in the path.
    let mut url = reqwest::Url::parse(&stack.connections_url).unwrap();
    url.path_segments_mut()
        .unwrap()
        .extend(["@connections", &dropped[0]]);
    let closed = http.delete(url).send().await.unwrap();
    assert_eq!(closed.status(), 204);
    teacher.send_chat("While you were away").await;
    teacher.see("#chat-list li", "While you were away").await;
    s2.see("#chat-list li", "While you were away").await;
    // The page opened a new connection of its own (the old one is gone from the table).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = connections_of(&stack, &id, "student-2").await;
        if now.len() == 1 && now != dropped {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "student-2 never reconnected: {now:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    s2.see("#connection", "Live updates on").await;
    teacher.send_chat("After the reconnect").await;
    s2.see("#chat-list li", "After the reconnect").await;
    let seen = s2.texts("#chat-list li .text").await;
    assert_eq!(
        seen,
        [
            "Hello from Sam",
            "Welcome, everyone",
            "Quiz after the break",
            "While you were away",
            "After the reconnect"
        ],
        "each message once, in order, the hidden one left out"
    );

    // The end: stats for the teacher, the news for the students.
    teacher.click("#stop-stream").await;
    teacher.see("#stream-status", "ended").await;
    teacher.see("#final-stats h3", "Final stats").await;
    teacher.see("#stat-peak", "2").await;
    teacher.see("#stat-unique", "2").await;
    teacher.see("#stat-messages", "6").await;
    teacher.see("#stat-questions", "2").await;
    teacher.see("#stat-answered", "1").await;
    teacher.see("#stat-upvotes", "1").await;
    teacher.see("#stats-chart title", "Chat messages: 6").await;
    teacher
        .see("#timeline-chart figcaption", "over the class")
        .await;
    for page in [&s1, &s2] {
        page.see("#stream-status", "ended").await;
        page.see("#ended-note", "The class has ended").await;
        // The stream's sockets are closed at the end; the page does not try again.
        page.see("#connection", "Live updates off").await;
    }
    teacher.screenshot(shots, "final-stats.png").await;

    // The console lists the stream with the ended ones.
    teacher.click("a[href='#/console']").await;
    teacher
        .see("#streams-ended li", "Ownership and borrowing")
        .await;
    teacher.see("#course-list li.course", "Rust 101").await;

    // The next class, scheduled for tomorrow at 09:00 local time.
    teacher
        .type_into("#stream-form [name=title]", "Lifetimes")
        .await;
    teacher
        .until(
            "the schedule set",
            "const d = new Date(Date.now() + 86400000); \
             const p = n => String(n).padStart(2, '0'); \
             const f = document.querySelector('#stream-form [name=scheduled_at]'); \
             f.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T09:00`; \
             return f.value !== ''",
            vec![],
        )
        .await;
    teacher.click("#create-stream").await;
    teacher.see("#stream-status", "scheduled").await;
    teacher.see("main .card .hint", "Scheduled for").await;
    teacher.click("a[href='#/console']").await;
    teacher.see("#streams-scheduled li", "Lifetimes").await;
    teacher.see("#streams-scheduled li", "scheduled for").await;
    teacher.screenshot(shots, "teacher-console.png").await;

    // A scheduled class can be cancelled.
    teacher.click("#streams-scheduled li a").await;
    teacher.click("#cancel-stream").await;
    teacher.see("#stream-status", "cancelled").await;
    teacher.click("a[href='#/console']").await;
    teacher.see("#streams-cancelled li", "Lifetimes").await;

    for page in [teacher, s1, s2] {
        page.close().await;
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_watch_the_teachers_encoder_live_through_drops_to_the_end() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let Some(ffmpeg) = Encoder::find() else {
        return;
    };
    let shots = screenshot_dir();
    let shots = shots.as_deref();
    let stack = LocalStack::start(random_ports()).await.unwrap();
    let base = format!("{}/", stack.http_url);

    // A private class: its playlist and segments need the viewer's playback token.
    let ada = local::dev_token(
        local::LOCAL_JWT_SECRET,
        "teacher-1",
        livestream::auth::Role::Teacher,
        "Ada Teacher",
        1,
    );
    let course = api(
        &stack,
        &ada,
        "POST",
        "/api/courses",
        json!({ "title": "Signals" }),
    )
    .await;
    let course = course["id"].as_str().unwrap();
    let enroll = format!("/api/courses/{course}/enrollments");
    api(
        &stack,
        &ada,
        "POST",
        &enroll,
        json!({ "user_id": "student-1" }),
    )
    .await;
    let stream = json!({
        "title": "The Fourier transform",
        "course_id": course,
        "is_public": false,
        "quality_settings": { "resolution": "720p", "frame_rate": 30, "bitrate_kbps": 2500 },
    });
    let stream = api(&stack, &ada, "POST", "/api/livestream/", stream).await;
    let id = stream["id"].as_str().unwrap();
    let ingest = api(
        &stack,
        &ada,
        "GET",
        &format!("/api/livestream/{id}/ingest"),
        Value::Null,
    )
    .await;
    assert_eq!(ingest["ingest_url"], stack.rtmp_url);
    let key = ingest["stream_key"].as_str().unwrap();

    let (teacher, student) = tokio::join!(
        Page::open(&driver, "teacher"),
        Page::open(&driver, "student-1"),
    );
    teacher
        .sign_in(&base, "teacher-1", "teacher", "Ada Teacher")
        .await;
    student
        .sign_in(&base, "student-1", "student", "Sam Student")
        .await;

    // Before the push: the encoder panel is idle, the student waits for the video.
    teacher
        .client
        .goto(&format!("{base}#/streams/{id}"))
        .await
        .unwrap();
    teacher.see("#ingest-state", "idle").await;
    teacher.see("#obs-setup", &stack.rtmp_url).await;
    student
        .client
        .goto(&format!("{base}#/watch/{id}"))
        .await
        .unwrap();
    student.see("#stream-status", "scheduled").await;
    student
        .see(
            "#video-message",
            "Waiting for the teacher to start the video",
        )
        .await;
    student.screenshot(shots, "student-waiting.png").await;

    // The teacher's encoder starts pushing: the class goes live by itself and plays,
    // muted (as browsers allow autoplay), at the encoder's size.
    let mut encoder = Encoder::push(&ffmpeg, &format!("{}{key}", stack.rtmp_url));
    student.see("#stream-status", "live").await;
    let started = playing_at(&student).await;
    plays_past(&student, started).await;
    student.no_longer_see("#video-message", "").await;
    let muted = student
        .client
        .execute(
            "return document.querySelector('#class-video').muted",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(muted, json!(true), "browsers autoplay only muted video");
    teacher.see("#stream-status", "live").await;
    teacher.see("#ingest-state", "connected").await;
    teacher
        .see("#ingest-health [data-health=resolution]", "1280×720")
        .await;
    teacher.screenshot(shots, "encoder-panel.png").await;
    student.screenshot(shots, "student-video.png").await;

    // The push drops and comes back: the class goes on, the video with it.
    drop(encoder);
    student
        .see(
            "#video-message",
            "The teacher's video dropped, reconnecting",
        )
        .await;
    teacher.see("#ingest-state", "reconnecting").await;
    student.screenshot(shots, "student-reconnecting.png").await;
    // What was buffered plays out; then the picture stands still until the push is back.
    let stalled = student
        .until_within(
            VIDEO_WAIT,
            "the video stopped at the end of what arrived",
            "const v = document.querySelector('#class-video'); const b = v.buffered; \
             return v.readyState < v.HAVE_FUTURE_DATA && b.length > 0 \
               && v.currentTime > b.end(b.length - 1) - 0.5 && v.currentTime",
            vec![],
        )
        .await
        .as_f64()
        .unwrap();
    encoder = Encoder::push(&ffmpeg, &format!("{}{key}", stack.rtmp_url));
    teacher.see("#ingest-state", "connected").await;
    plays_past(&student, stalled).await;
    student.no_longer_see("#video-message", "").await;
    student.see("#stream-status", "live").await;

    // The teacher ends the class: the video says so.
    teacher.click("#stop-stream").await;
    student.see("#video-message", "The class has ended.").await;
    student.see("#ended-note", "The class has ended").await;
    drop(encoder);

    for page in [teacher, student] {
        page.close().await;
    }
    stack.shutdown().await;
}

/// Without a browser: the console's files, the local-only endpoints, and the API's
/// own answers where the console is not.
#[tokio::test]
async fn the_console_is_served_beside_the_api_with_its_local_only_endpoints() {
    let stack = LocalStack::start(random_ports()).await.unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", stack.http_url)).send();

    let index = get("/").await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(
        index.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = index.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="app.js">"#));
    // Every module the page imports is served as JavaScript.
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    for entry in std::fs::read_dir(&web).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let response = get(&format!("/{name}")).await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        if name.ends_with(".js") {
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .contains("javascript"),
                "{name}"
            );
        }
    }

    // API paths keep the API's answers: its 404 for an unknown path, 401 without a token.
    let unknown = get("/api/livestream/x/nothing-here").await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"]["code"],
        "route_not_found"
    );
    assert_eq!(get("/nothing-here.js").await.unwrap().status(), 404);
    assert_eq!(get("/api/courses/mine").await.unwrap().status(), 401);

    let config: Value = get("/local/config").await.unwrap().json().await.unwrap();
    assert_eq!(config["ws_url"], stack.ws_url);

    let token = |body: Value| {
        http.post(format!("{}/local/token", stack.http_url))
            .json(&body)
            .send()
    };
    let refused = token(json!({ "user_id": "not valid!", "role": "janitor" }))
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user_id", "role"]);
    let malformed = http
        .post(format!("{}/local/token", stack.http_url))
        .body("{\"user_id\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // A minted token is one the API accepts, for that user and role.
    let minted: Value =
        token(json!({ "user_id": "teacher-9", "role": "teacher", "display_name": "Nine" }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let bearer = minted["token"].as_str().unwrap();
    let course: Value = http
        .post(format!("{}/api/courses", stack.http_url))
        .bearer_auth(bearer)
        .json(&json!({ "title": "Made in the console" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(course["teacher_id"], "teacher-9");
    stack.shutdown().await;
}
