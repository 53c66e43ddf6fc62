//! What the browser tests share: one chromedriver, a browser window per person driven
//! over WebDriver (fantoccini), ffmpeg pushing as a teacher's encoder would, the API
//! called directly, and screenshots for the docs.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use local::{Config, LocalStack};
use serde_json::{Value, json};

/// Upper bound of every wait for the page; waits end as soon as the page is ready.
pub const WAIT: Duration = Duration::from_secs(30);
pub const POLL: Duration = Duration::from_millis(100);
/// Upper bound of a wait for the video: an encoder, a remux and a decoder on two cores.
pub const VIDEO_WAIT: Duration = Duration::from_secs(60);

pub fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    path.exists().then_some(path)
}

/// One chromedriver serving every browser session of the test.
pub struct Driver {
    child: Child,
    pub url: String,
    pub chromium: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_driver() -> Option<Driver> {
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
pub struct Page {
    pub name: &'static str,
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Page {
    pub async fn open(driver: &Driver, name: &'static str) -> Page {
        Self::open_with_downloads(driver, name, None).await
    }

    /// A window whose downloads (a Blob link's file) are saved into `downloads`.
    pub async fn open_with_downloads(
        driver: &Driver,
        name: &'static str,
        downloads: Option<&Path>,
    ) -> Page {
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
            json!({
                "binary": driver.chromium,
                "args": args,
                "prefs": match downloads {
                    Some(dir) => json!({
                        "download.default_directory": dir,
                        "download.prompt_for_download": false,
                    }),
                    None => json!({}),
                },
            }),
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
    pub async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.until_within(WAIT, what, script, args).await
    }

    /// [`Page::until`] with its own upper bound.
    pub async fn until_within(
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
    pub async fn see(&self, css: &str, text: &str) {
        self.until(
            &format!("{css} with {text:?}"),
            "return [...document.querySelectorAll(arguments[0])]\
               .some(e => e.offsetParent !== null && e.textContent.includes(arguments[1]))",
            vec![json!(css), json!(text)],
        )
        .await;
    }

    /// Waits until no visible element under `css` contains `text`.
    pub async fn no_longer_see(&self, css: &str, text: &str) {
        self.until(
            &format!("no {css} with {text:?}"),
            "return ![...document.querySelectorAll(arguments[0])]\
               .some(e => e.offsetParent !== null && e.textContent.includes(arguments[1]))",
            vec![json!(css), json!(text)],
        )
        .await;
    }

    /// The texts of the elements under `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
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
    pub async fn click(&self, css: &str) {
        self.retry(css, |c| async move {
            c.find(Locator::Css(css)).await?.click().await
        })
        .await;
    }

    /// Clears a field and types into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.retry(css, |c| async move {
            let field = c.find(Locator::Css(css)).await?;
            field.clear().await?;
            field.send_keys(text).await
        })
        .await;
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.retry(css, |c| async move {
            c.find(Locator::Css(css))
                .await?
                .select_by_value(value)
                .await
        })
        .await;
    }

    pub async fn retry<'a, F, Fut>(&'a self, what: &str, action: F)
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

    pub async fn sign_in(&self, base: &str, user: &str, role: &str, name: &str) {
        self.client.goto(base).await.unwrap();
        self.type_into("input[name=user_id]", user).await;
        self.select("select[name=role]", role).await;
        self.type_into("input[name=display_name]", name).await;
        self.click("#sign-in").await;
        self.see("#signed-in-as", name).await;
    }

    /// The `seq` of the chat message showing `text`.
    pub async fn seq_of(&self, text: &str) -> String {
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
    pub async fn sign_in_with_token(&self, base: &str, token: &str, name: &str) {
        self.client.goto(base).await.unwrap();
        self.type_into("textarea[name=jwt]", token).await;
        self.click("form[aria-labelledby=jwt-title] button[type=submit]")
            .await;
        self.see("#signed-in-as", name).await;
    }

    pub async fn send_chat(&self, text: &str) {
        self.type_into("#chat-form input[name=message]", text).await;
        self.click("#chat-send").await;
    }

    /// Saves a PNG of the whole page (the window grown to its height) when asked to.
    pub async fn screenshot(&self, dir: Option<&Path>, file: &str) {
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

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

pub fn random_ports() -> Config {
    Config::on_free_ports(None)
}

pub fn screenshot_dir() -> Option<PathBuf> {
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
pub const PUSH: &str = "-nostdin -hide_banner -loglevel error -re \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p -g 60 \
    -c:a aac -b:a 128k -f flv";

/// ffmpeg pushing a test picture and a tone to the ingest, as a teacher's OBS would;
/// stopped (the connection dropped) when dropped.
pub struct Encoder(pub Child);

impl Encoder {
    /// ffmpeg with libx264 and AAC, or `None` (after a message) to skip the video test;
    /// under CI a missing ffmpeg fails it.
    pub fn find() -> Option<PathBuf> {
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
    pub fn push(ffmpeg: &Path, url: &str) -> Encoder {
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
pub async fn api(stack: &LocalStack, token: &str, method: &str, path: &str, body: Value) -> Value {
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
