//! An embedded DynamoDB (dynoxide, SQLite-backed) served over HTTP on loopback, so
//! code reaches it through `aws-sdk-dynamodb` exactly as it reaches DynamoDB.

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
