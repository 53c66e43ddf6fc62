//! Posting to WebSocket clients through the API Gateway Management API
//! (`@connections`), used by the WebSocket functions and the broadcaster.
//!
//! A frame is one signed `POST {endpoint}/@connections/{id}`, sent here without the
//! SDK's orchestrator: its interceptors, config layers and retry machinery cost about
//! four fifths of the CPU of a frame, and a class posts one per viewer per batch.
//! Closing and checking a connection (rare) go through the SDK client.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_apigatewaymanagement::Client;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use tokio::sync::RwLock;

/// Why a post to a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The client is gone (410): its connection record should be deleted.
    #[error("connection is gone")]
    Gone,
    #[error("posting to the connection failed: {0}")]
    Failed(String),
}

/// Attempts of a post: throttling, 5xx and network errors are tried again with
/// backoff; never a 410 Gone or another 4xx.
pub const POST_ATTEMPTS: u32 = 3;

/// A waiting post holds one of a few dozen slots of a fan-out: back off briefly.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// A post that does not finish in this long is failed (and retried by the fan-out).
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials that expire within this long are loaded again before signing.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// A connection id as a path segment: everything but RFC 3986's unreserved characters
/// is escaped, as the SDK escapes a label (`=`, `+` and `/` occur in API Gateway's ids).
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn post_retries() -> aws_sdk_apigatewaymanagement::config::retry::RetryConfig {
    aws_sdk_apigatewaymanagement::config::retry::RetryConfig::standard()
        .with_max_attempts(POST_ATTEMPTS)
        .with_initial_backoff(FIRST_BACKOFF)
}

fn local_config(endpoint: &str) -> aws_sdk_apigatewaymanagement::config::Builder {
    use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Region};
    aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        .endpoint_url(endpoint)
        .retry_config(post_retries())
}

const LOCAL_REGION: &str = "us-east-1";

/// A client of one WebSocket API's `@connections` endpoint. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Connections {
    client: Client,
    frames: Arc<FramePoster>,
}

/// Sends frames: `POST {endpoint}/@connections/{id}`, signed when it has a signer.
#[derive(Debug)]
struct FramePoster {
    endpoint: String,
    transport: Transport,
    signer: Option<Signer>,
}

#[derive(Debug)]
enum Transport {
    Http(reqwest::Client),
    /// A router of this process (the local stack), called, not reached over loopback.
    InProcess(SharedHttpConnector),
}

/// Signs requests to `execute-api` (SigV4) with the credentials of the SDK's chain,
/// loaded again shortly before they expire.
#[derive(Debug)]
struct Signer {
    region: String,
    provider: SharedCredentialsProvider,
    loaded: RwLock<Option<Credentials>>,
}

/// One attempt's failure, and whether another attempt may succeed.
#[derive(Debug)]
enum Attempt {
    Gone,
    Transient(String),
    Final(String),
}

impl Connections {
    /// From `WS_MANAGEMENT_ENDPOINT`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
    /// on AWS, the local stack's loopback URL locally.
    pub async fn from_env() -> Result<Self, String> {
        let endpoint = std::env::var("WS_MANAGEMENT_ENDPOINT").map_err(|_| {
            "WS_MANAGEMENT_ENDPOINT is not set: the WebSocket API's @connections endpoint"
                .to_string()
        })?;
        let config = crate::aws::sdk_config().await;
        let signer = match (config.region(), config.credentials_provider()) {
            (Some(region), Some(provider)) => Some(Signer::new(region.as_ref(), provider)),
            _ => return Err("no region or credentials to sign @connections posts".into()),
        };
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(&endpoint)
            .retry_config(post_retries())
            .build();
        Ok(Self {
            client: Client::from_conf(conf),
            frames: Arc::new(FramePoster::over_http(&endpoint, signer)?),
        })
    }

    /// A client of an `@connections` endpoint on this machine (the local stack, tests):
    /// fixed region, dummy credentials, over HTTP and signed as on AWS.
    pub fn local(endpoint: &str) -> Self {
        let credentials = Credentials::new("local", "local", None, None, "local");
        let signer = Signer::new(
            LOCAL_REGION,
            SharedCredentialsProvider::new(credentials.clone()),
        );
        Self {
            client: Client::from_conf(
                local_config(endpoint)
                    .credentials_provider(credentials)
                    .build(),
            ),
            frames: Arc::new(
                FramePoster::over_http(endpoint, Some(signer))
                    .expect("an HTTP client with default settings builds"),
            ),
        }
    }

    /// [`Connections::local`] sending through `connector` (the local stack's
    /// in-process one) instead of over HTTP, and unsigned: that `@connections` checks
    /// no signature, and signing was a twentieth of the stack's CPU per live frame.
    pub fn local_over(endpoint: &str, connector: SharedHttpConnector) -> Self {
        use aws_sdk_apigatewaymanagement::config::StalledStreamProtectionConfig;
        use aws_smithy_runtime_api::client::http::http_client_fn;
        let sdk_connector = connector.clone();
        Self {
            client: Client::from_conf(
                local_config(endpoint)
                    .http_client(http_client_fn(move |_, _| sdk_connector.clone()))
                    .allow_no_auth()
                    // An answer handed over in memory cannot stall.
                    .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
                    .build(),
            ),
            frames: Arc::new(FramePoster {
                endpoint: endpoint.trim_end_matches('/').to_string(),
                transport: Transport::InProcess(connector),
                signer: None,
            }),
        }
    }

    /// Sends one frame to a connection, trying again after throttling, a 5xx or a
    /// network error ([`POST_ATTEMPTS`] in all).
    pub async fn post(&self, connection_id: &str, data: Vec<u8>) -> Result<(), PostError> {
        use backon::{ExponentialBuilder, Retryable};
        let data = Bytes::from(data);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_BACKOFF)
            .with_max_times(POST_ATTEMPTS as usize - 1)
            .with_jitter();
        (|| self.frames.post(connection_id, data.clone()))
            .retry(backoff)
            .when(|attempt| matches!(attempt, Attempt::Transient(_)))
            .await
            .map_err(|attempt| match attempt {
                Attempt::Gone => PostError::Gone,
                Attempt::Transient(reason) | Attempt::Final(reason) => PostError::Failed(reason),
            })
    }

    /// Closes a connection from the server side.
    pub async fn close(&self, connection_id: &str) -> Result<(), PostError> {
        use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
        match self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(DeleteConnectionError::GoneException(_)) => Err(PostError::Gone),
                _ => Err(PostError::Failed(err.to_string())),
            },
        }
    }
}

impl FramePoster {
    fn over_http(endpoint: &str, signer: Option<Signer>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .map_err(|e| format!("building the @connections HTTP client: {e}"))?;
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            transport: Transport::Http(client),
            signer,
        })
    }

    fn url(&self, connection_id: &str) -> String {
        format!(
            "{}/@connections/{}",
            self.endpoint,
            percent_encoding::utf8_percent_encode(connection_id, LABEL)
        )
    }

    async fn post(&self, connection_id: &str, data: Bytes) -> Result<(), Attempt> {
        let mut request = http::Request::post(self.url(connection_id))
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(data)
            .map_err(|e| Attempt::Final(format!("not a valid request: {e}")))?;
        if let Some(signer) = &self.signer {
            signer.sign(&mut request, SystemTime::now()).await?;
        }
        match &self.transport {
            Transport::Http(client) => {
                let request = reqwest::Request::try_from(request)
                    .map_err(|e| Attempt::Final(format!("not a valid request: {e}")))?;
                let response = client
                    .execute(request)
                    .await
                    .map_err(|e| Attempt::Transient(format!("{e}")))?;
                let status = response.status();
                // Read to its end, so the connection goes back to the pool.
                let body = response.bytes().await.unwrap_or_default();
                answer(status, &body)
            }
            Transport::InProcess(connector) => {
                let request = HttpRequest::try_from(request.map(Into::into))
                    .map_err(|e| Attempt::Final(format!("not a valid request: {e}")))?;
                let response = connector
                    .call(request)
                    .await
                    .map_err(|e| Attempt::Transient(format!("{e}")))?;
                let status = http::StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                answer(status, response.body().bytes().unwrap_or_default())
            }
        }
    }
}

/// What an answer of `@connections` means for the post.
fn answer(status: http::StatusCode, body: &[u8]) -> Result<(), Attempt> {
    if status.is_success() {
        return Ok(());
    }
    if status == http::StatusCode::GONE {
        return Err(Attempt::Gone);
    }
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let reason = format!("{status}: {text}");
    if status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(Attempt::Transient(reason))
    } else {
        Err(Attempt::Final(reason))
    }
}

impl Signer {
    fn new(region: &str, provider: SharedCredentialsProvider) -> Self {
        Self {
            region: region.to_string(),
            provider,
            loaded: RwLock::new(None),
        }
    }

    async fn credentials(&self, now: SystemTime) -> Result<Credentials, Attempt> {
        let fresh = |c: &Credentials| c.expiry().is_none_or(|at| at > now + CREDENTIALS_MARGIN);
        if let Some(credentials) = self.loaded.read().await.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        let mut loaded = self.loaded.write().await;
        if let Some(credentials) = loaded.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| Attempt::Transient(format!("loading credentials: {e}")))?;
        *loaded = Some(credentials.clone());
        Ok(credentials)
    }

    /// Adds SigV4 headers for `execute-api` (`Authorization`, `X-Amz-Date`, and the
    /// session token when there is one), as the SDK signs the same request.
    async fn sign(
        &self,
        request: &mut http::Request<Bytes>,
        now: SystemTime,
    ) -> Result<(), Attempt> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity = self.credentials(now).await?.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Attempt::Final(format!("signing: {e}")))?
            .into();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.uri().to_string(),
            headers,
            SignableBody::Bytes(request.body()),
        )
        .map_err(|e| Attempt::Final(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Attempt::Final(format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

impl Connections {
    /// Whether a connection is still open (`GetConnection`): `Err(Gone)` when not.
    pub async fn check(&self, connection_id: &str) -> Result<(), PostError> {
        use aws_sdk_apigatewaymanagement::operation::get_connection::GetConnectionError;
        match self
            .client
            .get_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(GetConnectionError::GoneException(_)) => Err(PostError::Gone),
                _ => Err(PostError::Failed(err.to_string())),
            },
        }
    }
}

/// API Gateway refuses WebSocket frames over 32 KB; frames are kept under this.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// A message to a client: `{ "type", "stream_id", "data", "sequence" }`. `sequence` is
/// null here, as in replies to a client's own action; the broadcaster sets it to the
/// change record's sequence number for live events.
pub fn client_event(kind: &str, stream_id: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "type": kind, "stream_id": stream_id, "data": data, "sequence": null })
}

/// Packs events into as few frames as fit under [`MAX_FRAME_BYTES`]: a frame is one
/// event object, or a JSON array of events when several go together. An event that
/// alone exceeds the limit is dropped with an error log (nothing we produce is that big).
pub fn pack_frames(events: &[serde_json::Value]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    let mut size = 2;
    let flush = |batch: &mut Vec<String>, frames: &mut Vec<Vec<u8>>| {
        match batch.len() {
            0 => {}
            1 => frames.push(batch.remove(0).into_bytes()),
            _ => frames.push(format!("[{}]", batch.join(",")).into_bytes()),
        }
        batch.clear();
    };
    for event in events {
        let text = event.to_string();
        if text.len() + 2 > MAX_FRAME_BYTES {
            tracing::error!(
                bytes = text.len(),
                "event larger than a WebSocket frame dropped"
            );
            continue;
        }
        if size + text.len() + 1 > MAX_FRAME_BYTES {
            flush(&mut batch, &mut frames);
            size = 2;
        }
        size += text.len() + 1;
        batch.push(text);
    }
    flush(&mut batch, &mut frames);
    frames
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// A request as it arrived: method, path as sent (still escaped), headers, body.
    #[derive(Clone, Debug)]
    struct Arrived {
        path: String,
        headers: http::HeaderMap,
        body: Vec<u8>,
    }

    /// An `@connections` on loopback that answers each connection's posts with the
    /// statuses scripted for it, then 200, and keeps every request.
    struct Endpoint {
        url: String,
        arrived: Arc<Mutex<Vec<Arrived>>>,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    impl Endpoint {
        async fn start(script: &[(&str, &[u16])]) -> Self {
            let arrived: Arc<Mutex<Vec<Arrived>>> = Arc::default();
            let script: Arc<Mutex<HashMap<String, Vec<u16>>>> = Arc::new(Mutex::new(
                script
                    .iter()
                    .map(|(id, statuses)| (id.to_string(), statuses.to_vec()))
                    .collect(),
            ));
            let kept = arrived.clone();
            let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
                let (kept, script) = (kept.clone(), script.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
                    let path = parts.uri.path().to_string();
                    let id = path.rsplit('/').next().unwrap_or_default().to_string();
                    kept.lock().unwrap().push(Arrived {
                        path,
                        headers: parts.headers,
                        body,
                    });
                    let status = script
                        .lock()
                        .unwrap()
                        .get_mut(&id)
                        .filter(|statuses| !statuses.is_empty())
                        .map_or(200, |statuses| statuses.remove(0));
                    http::StatusCode::from_u16(status).unwrap()
                }
            });
            let (url, stop) = crate::testing::serve_on_loopback(app).await;
            Self {
                url,
                arrived,
                _stop: stop,
            }
        }

        fn arrived(&self) -> Vec<Arrived> {
            self.arrived.lock().unwrap().clone()
        }
    }

    /// The SigV4 signature of a request as it arrived, worked out anew from what came
    /// over the wire.
    fn signature_of(arrived: &Arrived, credentials: &Credentials) -> String {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let header = |name: &str| arrived.headers[name].to_str().unwrap().to_string();
        let at = chrono::NaiveDateTime::parse_from_str(&header("x-amz-date"), "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc();
        let identity = credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(LOCAL_REGION)
            .name("execute-api")
            .time(at.into())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let authorization = header("authorization");
        let signed: Vec<&str> = authorization
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .split(';')
            .collect();
        let headers = signed
            .iter()
            .map(|name| (*name, arrived.headers[*name].to_str().unwrap()));
        let request = SignableRequest::new(
            "POST",
            format!("http://{}{}", header("host"), arrived.path),
            headers,
            SignableBody::Bytes(&arrived.body),
        )
        .unwrap();
        let (_, signature) = sign(request, &params).unwrap().into_parts();
        signature
    }

    #[tokio::test]
    async fn a_frame_is_signed_for_execute_api_over_what_went_on_the_wire() {
        let endpoint = Endpoint::start(&[]).await;
        let credentials =
            Credentials::new("AKIDLOCAL", "secret", Some("token".into()), None, "test");
        let connections = Connections {
            frames: Arc::new(
                FramePoster::over_http(
                    &endpoint.url,
                    Some(Signer::new(
                        LOCAL_REGION,
                        SharedCredentialsProvider::new(credentials.clone()),
                    )),
                )
                .unwrap(),
            ),
            ..Connections::local(&endpoint.url)
        };
        // API Gateway's ids are base64: `=`, `+` and `/` have to be escaped.
        let id = "L0SM9c+OFv/HcCIhw=";
        connections
            .post(id, b"{\"type\":\"pong\"}".to_vec())
            .await
            .unwrap();

        // The SDK's request for the same post, for its path.
        let sdk = Client::from_conf(
            local_config(&endpoint.url)
                .credentials_provider(credentials.clone())
                .build(),
        );
        sdk.post_to_connection()
            .connection_id(id)
            .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
                b"x".to_vec(),
            ))
            .send()
            .await
            .unwrap();

        let [ours, theirs] = <[Arrived; 2]>::try_from(endpoint.arrived()).unwrap();
        assert_eq!(ours.path, "/@connections/L0SM9c%2BOFv%2FHcCIhw%3D");
        assert_eq!(ours.path, theirs.path, "the same path as the SDK's");
        assert_eq!(ours.body, b"{\"type\":\"pong\"}");
        let authorization = ours.headers["authorization"].to_str().unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDLOCAL/")
                && authorization.contains("/us-east-1/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(
            authorization.contains("x-amz-security-token"),
            "{authorization}"
        );
        assert_eq!(ours.headers["x-amz-security-token"], "token");
        let signature = signature_of(&ours, &credentials);
        assert!(
            authorization.ends_with(&format!("Signature={signature}")),
            "{authorization} is not {signature}"
        );
        // The check above can fail: a wrong secret gives another signature.
        let wrong = Credentials::new("AKIDLOCAL", "other", Some("token".into()), None, "test");
        assert_ne!(signature_of(&ours, &wrong), signature);
    }

    #[tokio::test]
    async fn throttling_and_5xx_are_tried_again_other_4xx_and_gone_are_not() {
        let endpoint = Endpoint::start(&[
            ("throttled", &[429, 503]),
            ("down", &[500, 502, 500, 500]),
            ("refused", &[400]),
            ("gone", &[410]),
        ])
        .await;
        let connections = Connections::local(&endpoint.url);
        let tries = |id: &str| {
            endpoint
                .arrived()
                .iter()
                .filter(|a| a.path.ends_with(&format!("/{id}")))
                .count()
        };

        connections.post("throttled", b"1".to_vec()).await.unwrap();
        assert_eq!(tries("throttled"), 3);
        let down = connections.post("down", b"1".to_vec()).await;
        assert!(
            matches!(down, Err(PostError::Failed(ref r)) if r.contains("500")),
            "{down:?}"
        );
        assert_eq!(tries("down"), POST_ATTEMPTS as usize);
        let refused = connections.post("refused", b"1".to_vec()).await;
        assert!(
            matches!(refused, Err(PostError::Failed(ref r)) if r.contains("400")),
            "{refused:?}"
        );
        assert_eq!(tries("refused"), 1);
        assert!(matches!(
            connections.post("gone", b"1".to_vec()).await,
            Err(PostError::Gone)
        ));
        assert_eq!(tries("gone"), 1);
    }

    #[tokio::test]
    async fn credentials_are_loaded_once_and_again_when_they_near_expiry() {
        use aws_credential_types::provider::future::ProvideCredentials as Loading;
        #[derive(Debug)]
        struct Counting(Arc<std::sync::atomic::AtomicUsize>, Duration);
        impl ProvideCredentials for Counting {
            fn provide_credentials<'a>(&'a self) -> Loading<'a>
            where
                Self: 'a,
            {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let expiry = SystemTime::now() + self.1;
                Loading::ready(Ok(Credentials::new(
                    "AKID",
                    "secret",
                    None,
                    Some(expiry),
                    "test",
                )))
            }
        }
        for (lifetime, expected) in [(Duration::from_secs(3600), 1), (Duration::from_secs(60), 3)] {
            let loaded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let provider = Counting(loaded.clone(), lifetime);
            let signer = Signer::new(LOCAL_REGION, SharedCredentialsProvider::new(provider));
            for _ in 0..3 {
                let mut request = http::Request::post("https://example.com/@connections/a")
                    .body(Bytes::from_static(b"x"))
                    .unwrap();
                signer.sign(&mut request, SystemTime::now()).await.unwrap();
                assert!(request.headers().contains_key("authorization"));
            }
            assert_eq!(
                loaded.load(std::sync::atomic::Ordering::SeqCst),
                expected,
                "{lifetime:?}"
            );
        }
    }

    #[test]
    fn one_event_is_an_object_and_several_are_an_array() {
        let a = client_event("pong", "s", serde_json::json!({}));
        assert_eq!(pack_frames(std::slice::from_ref(&a)).len(), 1);
        let frame: serde_json::Value =
            serde_json::from_slice(&pack_frames(std::slice::from_ref(&a))[0]).unwrap();
        assert!(frame.is_object());
        let frames = pack_frames(&[a.clone(), a.clone()]);
        let frame: serde_json::Value = serde_json::from_slice(&frames[0]).unwrap();
        assert_eq!(frame.as_array().unwrap().len(), 2);
    }

    #[test]
    fn frames_stay_under_the_api_gateway_limit() {
        let big = client_event(
            "chat.message",
            "s",
            serde_json::json!({"message": "x".repeat(1000)}),
        );
        let events = vec![big; 100];
        let frames = pack_frames(&events);
        assert!(frames.len() > 1);
        assert!(frames.iter().all(|f| f.len() <= MAX_FRAME_BYTES));
        let total: usize = frames
            .iter()
            .map(
                |f| match serde_json::from_slice::<serde_json::Value>(f).unwrap() {
                    serde_json::Value::Array(a) => a.len(),
                    _ => 1,
                },
            )
            .sum();
        assert_eq!(total, 100);
    }
}
