//! The design this backend replaces (FastAPI + SQLAlchemy + SQLite), run beside the local
//! stack so the chat group can report both from one run: its own start script
//! (`../shared/peers/fastapi-sqlite/run.sh`, `PEER_DIR` elsewhere) on a free port, two
//! workers, a fresh database file.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running peer; stopped (SIGTERM, then waited for) when dropped.
pub struct Peer {
    pub url: String,
    child: Child,
    _data: tempfile::TempDir,
}

fn peer_dir() -> PathBuf {
    std::env::var_os("PEER_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers/fastapi-sqlite"),
        PathBuf::from,
    )
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Peer {
    /// Starts the peer, or says why it cannot (no Python, no script, it never answered).
    pub async fn start() -> Result<Self, String> {
        let script = peer_dir().join("run.sh");
        if !script.exists() {
            return Err(format!("no peer at {}", script.display()));
        }
        let python = Command::new("python3")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !python.is_ok_and(|s| s.success()) {
            return Err("python3 is not available".into());
        }
        let port = free_port().map_err(|e| e.to_string())?;
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let child = Command::new("bash")
            .arg(&script)
            .arg(port.to_string())
            .arg("2")
            .arg(data.path().join("peer.db"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", script.display()))?;
        let mut peer = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _data: data,
        };
        // The first start creates its virtualenv (packages from PyPI): minutes.
        let deadline = Instant::now() + Duration::from_secs(300);
        let client = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = peer.child.try_wait() {
                return Err(format!("the peer exited: {status}"));
            }
            if client
                .get(format!("{}/api/livestream/none", peer.url))
                .send()
                .await
                .is_ok()
            {
                return Ok(peer);
            }
            if Instant::now() > deadline {
                return Err("the peer did not answer within 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // uvicorn stops its workers on SIGTERM; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
