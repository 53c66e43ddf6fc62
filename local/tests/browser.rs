//! The web console in a real browser: headless Chromium over WebDriver (Debian's
//! `chromium` and `chromium-driver`) against the local stack on random ports. A
//! teacher and two students, each in their own browser session, run a whole class
//! through the pages; every assertion is on what a page shows.
//!
//! Without Chromium the test explains how to install it and passes, except under CI
//! (`CI` set), where it fails. `LIVESTREAM_SCREENSHOTS=docs/screenshots` saves the
//! README's screenshots (relative paths are from the workspace root).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use local::{Config, LocalStack};
use serde_json::{Value, json};

/// Upper bound of every wait for the page; waits end as soon as the page is ready.
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// Upper bound of a wait for the video: an encoder, a remux and a decoder on two cores.
const VIDEO_WAIT: Duration = Duration::from_secs(60);

fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    path.exists().then_some(path)
}

/// One chromedriver serving every browser session of the test.
struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Option<Driver> {
    let (Some(chromium), Some(chromedriver)) = (
        tool("CHROMIUM", "/usr/bin/chromium"),
        tool("CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) else {
        let message = "the browser test needs Chromium and its WebDriver: \
                       apt-get install chromium chromium-driver \
                       (or set CHROMIUM and CHROMEDRIVER to their paths)";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        // Straight to stderr: the test harness would hide an eprintln! of a passing test.
        let _ = writeln!(std::io::stderr(), "skipping the browser test: {message}");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        chromium,
    };
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ready = http.get(format!("{}/status", driver.url)).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Some(driver);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not answer"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// One person's browser window.
struct Page {
    name: &'static str,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Page {
    async fn open(driver: &Driver, name: &'static str) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": driver.chromium, "args": args }),
        );
        let client = ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a browser session");
        Page {
            name,
            client,
            _profile: profile,
        }
    }

    /// Runs `script` until it returns something other than null or false.
    async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.until_within(WAIT, what, script, args).await
    }

    /// [`Page::until`] with its own upper bound.
    async fn until_within(
        &self,
        wait: Duration,
        what: &str,
        script: &str,
        args: Vec<Value>,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let last = match self.client.execute(script, args.clone()).await {
                Ok(Value::Null | Value::Bool(false)) => "not yet".to_string(),
                Ok(value) => return value,
                Err(err) => err.to_string(),
            };
            if tokio::time::Instant::now() > deadline {
                let shown = self
                    .client
                    .execute("return document.querySelector('main').innerText", vec![])
                    .await
                    .unwrap_or_default();
                panic!(
                    "{}: the page never showed {what} ({last}); it shows:\n{shown}",
                    self.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for an element whose text contains `text` (empty: any) under `css`.
    async fn see(&self, css: &str, text: &str) {
        self.until(
            &format!("{css} with {text:?}"),
            "return [...document.querySelectorAll(arguments[0])]\
               .some(e => e.offsetParent !== null && e.textContent.includes(arguments[1]))",
            vec![json!(css), json!(text)],
        )
        .await;
    }

    /// Waits until no visible element under `css` contains `text`.
    async fn no_longer_see(&self, css: &str, text: &str) {
        self.until(
            &format!("no {css} with {text:?}"),
            "return ![...document.querySelectorAll(arguments[0])]\
               .some(e => e.offsetParent !== null && e.textContent.includes(arguments[1]))",
            vec![json!(css), json!(text)],
        )
        .await;
    }

    /// The texts of the elements under `css`.
    async fn texts(&self, css: &str) -> Vec<String> {
        let value = self
            .until(
                css,
                "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)",
                vec![json!(css)],
            )
            .await;
        serde_json::from_value(value).unwrap()
    }

    /// Clicks the element a user would: retried while the page re-renders it.
    async fn click(&self, css: &str) {
        self.retry(css, |c| async move {
            c.find(Locator::Css(css)).await?.click().await
        })
        .await;
    }

    /// Clears a field and types into it.
    async fn type_into(&self, css: &str, text: &str) {
        self.retry(css, |c| async move {
            let field = c.find(Locator::Css(css)).await?;
            field.clear().await?;
            field.send_keys(text).await
        })
        .await;
    }

    async fn select(&self, css: &str, value: &str) {
        self.retry(css, |c| async move {
            c.find(Locator::Css(css))
                .await?
                .select_by_value(value)
                .await
        })
        .await;
    }

    async fn retry<'a, F, Fut>(&'a self, what: &str, action: F)
    where
        F: Fn(&'a Client) -> Fut,
        Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match action(&self.client).await {
                Ok(()) => return,
                Err(err) if tokio::time::Instant::now() > deadline => {
                    panic!("{}: could not use {what}: {err}", self.name)
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn sign_in(&self, base: &str, user: &str, role: &str, name: &str) {
        self.client.goto(base).await.unwrap();
        self.type_into("input[name=user_id]", user).await;
        self.select("select[name=role]", role).await;
        self.type_into("input[name=display_name]", name).await;
        self.click("#sign-in").await;
        self.see("#signed-in-as", name).await;
    }

    /// The `seq` of the chat message showing `text`.
    async fn seq_of(&self, text: &str) -> String {
        self.until(
            &format!("a chat message {text:?}"),
            "const li = [...document.querySelectorAll('#chat-list li')]\
               .find(li => li.textContent.includes(arguments[0])); \
             return li && li.dataset.seq",
            vec![json!(text)],
        )
        .await
        .as_str()
        .unwrap()
        .to_string()
    }

    /// Signs in with a pasted JWT, as with a real identity provider's token.
    async fn sign_in_with_token(&self, base: &str, token: &str, name: &str) {
        self.client.goto(base).await.unwrap();
        self.type_into("textarea[name=jwt]", token).await;
        self.click("form[aria-labelledby=jwt-title] button[type=submit]")
            .await;
        self.see("#signed-in-as", name).await;
    }

    async fn send_chat(&self, text: &str) {
        self.type_into("#chat-form input[name=message]", text).await;
        self.click("#chat-send").await;
    }

    /// Saves a PNG of the whole page (the window grown to its height) when asked to.
    async fn screenshot(&self, dir: Option<&Path>, file: &str) {
        let Some(dir) = dir else { return };
        let height = self
            .client
            .execute(
                "window.scrollTo(0, 0); document.activeElement.blur(); \
                 return document.documentElement.scrollHeight",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(1000)
            .clamp(600, 2400);
        // The window's frame is not part of the page: leave room for it.
        self.client
            .set_window_size(1280, height as u32 + 140)
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(file), png).unwrap();
        self.client.set_window_size(1280, 1000).await.unwrap();
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

fn random_ports() -> Config {
    Config::on_free_ports(None)
}

fn screenshot_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("LIVESTREAM_SCREENSHOTS")?);
    let dir = if dir.is_absolute() {
        dir
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
    };
    std::fs::create_dir_all(&dir).unwrap();
    Some(dir)
}

/// ffmpeg's arguments before the ingest URL: 1280x720 at 30 fps with a keyframe every
/// 2 s and AAC sound, at the speed of life.
const PUSH: &str = "-nostdin -hide_banner -loglevel error -re \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p -g 60 \
    -c:a aac -b:a 128k -f flv";

/// ffmpeg pushing a test picture and a tone to the ingest, as a teacher's OBS would;
/// stopped (the connection dropped) when dropped.
struct Encoder(Child);

impl Encoder {
    /// ffmpeg with libx264 and AAC, or `None` (after a message) to skip the video test;
    /// under CI a missing ffmpeg fails it.
    fn find() -> Option<PathBuf> {
        let ffmpeg = tool("FFMPEG", "/usr/bin/ffmpeg");
        let encoders = ffmpeg.as_ref().and_then(|f| {
            Command::new(f)
                .args(["-hide_banner", "-encoders"])
                .output()
                .ok()
        });
        if encoders.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains("libx264")) {
            return ffmpeg;
        }
        let message = "the video test needs ffmpeg with libx264: apt-get install ffmpeg \
                       (or set FFMPEG to its path)";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        let _ = writeln!(std::io::stderr(), "skipping the video test: {message}");
        None
    }

    /// Pushes to `url` until dropped.
    fn push(ffmpeg: &Path, url: &str) -> Encoder {
        let child = Command::new(ffmpeg)
            .args(PUSH.split_whitespace())
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg starts");
        Encoder(child)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One call of the API as `token`; the answer's JSON, which must be a success.
async fn api(stack: &LocalStack, token: &str, method: &str, path: &str, body: Value) -> Value {
    let url = format!("{}{path}", stack.http_url);
    let request = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    let request = if body.is_null() {
        request
    } else {
        request.json(&body)
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

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
