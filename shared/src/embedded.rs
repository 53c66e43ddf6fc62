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

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

/// An embedded DynamoDB served over HTTP on 127.0.0.1.
pub struct EmbeddedDynamo {
    pub endpoint: String,
    pub db: dynoxide::Database,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl EmbeddedDynamo {
    /// Starts a server on a random port over `db`.
    pub async fn serve(db: dynoxide::Database, addr: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = db.clone();
        let served = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = dynoxide::server::serve_with_shutdown(listener, served, shutdown).await
            {
                tracing::error!(error = %e, "embedded DynamoDB stopped");
            }
        });
        Ok(Self {
            endpoint,
            db,
            stop: Some(stop),
            served: Some(served),
        })
    }

    /// Stops serving and waits until running requests are done.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
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
            .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new(
                "local", "local", None, None, "local",
            ))
            .endpoint_url(&self.endpoint)
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

/// Client configuration for a DynamoDB endpoint on this machine.
pub fn dynamo_config(endpoint: &str) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .endpoint_url(endpoint)
        .build()
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
/// records older than [`STREAM_RETENTION`].
pub fn open_file(path: &Path) -> Result<dynoxide::Database, String> {
    let db = dynoxide::Database::new(&path.to_string_lossy())
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let side = side_connection(path)?;
    side.execute_batch(STREAM_INDEXES)
        .map_err(|e| format!("indexing the change stream of {}: {e}", path.display()))?;
    StreamRetention { path: path.into() }.trim()?;
    Ok(db)
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
