//! `cargo run -p local`: the whole livestream backend on this machine.

use clap::{Args, Parser, Subcommand, ValueEnum};
use livestream::auth::Role;
use livestream_broadcast::fanout::FanOut;
use local::{Config, FunctionMode, LOCAL_JWT_SECRET, LocalStack, dev_token};

// The stack's tasks allocate and free on both cores at once (SDK requests, JSON,
// frames); glibc's allocator spent a fifth of the chat profile in its own locks and
// bookkeeping.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The whole livestream backend on this machine: the HTTP and WebSocket APIs, an embedded
/// DynamoDB, SQS, and the video ingest and playback in place of Amazon IVS.
#[derive(Debug, Parser)]
#[command(
    name = "local",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Environment: JWT_SECRET overrides the local signing secret (tokens and $connect); \
                  RUST_LOG sets the log level (e.g. info, local=debug)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a development token (signed with the stack's secret, `JWT_SECRET`).
    Token {
        /// The user id (the token's `sub`).
        #[arg(long)]
        user: String,
        /// What the token's holder may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The name shown in chat (default: the user id).
        #[arg(long)]
        name: Option<String>,
        /// How long the token is valid.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(i64).range(1..=24 * 366))]
        hours: i64,
    },
    /// Create (or reset) what the samples in events/ use, in the running stack's DynamoDB.
    Seed {
        #[arg(
            long,
            env = "DYNAMODB_ENDPOINT",
            default_value = "http://127.0.0.1:8000"
        )]
        dynamo_endpoint: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Teacher,
    Student,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Teacher => Role::Teacher,
            RoleArg::Student => Role::Student,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// HTTP API, web console and HLS playback port.
    #[arg(long, env = "LOCAL_HTTP_PORT", default_value_t = 3000)]
    http_port: u16,
    /// WebSocket API and @connections port.
    #[arg(long, env = "LOCAL_WS_PORT", default_value_t = 3001)]
    ws_port: u16,
    /// Embedded DynamoDB (and DynamoDB Streams) port.
    #[arg(long, env = "LOCAL_DYNAMO_PORT", default_value_t = 8000)]
    dynamo_port: u16,
    /// The fan-out queue's SQS endpoint port.
    #[arg(long, env = "LOCAL_SQS_PORT", default_value_t = 9324)]
    sqs_port: u16,
    /// The video ingest, where OBS and ffmpeg push.
    #[arg(long, env = "LOCAL_RTMP_PORT", default_value_t = 1935)]
    rtmp_port: u16,
    /// The IVS API the functions call.
    #[arg(long, env = "LOCAL_IVS_PORT", default_value_t = 9800)]
    ivs_port: u16,
    /// How long a dropped push may stay away before a class that went live from its
    /// encoder ends, in seconds; a push back within it also continues its recording.
    #[arg(long, env = "LOCAL_INGEST_GRACE_SECONDS", default_value_t = 60)]
    ingest_grace_seconds: u64,
    /// The local S3, where recordings are read (path-style, SigV4-signed requests).
    #[arg(long, env = "LOCAL_S3_PORT", default_value_t = 9810)]
    s3_port: u16,
    /// A recording's thumbnails: one from its first segment, then one per this many
    /// seconds (needs ffmpeg on PATH).
    #[arg(long, env = "LOCAL_THUMBNAIL_INTERVAL_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    thumbnail_interval_seconds: u64,
    /// Where the database file, the recordings (`s3/`) and the playback key live.
    #[arg(long, env = "LOCAL_DATA_DIR", default_value = ".local-data")]
    data_dir: std::path::PathBuf,
    /// Keep nothing on disk.
    #[arg(long, env = "LOCAL_IN_MEMORY")]
    in_memory: bool,
    /// Streams with more connections go through the fan-out queue.
    #[arg(long, env = "LOCAL_FAN_OUT_THRESHOLD", default_value_t = FanOut::DEFAULT_THRESHOLD)]
    fan_out_threshold: usize,
    /// At most one frame per viewer per this many milliseconds (0: at once; the
    /// deployment uses 1000).
    #[arg(long, env = "LOCAL_DELIVERY_WINDOW_MS", default_value_t = 0)]
    delivery_window_ms: u64,
    /// Invocations of one function at a time, like Lambda's reserved concurrency.
    #[arg(long, env = "LOCAL_FUNCTION_CONCURRENCY",
          default_value_t = local::invoker::DEFAULT_CONCURRENCY as u16,
          value_parser = clap::value_parser!(u16).range(1..))]
    function_concurrency: u16,
    /// Allow this browser origin (repeatable; default: any localhost origin).
    #[arg(long, env = "LOCAL_CORS_ORIGIN", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// Invoke functions through `cargo lambda watch` at this URL (e.g.
    /// http://127.0.0.1:9000) instead of in this process.
    #[arg(long, env = "LOCAL_CARGO_LAMBDA")]
    cargo_lambda: Option<String>,
}

impl RunArgs {
    fn config(self) -> Config {
        Config {
            http_port: self.http_port,
            ws_port: self.ws_port,
            dynamo_port: self.dynamo_port,
            sqs_port: self.sqs_port,
            rtmp_port: self.rtmp_port,
            ivs_port: self.ivs_port,
            ingest_grace: std::time::Duration::from_secs(self.ingest_grace_seconds),
            s3_port: self.s3_port,
            thumbnail_interval: std::time::Duration::from_secs(self.thumbnail_interval_seconds),
            data_dir: (!self.in_memory).then_some(self.data_dir),
            fan_out_threshold: self.fan_out_threshold,
            delivery_window: std::time::Duration::from_millis(self.delivery_window_ms),
            function_concurrency: usize::from(self.function_concurrency),
            cors_origins: self.cors_origin,
            functions: match self.cargo_lambda {
                Some(url) => FunctionMode::CargoLambda(url),
                None => FunctionMode::InProcess,
            },
            jwt_secret: secret(),
            ..Config::default()
        }
    }
}

/// `JWT_SECRET`, or the local stack's development secret.
fn secret() -> String {
    std::env::var("JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| LOCAL_JWT_SECRET.to_string())
}

async fn seed_command(endpoint: String) -> Result<(), String> {
    let client =
        aws_sdk_dynamodb::Client::from_conf(livestream::embedded::dynamo_config(&endpoint));
    let store = livestream::store::Store::new(client, local::TABLE_NAME);
    local::seed::seed(&store, &secret())
        .await
        .map_err(|e| format!("seeding {endpoint} (is `cargo run -p local` running?): {e}"))?;
    println!(
        "seeded {endpoint}: course {}, live stream {}, question {}, connection {}; \
         every file in events/ now answers 2xx once (seed again to reset)",
        local::seed::COURSE,
        local::seed::STREAM_LIVE,
        local::seed::QUESTION_OPEN,
        local::seed::CONNECTION,
    );
    Ok(())
}

fn print_banner(stack: &LocalStack, config: &Config) {
    let secret = &config.jwt_secret;
    let teacher = dev_token(secret, "teacher-1", Role::Teacher, "Teacher One", 24);
    let student1 = dev_token(secret, "student-1", Role::Student, "Student One", 24);
    let student2 = dev_token(secret, "student-2", Role::Student, "Student Two", 24);
    let storage = match &config.data_dir {
        Some(dir) => format!("{}/livestream.db", dir.display()),
        None => "in memory".into(),
    };
    println!(
        "\nLivestream backend running locally\n\n\
         Web console     {http}/  (teacher console and student view)\n\
         HTTP API        {http}/api/livestream/...\n\
         WebSocket API   {ws}/?token=<JWT>&stream_id=<id>\n\
         @connections    {conn}/@connections/<connection id>\n\
         DynamoDB        {dynamo} (table {table}, data {storage})\n\
         SQS             {sqs} (fan-out queue {queue}, dead letters {dlq})\n\
         Video ingest    {rtmp}<stream key>  (OBS: Service \"Custom\"; the key from the console)\n\
         IVS API         {ivs} (live playlists at {http}/video/<channel>/index.m3u8)\n\
         S3              {s3} (recordings in bucket {bucket}, files under {s3_root})\n\n\
         Dev tokens (24 h; `cargo run -p local -- token --user ID --role ROLE` for more):\n\
         TEACHER=\"{teacher}\"\n\
         STUDENT1=\"{student1}\"\n\
         STUDENT2=\"{student2}\"\n",
        http = stack.http_url,
        ws = stack.ws_url,
        conn = stack.connections_url,
        dynamo = stack.dynamo_url,
        table = local::TABLE_NAME,
        sqs = stack.sqs_url,
        queue = stack.fan_out_queue.url,
        dlq = stack.fan_out_queue.dead_letter_url,
        rtmp = stack.rtmp_url,
        ivs = stack.ivs_url,
        s3 = stack.s3_url,
        bucket = local::ivs::RECORDINGS_BUCKET,
        s3_root = if config.data_dir.is_some() {
            stack.s3_root.display().to_string()
        } else {
            format!("{} (removed at exit)", stack.s3_root.display())
        },
    );
    if let FunctionMode::CargoLambda(url) = &config.functions {
        // `cargo lambda watch` listens where the stack sends invocations.
        let authority = url.split("://").last().unwrap_or(url).trim_end_matches('/');
        let (address, port) = authority.rsplit_once(':').unwrap_or((authority, "9000"));
        println!(
            "Functions are invoked through cargo lambda at {url}; start it in another terminal with:\n  \
             TABLE_NAME={table} DYNAMODB_ENDPOINT={dynamo} JWT_SECRET='{secret}' WS_MANAGEMENT_ENDPOINT={conn} \\\n  \
             FANOUT_QUEUE_URL={queue} AWS_ENDPOINT_URL_SQS={sqs} \\\n  \
             VIDEO_SERVICE=local AWS_ENDPOINT_URL_IVS={ivs} PLAYBACK_PRIVATE_KEY=\"$(cat {key})\" INGEST_GRACE_SECONDS={grace} \\\n  \
             RECORDING_CONFIGURATION_ARN={recording} RECORDING_BUCKET={bucket} AWS_ENDPOINT_URL_S3={s3} \\\n  \
             AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local cargo lambda watch -F livestream-bootstrap/watch -A {address} -P {port}\n",
            table = local::TABLE_NAME,
            dynamo = stack.dynamo_url,
            conn = stack.connections_url,
            queue = stack.fan_out_queue.url,
            sqs = stack.sqs_url,
            ivs = stack.ivs_url,
            key = config
                .data_dir
                .as_ref()
                .map(|d| d.join("playback-key.pem").display().to_string())
                .unwrap_or_else(|| "<run with --data-dir for a kept key>".into()),
            grace = config.ingest_grace.as_secs(),
            recording = local::ivs::LOCAL_RECORDING_CONFIGURATION_ARN,
            bucket = local::ivs::RECORDINGS_BUCKET,
            s3 = stack.s3_url,
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() {
    livestream::telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token {
            user,
            role,
            name,
            hours,
        }) => {
            let name = name.unwrap_or_else(|| user.clone());
            println!("{}", dev_token(&secret(), &user, role.into(), &name, hours));
        }
        Some(Command::Seed { dynamo_endpoint }) => {
            if let Err(e) = seed_command(dynamo_endpoint).await {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        None => {
            let config = cli.run.config();
            let stack = match LocalStack::start(config.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("could not start: {e}");
                    std::process::exit(1);
                }
            };
            print_banner(&stack, &config);
            shutdown_signal().await;
            println!("shutting down…");
            stack.shutdown().await;
            println!("stopped; data is saved");
        }
    }
}
