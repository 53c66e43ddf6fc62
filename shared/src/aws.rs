//! The AWS SDK configuration every client of a function shares: loaded once per
//! process (region, credentials, the HTTP client and its TLS roots), however many
//! clients a function builds; and what the DynamoDB client adds to it.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use tokio::sync::OnceCell;

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// From the environment (on Lambda: `AWS_REGION` and the function role's credentials),
/// with [`http_client`].
pub async fn sdk_config() -> &'static SdkConfig {
    CONFIG.get_or_init(load).await
}

async fn load() -> SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client());
    // On Lambda the region and the role's credentials are environment variables: taking
    // them from there spares each cold start the default provider chains (profile
    // files, an IMDS client, an STS client for web identity, each endpoint resolver
    // parsing its partitions). Without them (a developer's profile), the chains.
    if let Ok(region) = std::env::var("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader.load().await
}

/// The roots of Amazon Trust Services, which every AWS service endpoint's certificate
/// chains to (Amazon Root CA 1 to 4, and Starfield Services Root G2, which
/// cross-signs them), from the system's CA bundle.
const AWS_ROOTS: &[u8] = include_bytes!("aws-roots.pem");

/// The SDK's default HTTPS client (hyper, rustls with aws-lc), trusting [`AWS_ROOTS`]
/// only: the SDK clients talk to nothing but AWS endpoints, and the client parses its
/// roots whenever it builds a connector (once per client at construction, again at the
/// first request), which for the ~140 certificates of a system bundle was most of a
/// cold start's init. With `SSL_CERT_FILE` set (a proxy that re-signs TLS, an endpoint
/// with another CA), the system's roots from that file instead.
pub fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
    let trust = if std::env::var_os("SSL_CERT_FILE").is_some() {
        TrustStore::default()
    } else {
        TrustStore::empty().with_pem_certificate(AWS_ROOTS)
    };
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store without extra server names is valid");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https()
}

/// Retries single-item writes on the SDK's transient error codes and on
/// `TransactionConflictException`: DynamoDB refuses a write with it while a transaction
/// holds the item (a moderator's answer or pin holds the stream item for milliseconds),
/// and the write was not applied, so trying again after the SDK's backoff is safe.
fn retried_on_transaction_conflict<E>()
-> aws_runtime::retries::classifiers::AwsErrorCodeClassifier<E> {
    use aws_runtime::retries::classifiers::{AwsErrorCodeClassifier, TRANSIENT_ERRORS};
    AwsErrorCodeClassifier::builder()
        .transient_errors([TRANSIENT_ERRORS, &["TransactionConflictException"]].concat())
        .build()
}

/// The DynamoDB client configuration of `config`: the shared settings, retries
/// counted ([`CountRetries`]), single writes retried when a transaction held their
/// item ([`retried_on_transaction_conflict`]), and `endpoint` when given (a local table).
pub fn dynamodb_config(config: &SdkConfig, endpoint: Option<String>) -> aws_sdk_dynamodb::Config {
    use aws_sdk_dynamodb::operation::{
        delete_item::DeleteItemError, put_item::PutItemError, update_item::UpdateItemError,
    };
    let mut builder = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(CountRetries)
        .retry_classifier(retried_on_transaction_conflict::<UpdateItemError>())
        .retry_classifier(retried_on_transaction_conflict::<PutItemError>())
        .retry_classifier(retried_on_transaction_conflict::<DeleteItemError>());
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    builder.build()
}

/// Counts every attempt of an operation after its first (the SDK retried it after
/// throttling or a transient error) as `DynamoRetries` by operation: retries are
/// invisible in the result, which succeeds or fails only once.
#[derive(Debug)]
pub struct CountRetries;

impl Intercept for CountRetries {
    fn name(&self) -> &'static str {
        "CountRetries"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts()) > 1 {
            let operation = cfg.load::<Metadata>().map_or("unknown", |m| m.name());
            crate::telemetry::record_dynamo_retry(operation);
        }
        Ok(())
    }
}

/// The string of a Secrets Manager secret (name or ARN), with `client` or one from
/// [`sdk_config`]; `what` names it in the error (the secret itself never appears).
pub async fn secret_string(
    client: Option<&aws_sdk_secretsmanager::Client>,
    secret_id: &str,
    what: &str,
) -> Result<String, crate::error::ApiError> {
    let client = match client {
        Some(client) => client.clone(),
        None => aws_sdk_secretsmanager::Client::new(sdk_config().await),
    };
    let secret = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            crate::error::ApiError::Internal(format!(
                "reading the {what} {secret_id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    Ok(secret.secret_string().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

    use super::*;
    use crate::telemetry::{DYNAMO_RETRIES, counted::Counted};

    /// A DynamoDB endpoint that refuses the first `refused` requests with the error
    /// `code`, then answers every request with an empty success (no item, nothing
    /// returned).
    async fn refusing_endpoint(code: &'static str, refused: usize) -> String {
        let seen = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().fallback(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < refused {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        format!(
                            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"no"}}"#
                        ),
                    )
                } else {
                    (axum::http::StatusCode::OK, "{}".to_string())
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    #[test]
    fn the_bundled_roots_are_the_five_aws_roots_and_parse() {
        let pem = std::str::from_utf8(AWS_ROOTS).unwrap();
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        // Building a client builds its connector, which parses the roots (and panics
        // on a certificate it cannot read).
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .http_client(http_client())
            .build();
        let _ = aws_sdk_dynamodb::Client::new(&config);
    }

    /// A client of `endpoint` with the functions' configuration and 3 attempts.
    fn client_of(endpoint: String) -> aws_sdk_dynamodb::Client {
        let shared = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                Credentials::for_tests(),
            ))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build();
        aws_sdk_dynamodb::Client::from_conf(dynamodb_config(&shared, Some(endpoint)))
    }

    fn update(
        client: &aws_sdk_dynamodb::Client,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        client
            .update_item()
            .table_name("t")
            .key("PK", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
            .update_expression("ADD n :one")
            .expression_attribute_values(
                ":one",
                aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
            )
    }

    #[test]
    fn a_single_write_refused_while_a_transaction_held_its_item_is_retried() {
        let counted = Counted::default();
        counted.block_on(async {
            let endpoint = refusing_endpoint("TransactionConflictException", 2).await;
            let out = update(&client_of(endpoint)).send().await;
            assert!(out.is_ok(), "{out:?}");
        });
        assert_eq!(
            counted.get(DYNAMO_RETRIES, &[("Operation", "UpdateItem")]),
            2
        );
    }

    #[test]
    fn a_failed_condition_is_not_retried() {
        let counted = Counted::default();
        counted.block_on(async {
            let endpoint = refusing_endpoint("ConditionalCheckFailedException", 1).await;
            let out = update(&client_of(endpoint)).send().await;
            assert!(out.is_err(), "{out:?}");
        });
        assert_eq!(
            counted.get(DYNAMO_RETRIES, &[("Operation", "UpdateItem")]),
            0
        );
    }

    #[test]
    fn attempts_after_the_first_are_counted_by_operation() {
        let counted = Counted::default();
        counted.block_on(async {
            let endpoint = refusing_endpoint("ThrottlingException", 2).await;
            let client = client_of(endpoint);
            let out = client
                .get_item()
                .table_name("t")
                .key("PK", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
                .send()
                .await;
            assert!(out.is_ok(), "{out:?}");
        });
        assert_eq!(counted.get(DYNAMO_RETRIES, &[("Operation", "GetItem")]), 2);
    }
}
