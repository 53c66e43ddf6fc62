//! `cargo run -p local`: the whole livestream backend on this machine.

use livestream::auth::Role;
use local::{Config, FunctionMode, LOCAL_JWT_SECRET, LocalStack, dev_token};

// The stack's tasks allocate and free on both cores at once (SDK requests, JSON,
// frames); glibc's allocator spent a fifth of the chat profile in its own locks and
// bookkeeping.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: local [options]            run the whole system
       local token --user ID --role teacher|student|admin [--name NAME] [--hours H]
       local seed [--dynamo-endpoint URL]
                                  create (or reset) what the events/ samples use, in
                                  the running stack's DynamoDB (default
                                  http://127.0.0.1:8000)

options:
  --http-port N        HTTP API port (default 3000)
  --ws-port N          WebSocket API and @connections port (default 3001)
  --dynamo-port N      embedded DynamoDB port (default 8000)
  --data-dir DIR       where the database file lives (default .local-data)
  --in-memory          keep nothing on disk
  --sqs-port N         the fan-out queue's SQS endpoint port (default 9324)
  --rtmp-port N        the video ingest, where OBS and ffmpeg push (default 1935)
  --ivs-port N         the IVS API the functions call (default 9800)
  --ingest-grace-seconds N  how long a dropped push may stay away before a class that
                       went live from its encoder ends (default 60)
  --fan-out-threshold N  streams with more connections go through the fan-out queue
                       (default 1000)
  --delivery-window-ms N  at most one frame per viewer per N ms (default 0: at once;
                       the deployment uses 1000)
  --function-concurrency N  invocations of one function at a time, like Lambda's
                       reserved concurrency (default 8)
  --cors-origin URL    allow this browser origin (repeatable; default: any localhost origin)
  --cargo-lambda URL   invoke functions through `cargo lambda watch` at URL
                       (e.g. http://127.0.0.1:9000) instead of in this process
environment: JWT_SECRET overrides the local signing secret; RUST_LOG the log level";

fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    args.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn port(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<u16, String> {
    value(args, flag)?
        .parse()
        .map_err(|_| format!("{flag} needs a port number"))
}

fn secret() -> String {
    std::env::var("JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| LOCAL_JWT_SECRET.to_string())
}

fn token_command(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (mut user, mut role, mut name, mut hours) = (None, None, None, 24);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--user" => user = Some(value(&mut args, "--user")?),
            "--role" => {
                role = Some(
                    Role::parse(&value(&mut args, "--role")?)
                        .ok_or("--role is teacher, student or admin")?,
                )
            }
            "--name" => name = Some(value(&mut args, "--name")?),
            "--hours" => {
                hours = value(&mut args, "--hours")?
                    .parse()
                    .map_err(|_| "--hours needs a number")?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let user = user.ok_or("--user is required")?;
    let role = role.ok_or("--role is required")?;
    let name = name.unwrap_or_else(|| user.clone());
    println!("{}", dev_token(&secret(), &user, role, &name, hours));
    Ok(())
}

async fn seed_command(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let mut endpoint = "http://127.0.0.1:8000".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dynamo-endpoint" => endpoint = value(&mut args, "--dynamo-endpoint")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
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

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut config = Config {
        jwt_secret: secret(),
        ..Config::default()
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--http-port" => config.http_port = port(&mut args, "--http-port")?,
            "--ws-port" => config.ws_port = port(&mut args, "--ws-port")?,
            "--dynamo-port" => config.dynamo_port = port(&mut args, "--dynamo-port")?,
            "--sqs-port" => config.sqs_port = port(&mut args, "--sqs-port")?,
            "--rtmp-port" => config.rtmp_port = port(&mut args, "--rtmp-port")?,
            "--ivs-port" => config.ivs_port = port(&mut args, "--ivs-port")?,
            "--ingest-grace-seconds" => {
                config.ingest_grace = std::time::Duration::from_secs(
                    value(&mut args, "--ingest-grace-seconds")?
                        .parse()
                        .map_err(|_| "--ingest-grace-seconds needs seconds")?,
                )
            }
            "--fan-out-threshold" => {
                config.fan_out_threshold = value(&mut args, "--fan-out-threshold")?
                    .parse()
                    .map_err(|_| "--fan-out-threshold needs a number")?
            }
            "--delivery-window-ms" => {
                config.delivery_window = std::time::Duration::from_millis(
                    value(&mut args, "--delivery-window-ms")?
                        .parse()
                        .map_err(|_| "--delivery-window-ms needs milliseconds")?,
                )
            }
            "--function-concurrency" => {
                config.function_concurrency = value(&mut args, "--function-concurrency")?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--function-concurrency needs a number above 0")?
            }
            "--data-dir" => config.data_dir = Some(value(&mut args, "--data-dir")?.into()),
            "--in-memory" => config.data_dir = None,
            "--cors-origin" => config.cors_origins.push(value(&mut args, "--cors-origin")?),
            "--cargo-lambda" => {
                config.functions = FunctionMode::CargoLambda(value(&mut args, "--cargo-lambda")?)
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(config)
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
         SQS             {sqs} (fan-out queue {queue})\n\
         Video ingest    {rtmp}<stream key>  (OBS: Service \"Custom\"; the key from the console)\n\
         IVS API         {ivs} (live playlists at {http}/video/<channel>/index.m3u8)\n\n\
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
        rtmp = stack.rtmp_url,
        ivs = stack.ivs_url,
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
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("token") {
        args.next();
        if let Err(e) = token_command(args) {
            eprintln!("{e}\n\n{USAGE}");
            std::process::exit(2);
        }
        return;
    }
    if args.peek().map(String::as_str) == Some("seed") {
        args.next();
        if let Err(e) = seed_command(args).await {
            eprintln!("{e}\n\n{USAGE}");
            std::process::exit(2);
        }
        return;
    }
    let config = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
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
