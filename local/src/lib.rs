//! The whole livestream backend on one machine.
//!
//! [`LocalStack::start`] brings up, in one process: the embedded DynamoDB (persisted
//! to a file unless in memory) with the table the infrastructure deploys, the HTTP
//! API, the WebSocket API with `@connections`, the change-stream poller that drives
//! `broadcast`, and a periodic TTL sweep. Tests start it on random ports.

pub mod http_api;
pub mod in_process;
pub mod invoker;
pub mod ivs;
pub mod poller;
pub mod s3;
pub mod seed;
pub mod sqs;
pub mod web;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use livestream::AppState;
use livestream::auth::{Authenticator, Role, TokenSpec, mint_hs256};
use livestream::change_stream::{ChangeStreamReader, StartAt};
use livestream::embedded::EmbeddedDynamo;
use livestream::realtime::Connections;
use livestream::store::Store;
use livestream_broadcast::BroadcastState;
use livestream_broadcast::fanout::FanOut;
use livestream_ws::WsState;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::invoker::{Functions, Invoker};

/// The secret of local tokens. Not a secret at all: never use it in a deployment.
pub const LOCAL_JWT_SECRET: &str = "local-development-secret-not-for-production-use";
pub const TABLE_NAME: &str = "livestream";
pub const FAN_OUT_QUEUE: &str = "livestream-fan-out";
const REGION: &str = "us-east-1";
const TTL_SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// How often the presence sweeper runs by default (a one-minute schedule on AWS); with
/// the 60-second heartbeat timeout, a vanished HTTP viewer is ended within 75 seconds.
const PRESENCE_SWEEP_INTERVAL: Duration = Duration::from_secs(15);

/// How functions are called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionMode {
    InProcess,
    /// Through `cargo lambda watch` at this base URL.
    CargoLambda(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub http_port: u16,
    pub ws_port: u16,
    pub dynamo_port: u16,
    /// `None`: in memory.
    pub data_dir: Option<std::path::PathBuf>,
    pub functions: FunctionMode,
    pub jwt_secret: String,
    pub cors_origins: Vec<String>,
    pub limits: websocket::Limits,
    /// The fan-out queue's SQS endpoint.
    pub sqs_port: u16,
    pub fan_out_queue: sqs::QueueSettings,
    /// Streams with more connections than this are delivered through the fan-out queue.
    pub fan_out_threshold: usize,
    pub fan_out_page_size: usize,
    /// The broadcaster's delivery window (zero: every batch goes out at once).
    pub delivery_window: Duration,
    /// Invocations of one HTTP or WebSocket function at a time (see [`Invoker`]).
    pub function_concurrency: usize,
    /// The RTMP ingest's port (encoders push here).
    pub rtmp_port: u16,
    /// The IVS API's port (the functions call it).
    pub ivs_port: u16,
    /// How long a dropped push may stay away before its class ends; also the default
    /// recording configuration's reconnect window (one recording per class).
    pub ingest_grace: Duration,
    /// The local S3's port (recordings are read there).
    pub s3_port: u16,
    /// A recording's thumbnails: one from its first segment, then one per this much.
    pub thumbnail_interval: Duration,
    /// How often the sweeper runs (presence, dead connections, abandoned pushes).
    pub sweep_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            http_port: 3000,
            ws_port: 3001,
            dynamo_port: 8000,
            data_dir: Some(".local-data".into()),
            functions: FunctionMode::InProcess,
            jwt_secret: LOCAL_JWT_SECRET.into(),
            cors_origins: Vec::new(),
            limits: websocket::Limits::default(),
            sqs_port: 9324,
            fan_out_queue: sqs::QueueSettings::default(),
            fan_out_threshold: FanOut::DEFAULT_THRESHOLD,
            fan_out_page_size: FanOut::DEFAULT_PAGE_SIZE,
            delivery_window: Duration::ZERO,
            function_concurrency: invoker::DEFAULT_CONCURRENCY,
            rtmp_port: 1935,
            ivs_port: 9800,
            ingest_grace: livestream::video::DEFAULT_RECONNECT_GRACE,
            s3_port: 9810,
            thumbnail_interval: ivs::DEFAULT_THUMBNAIL_INTERVAL,
            sweep_interval: PRESENCE_SWEEP_INTERVAL,
        }
    }
}

impl Config {
    /// Every port chosen by the system and data in `data_dir` (`None`: in memory), so
    /// that stacks in tests and benchmarks run side by side.
    pub fn on_free_ports(data_dir: Option<std::path::PathBuf>) -> Self {
        Self {
            http_port: 0,
            ws_port: 0,
            dynamo_port: 0,
            sqs_port: 0,
            rtmp_port: 0,
            ivs_port: 0,
            s3_port: 0,
            data_dir,
            ..Self::default()
        }
    }
}

/// A running stack; [`LocalStack::shutdown`] stops it cleanly.
pub struct LocalStack {
    pub http_url: String,
    pub ws_url: String,
    pub connections_url: String,
    pub dynamo_url: String,
    /// The fan-out queue's SQS endpoint.
    pub sqs_url: String,
    /// The IVS API.
    pub ivs_url: String,
    /// Where encoders push: `rtmp://host:port/app/` (the stream key follows).
    pub rtmp_url: String,
    /// The local S3 (path-style; recordings in [`ivs::RECORDINGS_BUCKET`]).
    pub s3_url: String,
    /// The directory holding the local S3's buckets: `<data dir>/s3`, or a temporary
    /// directory removed with the stack when in memory.
    pub s3_root: std::path::PathBuf,
    pub ws: Arc<websocket::WebSocketApi>,
    pub ivs: Arc<ivs::LocalIvs>,
    pub fan_out_queue: Arc<sqs::LocalQueue>,
    dynamo: EmbeddedDynamo,
    /// In memory: the recordings' directory, removed when the stack is dropped.
    _recordings_temp: Option<tempfile::TempDir>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(err) = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %err, "server stopped");
    }
}

impl LocalStack {
    pub async fn start(config: Config) -> Result<Self, String> {
        let mut retention = None;
        let db = match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                let path = dir.join("livestream.db");
                retention = Some(livestream::embedded::StreamRetention::new(&path));
                livestream::embedded::open_file(&path)?
            }
            None => dynoxide::Database::memory().map_err(|e| e.to_string())?,
        };
        let dynamo = EmbeddedDynamo::serve(db, &format!("{}:{}", config.host, config.dynamo_port))
            .await
            .map_err(|e| format!("DynamoDB port {}: {e}", config.dynamo_port))?;
        let client = dynamo.client();
        livestream::table::create_table(&client, TABLE_NAME).await?;
        let store = Store::new(client, TABLE_NAME);

        let http_listener = tokio::net::TcpListener::bind((config.host.as_str(), config.http_port))
            .await
            .map_err(|e| format!("HTTP port {}: {e}", config.http_port))?;
        let ws_listener = tokio::net::TcpListener::bind((config.host.as_str(), config.ws_port))
            .await
            .map_err(|e| format!("WebSocket port {}: {e}", config.ws_port))?;
        let sqs_listener = tokio::net::TcpListener::bind((config.host.as_str(), config.sqs_port))
            .await
            .map_err(|e| format!("SQS port {}: {e}", config.sqs_port))?;
        let sqs_url = format!(
            "http://{}",
            sqs_listener.local_addr().map_err(|e| e.to_string())?
        );
        let fan_out_queue = Arc::new(sqs::LocalQueue::new(
            &sqs_url,
            FAN_OUT_QUEUE,
            config.fan_out_queue,
        ));
        let rtmp_listener = tokio::net::TcpListener::bind((config.host.as_str(), config.rtmp_port))
            .await
            .map_err(|e| format!("RTMP port {}: {e}", config.rtmp_port))?;
        let ivs_listener = tokio::net::TcpListener::bind((config.host.as_str(), config.ivs_port))
            .await
            .map_err(|e| format!("IVS port {}: {e}", config.ivs_port))?;
        let s3_listener = tokio::net::TcpListener::bind((config.host.as_str(), config.s3_port))
            .await
            .map_err(|e| format!("S3 port {}: {e}", config.s3_port))?;
        let s3_url = format!(
            "http://{}",
            s3_listener.local_addr().map_err(|e| e.to_string())?
        );
        let rtmp_addr = rtmp_listener.local_addr().map_err(|e| e.to_string())?;
        let ivs_url = format!(
            "http://{}",
            ivs_listener.local_addr().map_err(|e| e.to_string())?
        );
        let http_addr = http_listener.local_addr().map_err(|e| e.to_string())?;
        let ws_addr = ws_listener.local_addr().map_err(|e| e.to_string())?;
        let connections_url = format!("http://{ws_addr}");

        let auth = || {
            Authenticator::hs256(config.jwt_secret.as_bytes(), None, None)
                .map_err(|e| e.to_string())
        };
        // Video: the ingest and the IVS API over it; the functions sign viewer tokens
        // with a key pair made for this run, whose public half is imported as on AWS.
        // Recordings go to the local S3's buckets, kept with the data or, in memory, in a
        // temporary directory gone with the stack.
        let (s3_root, recordings_temp) = match &config.data_dir {
            Some(dir) => (dir.join("s3"), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("livestream-s3-")
                    .tempdir()
                    .map_err(|e| format!("creating the recordings' temporary directory: {e}"))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let (ingest, ingest_events) =
            local_video::Ingest::new(local_video::IngestConfig::default());
        let ivs = ivs::LocalIvs::with_recordings(
            ingest.clone(),
            rtmp_addr.to_string(),
            format!("http://{http_addr}/video"),
            ivs::RecordingStorage {
                s3_root: s3_root.clone(),
                reconnect_window: config.ingest_grace,
                thumbnail_interval: config.thumbnail_interval,
            },
        )?;
        let s3 = s3::LocalS3::new(s3_root.clone(), config.cors_origins.clone());
        let (playback_private, playback_public) =
            ivs::playback_key_pair(config.data_dir.as_deref())?;
        let video = || {
            video_service(&ivs_url, &playback_private, config.ingest_grace)
                .with_recording(Some(ivs::LOCAL_RECORDING_CONFIGURATION_ARN.into()))
        };

        // In-process functions post to this process's own `@connections`, once it serves.
        let management = in_process::RouterSlot::default();
        let connections = Connections::local_over(&connections_url, management.connector());
        let invoker = Arc::new(
            Invoker::new(match &config.functions {
                FunctionMode::InProcess => Functions::InProcess(Box::new(invoker::InProcess {
                    api: AppState::new(store.clone(), auth()?)
                        .with_video(video())
                        .with_recordings(livestream::recordings::Recordings::new(
                            livestream::recordings::Recordings::local_client(&s3_url),
                            ivs::RECORDINGS_BUCKET,
                            livestream::video::PlaybackKey::Pem(playback_private.clone()),
                        )),
                    ws: WsState {
                        app: AppState::new(store.clone(), auth()?),
                        connections: connections.clone(),
                    },
                    broadcast: BroadcastState {
                        fan_out: Some(FanOut::local(
                            &sqs_url,
                            &fan_out_queue.url,
                            config.fan_out_threshold,
                            config.fan_out_page_size,
                        )),
                        window: config.delivery_window,
                        video: Some(video()),
                        ..BroadcastState::new(store.clone(), connections)
                    },
                })),
                FunctionMode::CargoLambda(base_url) => Functions::CargoLambda {
                    base_url: base_url.trim_end_matches('/').to_string(),
                    client: reqwest::Client::new(),
                },
            })
            .with_concurrency(config.function_concurrency),
        );

        // Nothing from a previous run is connected to this gateway: end what a crashed
        // run left counted before serving anyone.
        match livestream::service::sweep::after_restart(&store).await {
            Ok(report) if report.connections_gone > 0 => tracing::info!(
                connections = report.connections_gone,
                "ended connections left open by the previous run"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cleaning up the previous run failed"),
        }
        let (stop, stopped) = watch::channel(false);
        let ws = Arc::new(websocket::WebSocketApi::new(
            invoker.clone(),
            config.limits,
            stopped.clone(),
        ));
        management.set(websocket::router(ws.clone()));
        let http = Arc::new(http_api::HttpApi {
            invoker: invoker.clone(),
            cors_origins: config.cors_origins.clone(),
        });
        let ivs_router = ivs.router();
        let playback = {
            let ivs = ivs.clone();
            ingest.playback_router(Arc::new(move |channel, token| ivs.may_play(channel, token)))
        };
        let reader =
            ChangeStreamReader::open(dynamo.streams_client(), TABLE_NAME, REGION, StartAt::Latest)
                .await?;
        let mut tasks = vec![
            tokio::spawn(serve(
                http_listener,
                http_api::router(http)
                    .merge(playback)
                    .merge(web::router(web::WebConfig {
                        ws_url: format!("ws://{ws_addr}"),
                        jwt_secret: config.jwt_secret.clone(),
                    })),
                stopped.clone(),
            )),
            tokio::spawn(serve(
                ws_listener,
                websocket::router(ws.clone()),
                stopped.clone(),
            )),
            tokio::spawn(serve(
                sqs_listener,
                sqs::router(fan_out_queue.clone()),
                stopped.clone(),
            )),
            tokio::spawn(serve(ivs_listener, ivs_router, stopped.clone())),
            tokio::spawn(serve(s3_listener, s3::router(s3), stopped.clone())),
            tokio::spawn(ingest.clone().serve_rtmp(rtmp_listener, stopped.clone())),
            tokio::spawn(ivs.clone().deliver_events(
                ingest_events,
                invoker.clone(),
                stopped.clone(),
            )),
            tokio::spawn(poller::run(reader, invoker.clone(), stopped.clone())),
            tokio::spawn(sqs::run_mapping(
                fan_out_queue.clone(),
                {
                    let invoker = invoker.clone();
                    move |event| {
                        let invoker = invoker.clone();
                        async move { invoker.fan_out(event).await }
                    }
                },
                stopped.clone(),
            )),
        ];
        let sweeper = invoker.clone();
        let mut sweeper_stop = stopped.clone();
        let sweep_interval = config.sweep_interval;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(sweep_interval) => {}
                    _ = sweeper_stop.changed() => return,
                }
                sweeper.sweep().await;
            }
        }));
        let sweep_db = dynamo.db.clone();
        let mut sweep_stop = stopped.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(TTL_SWEEP_INTERVAL) => {}
                    _ = sweep_stop.changed() => return,
                }
                let db = sweep_db.clone();
                match tokio::task::spawn_blocking(move || db.sweep_ttl()).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(deleted = n, "TTL sweep"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "TTL sweep failed"),
                    Err(e) => tracing::warn!(error = %e, "TTL sweep panicked"),
                }
                if let Some(retention) = retention.clone() {
                    match tokio::task::spawn_blocking(move || retention.trim()).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => {
                            tracing::info!(deleted = n, "change records past 24 h trimmed")
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "trimming change records failed"),
                        Err(e) => tracing::warn!(error = %e, "trimming change records panicked"),
                    }
                }
            }
        }));
        import_playback_key(&ivs_url, &playback_public).await?;
        Ok(Self {
            ivs_url,
            rtmp_url: format!("rtmp://{rtmp_addr}/app/"),
            s3_url,
            s3_root,
            _recordings_temp: recordings_temp,
            ivs,
            http_url: format!("http://{http_addr}"),
            ws_url: format!("ws://{ws_addr}"),
            connections_url,
            dynamo_url: dynamo.endpoint.clone(),
            sqs_url,
            ws,
            fan_out_queue,
            dynamo,
            stop,
            tasks,
        })
    }

    /// Stops accepting, closes WebSockets (running `$disconnect`), stops the poller
    /// and the DynamoDB server, and releases the database so everything is on disk.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Let sockets run their `$disconnect` while the table is still served: a socket
        // stays counted until its `$disconnect` has returned.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.ws.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.dynamo.shutdown().await;
    }
}

/// The functions' video service: the IVS API at `ivs_url`, what the local ingest
/// carries, viewer tokens signed with `private_pem`.
pub fn video_service(
    ivs_url: &str,
    private_pem: &str,
    grace: Duration,
) -> livestream::video::Video {
    livestream::video::Video::new(
        livestream::video::Video::local_client(ivs_url),
        livestream::model::video::VideoLimits::LOCAL,
        livestream::video::IngestScheme::Rtmp,
        livestream::video::PlaybackKey::Pem(private_pem.to_string()),
    )
    .with_reconnect_grace(grace)
}

/// Imports the public half of the playback key pair into the IVS API, as the
/// deployment's template does on AWS.
pub async fn import_playback_key(ivs_url: &str, public_pem: &str) -> Result<(), String> {
    livestream::video::Video::local_client(ivs_url)
        .import_playback_key_pair()
        .name("local-playback")
        .public_key_material(public_pem)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "importing the playback key: {}",
                aws_sdk_ivs::error::DisplayErrorContext(e)
            )
        })
}

/// A dev token for `user_id` in `role`, signed with `secret`.
pub fn dev_token(secret: &str, user_id: &str, role: Role, name: &str, hours: i64) -> String {
    mint_hs256(
        secret.as_bytes(),
        &TokenSpec {
            user_id,
            role,
            name,
            valid_for: chrono::Duration::hours(hours),
            issuer: None,
            audience: None,
        },
    )
}
