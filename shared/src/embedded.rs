//! An embedded DynamoDB (dynoxide, SQLite-backed) served over HTTP on loopback, so
//! code reaches it through `aws-sdk-dynamodb` exactly as it reaches DynamoDB.
//!
//! The store keeps the change stream in a SQLite table `_stream_records` that it never
//! trims and that has no index on the sequence number: every write computes the next
//! number, and every GetRecords finds its place, by reading all of it, so a store file
//! gets slower with every change it ever recorded. [`open_file`] adds the two indexes
//! those queries can use (SQLite picks them up for the store's own connection, since
//! they live in the file) and [`StreamRetention`] drops records older than DynamoDB
//! Streams keeps them (24 hours). Both work on the file beside the store, through the
//! same SQLite library; clients still see only the DynamoDB API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Region, StalledStreamProtectionConfig};

/// An embedded DynamoDB served over HTTP on 127.0.0.1, from a thread of its own.
///
/// The store answers each request synchronously while it holds its one SQLite
/// connection. Served from the caller's runtime, a request waiting for the store would
/// block a worker thread, and a few of them every task of the process (the HTTP API,
/// the change-stream poller, the sockets). On its own thread it blocks only itself.
pub struct EmbeddedDynamo {
    pub endpoint: String,
    pub db: dynoxide::Database,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    stopped: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// The name of the thread that serves the store.
pub const STORE_THREAD: &str = "dynamodb";

impl EmbeddedDynamo {
    /// Starts a server on `addr` (port 0: a random one) over `db`.
    pub async fn serve(db: dynoxide::Database, addr: &str) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stop_requested) = tokio::sync::oneshot::channel::<()>();
        let (finished, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = db.clone();
        std::thread::Builder::new()
            .name(STORE_THREAD.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let shutdown = async {
                        let _ = stop_requested.await;
                    };
                    let result = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            dynoxide::server::serve_with_shutdown(listener, served, shutdown).await
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = result {
                        tracing::error!(error = %e, "embedded DynamoDB stopped");
                    }
                });
                let _ = finished.send(());
            })?;
        Ok(Self {
            endpoint,
            db,
            stop: Some(stop),
            stopped: Some(stopped),
        })
    }

    /// Stops serving and waits until running requests are done.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }

    /// An in-memory database on a random port.
    pub async fn memory() -> Self {
        let db = dynoxide::Database::memory().expect("in-memory SQLite opens");
        Self::serve(db, "127.0.0.1:0")
            .await
            .expect("loopback port binds")
    }

    /// The SDK configuration that reaches this server (dummy credentials, fixed region).
    pub fn sdk_config(&self) -> aws_sdk_dynamodb::Config {
        dynamo_config(&self.endpoint)
    }

    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(self.sdk_config())
    }

    /// A DynamoDB Streams client for this server.
    pub fn streams_client(&self) -> aws_sdk_dynamodbstreams::Client {
        let conf = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
            .allow_no_auth()
            .interceptor(ForTheLocalStore)
            .endpoint_url(&self.endpoint)
            .stalled_stream_protection(
                aws_sdk_dynamodbstreams::config::StalledStreamProtectionConfig::disabled(),
            )
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(conf)
    }
}

impl Drop for EmbeddedDynamo {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Client configuration for a DynamoDB endpoint on this machine. Without the SDK's
/// stalled-stream protection: an answer over loopback does not stall, and the timer
/// the protection arms for every response was a large part of each call's cost.
/// Unsigned, and shaped by [`ForTheLocalStore`].
pub fn dynamo_config(endpoint: &str) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .allow_no_auth()
        .endpoint_url(endpoint)
        .interceptor(ForTheLocalStore)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build()
}

/// What requests to the embedded store carry instead of what the SDK would add.
///
/// - A fixed SigV4 `Authorization` header and date instead of a signature. The store
///   checks that auth material is present and complete, as DynamoDB does, but never
///   verifies a signature; computing one was about 6 % of the functions' CPU in a
///   chat burst.
/// - Transactions without the idempotency token the SDK adds to each. The store keeps
///   every token for ten minutes and walks all of them at each transaction, so a
///   burst of joins or connects made every later transaction slower; a store in this
///   process sees no retry from another one that a token would guard against.
#[derive(Debug)]
struct ForTheLocalStore;

const UNVERIFIED_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=local/20260101/us-east-1/dynamodb/aws4_request, \
    SignedHeaders=host;x-amz-date, \
    Signature=0000000000000000000000000000000000000000000000000000000000000000";

impl aws_sdk_dynamodb::config::Intercept for ForTheLocalStore {
    fn name(&self) -> &'static str {
        "ForTheLocalStore"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request_mut();
        let headers = request.headers_mut();
        headers.insert("authorization", UNVERIFIED_AUTHORIZATION);
        headers.insert("x-amz-date", "20260101T000000Z");
        if request.headers().get("x-amz-target") != Some("DynamoDB_20120810.TransactWriteItems") {
            return Ok(());
        }
        let Some(body) = request.body().bytes() else {
            return Ok(());
        };
        let mut json: serde_json::Value = serde_json::from_slice(body)?;
        if let Some(fields) = json.as_object_mut() {
            fields.remove("ClientRequestToken");
        }
        let body = serde_json::to_vec(&json)?;
        request
            .headers_mut()
            .insert("content-length", body.len().to_string());
        *request.body_mut() = body.into();
        Ok(())
    }
}

/// How long DynamoDB Streams keeps a change record.
pub const STREAM_RETENTION: Duration = Duration::from_secs(24 * 3600);

// The expressions match the store's queries exactly (`CAST(sequence_number AS
// INTEGER)`), which is what lets SQLite use them: the next sequence number is a
// MAX over the first index, GetRecords a range over the second.
const STREAM_INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS livestream_stream_records_by_sequence
        ON _stream_records (table_name, CAST(sequence_number AS INTEGER));
    CREATE INDEX IF NOT EXISTS livestream_stream_records_by_shard
        ON _stream_records (table_name, shard_id, CAST(sequence_number AS INTEGER));";

/// Opens (or creates) a store file with its change stream indexed, and drops change
/// records older than [`STREAM_RETENTION`]. From the first call on, this process's
/// SQLite connections commit without fsync (see [`commits_without_fsync`]).
pub fn open_file(path: &Path) -> Result<dynoxide::Database, String> {
    commits_without_fsync();
    let db = dynoxide::Database::new(&path.to_string_lossy())
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let side = side_connection(path)?;
    side.execute_batch(STREAM_INDEXES)
        .map_err(|e| format!("indexing the change stream of {}: {e}", path.display()))?;
    StreamRetention { path: path.into() }.trim()?;
    Ok(db)
}

/// Has every SQLite connection this process opens from now on commit with
/// `synchronous = OFF`, the store's included (it exposes no connection to set it on).
///
/// The store opens its file with SQLite's default `FULL`, an fsync per commit; even
/// `NORMAL` fsyncs at every checkpoint, which a chat burst runs a few times a second,
/// and the store's one thread then waited on the disk for a quarter of its time.
/// With `OFF` each commit is handed to the operating system: Ctrl-C or a killed
/// process loses nothing, and only an OS crash or a power cut can damage the file,
/// which a developer's local store can afford. (The store's own switch for this,
/// `enable_bulk_loading`, also maps the file into memory, which made every read of
/// the live path dearer.)
fn commits_without_fsync() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: the routine opens no database, closes none and leaves the list of
        // automatic extensions alone: what `register_auto_extension` forbids.
        if let Err(e) = unsafe { rusqlite::auto_extension::register_auto_extension(on_open) } {
            tracing::warn!(error = %e, "the store will fsync its commits");
        }
    });
}

unsafe extern "C" fn on_open(
    db: *mut rusqlite::ffi::sqlite3,
    error: *mut *mut std::ffi::c_char,
    _: *const rusqlite::ffi::sqlite3_api_routines,
) -> std::ffi::c_int {
    // SAFETY: SQLite hands over a connection it has just opened and still owns;
    // `init_auto_extension` borrows it without closing it.
    unsafe {
        rusqlite::auto_extension::init_auto_extension(db, error, |connection| {
            connection.pragma_update(None, "synchronous", "OFF")
        })
    }
}

fn side_connection(path: &Path) -> Result<rusqlite::Connection, String> {
    let conn =
        rusqlite::Connection::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    // The store's connection may hold the write lock for a request: wait it out.
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Drops change records older than [`STREAM_RETENTION`] from a store file, as
/// DynamoDB Streams does; run now and then (the local stack does with its TTL sweep).
#[derive(Debug, Clone)]
pub struct StreamRetention {
    path: PathBuf,
}

impl StreamRetention {
    pub fn new(path: &Path) -> Self {
        Self { path: path.into() }
    }

    /// Deletes the expired records; returns how many.
    pub fn trim(&self) -> Result<usize, String> {
        let cutoff = chrono::Utc::now().timestamp() - STREAM_RETENTION.as_secs() as i64;
        let conn = side_connection(&self.path)?;
        // Rows are appended in time order, so the expired ones are the ids below the
        // first fresh one: the lookup stops at that row instead of reading them all.
        conn.execute(
            "DELETE FROM _stream_records WHERE id < COALESCE(
                 (SELECT id FROM _stream_records WHERE created_at >= ?1 ORDER BY id LIMIT 1),
                 (SELECT MAX(id) + 1 FROM _stream_records))",
            [cutoff],
        )
        .map_err(|e| format!("trimming the change stream of {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

    use super::EmbeddedDynamo;

    const TABLE: &str = "tokens";

    fn put(id: &str) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(TABLE)
            .item("PK", AttributeValue::S(id.into()))
            .item("SK", AttributeValue::S("x".into()))
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    }

    #[test]
    fn a_store_file_commits_without_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let db = super::open_file(&path).unwrap();
        // The store's connection is out of reach; one opened the same way shows the
        // setting every connection of this process now starts with.
        let side = super::side_connection(&path).unwrap();
        let synchronous: i64 = side
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 0, "OFF");
        drop(db);
    }

    #[tokio::test]
    async fn transactions_reach_the_store_without_their_idempotency_token() {
        let store = EmbeddedDynamo::memory().await;
        let client = store.client();
        crate::table::create_table(&client, TABLE).await.unwrap();
        // With the token kept, the store would take the second call for a changed
        // retry of the first and refuse it (IdempotentParameterMismatch).
        for id in ["a", "b"] {
            client
                .transact_write_items()
                .client_request_token("same-token")
                .transact_items(put(id))
                .send()
                .await
                .unwrap();
        }
        for id in ["a", "b"] {
            let item = client
                .get_item()
                .table_name(TABLE)
                .key("PK", AttributeValue::S(id.into()))
                .key("SK", AttributeValue::S("x".into()))
                .send()
                .await
                .unwrap();
            assert!(item.item.is_some(), "{id} was written");
        }
        store.shutdown().await;
    }
}
