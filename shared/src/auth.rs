//! Bearer JWT authentication.
//!
//! Two key sources: a shared HS256 secret (local and dev) or an RS256 JWKS URL (a real
//! identity provider such as a Cognito user pool). Each accepts exactly one algorithm,
//! so `alg: none` and algorithm confusion (an HS256 token signed with the RSA public
//! key) are refused before any signature check. `exp` is required; `nbf`, `iss` and
//! `aud` are checked when configured.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::error::ApiError;

/// What a user may do, from the token's `role` claim (or Cognito groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Teacher,
    Student,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "teacher" | "instructor" => Some(Self::Teacher),
            "student" => Some(Self::Student),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Teacher => "teacher",
            Self::Student => "student",
            Self::Admin => "admin",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user_id: String,
    pub role: Role,
    /// Shown next to chat messages and questions; falls back to the user id.
    pub display_name: String,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default, rename = "custom:role")]
    custom_role: Option<String>,
    #[serde(default, rename = "cognito:groups")]
    groups: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
}

impl Claims {
    fn into_identity(self) -> Result<Identity, ApiError> {
        if self.sub.trim().is_empty() || self.sub.len() > 128 {
            return Err(ApiError::Unauthorized("token has no valid subject".into()));
        }
        let role = self
            .role
            .as_deref()
            .or(self.custom_role.as_deref())
            .and_then(Role::parse)
            .or_else(|| {
                // A user in several groups gets the most privileged one.
                let roles: Vec<Role> = self.groups.iter().filter_map(|g| Role::parse(g)).collect();
                [Role::Admin, Role::Teacher, Role::Student]
                    .into_iter()
                    .find(|r| roles.contains(r))
            })
            .ok_or_else(|| ApiError::Unauthorized("token carries no known role".into()))?;
        let display_name = self
            .name
            .or(self.preferred_username)
            .map(|n| n.trim().chars().take(100).collect::<String>())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.sub.clone());
        Ok(Identity {
            user_id: self.sub,
            role,
            display_name,
        })
    }
}

/// Why authentication could not even be configured.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error(
        "set JWT_JWKS_URL (RS256), JWT_SECRET_NAME (HS256 from Secrets Manager) or JWT_SECRET (HS256)"
    )]
    NoKeySource,
    #[error("JWT_SECRET must be at least 32 bytes")]
    WeakSecret,
}

const JWKS_REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(60);
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

struct JwksCache {
    keys: JwkSet,
    fetched_at: Option<Instant>,
}

enum KeySource {
    Secret(DecodingKey),
    /// The HS256 secret in Secrets Manager, read once on the first token (so functions
    /// that never verify a token never call Secrets Manager) and kept for the process.
    SecretsManager {
        secret_id: String,
        /// `None`: a client from the process's SDK configuration, built on first use.
        client: Option<aws_sdk_secretsmanager::Client>,
        key: tokio::sync::OnceCell<DecodingKey>,
    },
    Jwks {
        url: String,
        http: reqwest::Client,
        cache: Arc<RwLock<JwksCache>>,
    },
}

/// Verifies bearer tokens and turns their claims into an [`Identity`].
pub struct Authenticator {
    keys: KeySource,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    /// HS256 with a shared secret, for local and dev.
    pub fn hs256(
        secret: &[u8],
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Self, AuthConfigError> {
        if secret.len() < 32 {
            return Err(AuthConfigError::WeakSecret);
        }
        Ok(Self {
            keys: KeySource::Secret(DecodingKey::from_secret(secret)),
            issuer,
            audience,
        })
    }

    /// RS256 with keys from a JWKS URL (fetched lazily, refreshed on an unknown `kid`).
    pub fn jwks(url: String, issuer: Option<String>, audience: Option<String>) -> Self {
        Self {
            keys: KeySource::Jwks {
                url,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap_or_default(),
                cache: Arc::new(RwLock::new(JwksCache {
                    keys: JwkSet { keys: vec![] },
                    fetched_at: None,
                })),
            },
            issuer,
            audience,
        }
    }

    /// HS256 with the secret string of a Secrets Manager secret (name or ARN), read
    /// through `client` (default: one from the environment's SDK configuration).
    pub fn secrets_manager(
        secret_id: String,
        client: Option<aws_sdk_secretsmanager::Client>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        Self {
            keys: KeySource::SecretsManager {
                secret_id,
                client,
                key: tokio::sync::OnceCell::new(),
            },
            issuer,
            audience,
        }
    }

    /// From `JWT_JWKS_URL`, `JWT_SECRET_NAME` (a Secrets Manager secret: on AWS the
    /// value never sits in the environment) or `JWT_SECRET`, plus optional `JWT_ISSUER`
    /// and `JWT_AUDIENCE`.
    pub fn from_env() -> Result<Self, AuthConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let issuer = var("JWT_ISSUER");
        let audience = var("JWT_AUDIENCE");
        if let Some(url) = var("JWT_JWKS_URL") {
            return Ok(Self::jwks(url, issuer, audience));
        }
        if let Some(secret_id) = var("JWT_SECRET_NAME") {
            return Ok(Self::secrets_manager(secret_id, None, issuer, audience));
        }
        match var("JWT_SECRET") {
            Some(secret) => Self::hs256(secret.as_bytes(), issuer, audience),
            None => Err(AuthConfigError::NoKeySource),
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.required_spec_claims = HashSet::from(["exp".to_string(), "sub".to_string()]);
        match &self.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        validation
    }

    /// Verifies a raw token.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, ApiError> {
        let unauthorized = |e: jsonwebtoken::errors::Error| {
            ApiError::Unauthorized(format!("invalid token: {}", describe(&e)))
        };
        let header = jsonwebtoken::decode_header(token).map_err(unauthorized)?;
        let data = match &self.keys {
            KeySource::Secret(key) => {
                if header.alg != Algorithm::HS256 {
                    return Err(ApiError::Unauthorized(
                        "invalid token: algorithm not accepted".into(),
                    ));
                }
                jsonwebtoken::decode::<Claims>(token, key, &self.validation(Algorithm::HS256))
            }
            KeySource::SecretsManager {
                secret_id,
                client,
                key,
            } => {
                if header.alg != Algorithm::HS256 {
                    return Err(ApiError::Unauthorized(
                        "invalid token: algorithm not accepted".into(),
                    ));
                }
                // Boxed: the SDK call would make every handler's future deep and large.
                let key = key
                    .get_or_try_init(|| Box::pin(fetch_secret(client.as_ref(), secret_id)))
                    .await?;
                jsonwebtoken::decode::<Claims>(token, key, &self.validation(Algorithm::HS256))
            }
            KeySource::Jwks { url, http, cache } => {
                if header.alg != Algorithm::RS256 {
                    return Err(ApiError::Unauthorized(
                        "invalid token: algorithm not accepted".into(),
                    ));
                }
                let kid = header
                    .kid
                    .ok_or_else(|| ApiError::Unauthorized("invalid token: no key id".into()))?;
                let key = jwks_key(url, http, cache, &kid).await?;
                jsonwebtoken::decode::<Claims>(token, &key, &self.validation(Algorithm::RS256))
            }
        }
        .map_err(unauthorized)?;
        data.claims.into_identity()
    }

    /// Verifies the `Authorization: Bearer <token>` header of a request.
    pub async fn authenticate_headers(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Identity, ApiError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization header".into()))?
            .to_str()
            .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("expected a Bearer token".into()))?;
        self.authenticate(token).await
    }
}

/// The HS256 key from a Secrets Manager secret string; a failure is retried on the
/// next token (nothing is cached).
async fn fetch_secret(
    client: Option<&aws_sdk_secretsmanager::Client>,
    secret_id: &str,
) -> Result<DecodingKey, ApiError> {
    let value = crate::aws::secret_string(client, secret_id, "JWT secret").await?;
    if value.len() < 32 {
        return Err(ApiError::Internal(format!(
            "the JWT secret {secret_id} is shorter than 32 bytes"
        )));
    }
    Ok(DecodingKey::from_secret(value.as_bytes()))
}

fn describe(err: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "algorithm not accepted",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "malformed",
    }
}

async fn jwks_key(
    url: &str,
    http: &reqwest::Client,
    cache: &RwLock<JwksCache>,
    kid: &str,
) -> Result<DecodingKey, ApiError> {
    {
        let cached = cache.read().await;
        let fresh = cached
            .fetched_at
            .is_some_and(|at| at.elapsed() < JWKS_MAX_AGE);
        if fresh && let Some(jwk) = cached.keys.find(kid) {
            return DecodingKey::from_jwk(jwk)
                .map_err(|_| ApiError::Unauthorized("invalid token: unusable key".into()));
        }
    }
    let mut cached = cache.write().await;
    // An unknown kid triggers at most one fetch a minute, so forged kids cannot
    // turn every request into a call to the identity provider.
    let may_refresh = cached
        .fetched_at
        .is_none_or(|at| at.elapsed() >= JWKS_REFRESH_MIN_INTERVAL);
    if may_refresh {
        let keys = http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| ApiError::Internal(format!("fetching JWKS failed: {e}")))?
            .json::<JwkSet>()
            .await
            .map_err(|e| ApiError::Internal(format!("JWKS is not valid: {e}")))?;
        cached.keys = keys;
        cached.fetched_at = Some(Instant::now());
    }
    let jwk = cached
        .keys
        .find(kid)
        .ok_or_else(|| ApiError::Unauthorized("invalid token: unknown key id".into()))?;
    DecodingKey::from_jwk(jwk)
        .map_err(|_| ApiError::Unauthorized("invalid token: unusable key".into()))
}

/// Claims of a token minted by [`mint_hs256`].
#[derive(Debug, Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    role: &'a str,
    name: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// What a minted dev token says.
pub struct TokenSpec<'a> {
    pub user_id: &'a str,
    pub role: Role,
    pub name: &'a str,
    pub valid_for: chrono::Duration,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

/// Signs an HS256 token: dev identities of the local stack and tests.
pub fn mint_hs256(secret: &[u8], spec: &TokenSpec<'_>) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = MintedClaims {
        sub: spec.user_id,
        role: spec.role.as_str(),
        name: spec.name,
        iat: now,
        exp: now + spec.valid_for.num_seconds(),
        iss: spec.issuer,
        aud: spec.audience,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing with an in-memory key cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";

    /// A loopback Secrets Manager answering `GetSecretValue` with `SECRET`; counts calls.
    async fn secrets_manager() -> (
        aws_sdk_secretsmanager::Client,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: http::HeaderMap, body: String| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(headers["x-amz-target"], "secretsmanager.GetSecretValue");
                    assert!(body.contains("livestream/jwt"), "{body}");
                    (
                        [("content-type", "application/x-amz-json-1.1")],
                        serde_json::json!({
                            "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:livestream/jwt-AbCdEf",
                            "Name": "livestream/jwt",
                            "SecretString": std::str::from_utf8(SECRET).unwrap(),
                        })
                        .to_string(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "local", "local", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .build();
        (aws_sdk_secretsmanager::Client::from_conf(conf), calls)
    }

    #[tokio::test]
    async fn the_hs256_secret_is_read_from_secrets_manager_once_and_kept() {
        let (client, calls) = secrets_manager().await;
        let auth =
            Authenticator::secrets_manager("livestream/jwt".into(), Some(client), None, None);
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing is read before a token"
        );
        for _ in 0..3 {
            let who = auth
                .authenticate(&mint_hs256(SECRET, &spec(Role::Student)))
                .await
                .unwrap();
            assert_eq!(who.user_id, "u-1");
        }
        let forged = mint_hs256(
            b"another-secret-that-is-long-enough-for-hs256",
            &spec(Role::Admin),
        );
        assert!(matches!(
            auth.authenticate(&forged).await,
            Err(ApiError::Unauthorized(_))
        ));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn spec(role: Role) -> TokenSpec<'static> {
        TokenSpec {
            user_id: "u-1",
            role,
            name: "Ada",
            valid_for: chrono::Duration::hours(1),
            issuer: Some("livestream-dev"),
            audience: Some("livestream"),
        }
    }

    fn auth() -> Authenticator {
        Authenticator::hs256(
            SECRET,
            Some("livestream-dev".into()),
            Some("livestream".into()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_valid_token_yields_the_identity() {
        let token = mint_hs256(SECRET, &spec(Role::Teacher));
        let id = auth().authenticate(&token).await.unwrap();
        assert_eq!(id.user_id, "u-1");
        assert_eq!(id.role, Role::Teacher);
        assert_eq!(id.display_name, "Ada");
    }

    #[tokio::test]
    async fn expired_tokens_are_rejected() {
        let mut s = spec(Role::Student);
        s.valid_for = chrono::Duration::minutes(-5);
        let token = mint_hs256(SECRET, &s);
        let err = auth().authenticate(&token).await.unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[tokio::test]
    async fn wrong_issuer_and_audience_are_rejected() {
        let mut s = spec(Role::Student);
        s.issuer = Some("someone-else");
        assert!(auth().authenticate(&mint_hs256(SECRET, &s)).await.is_err());
        let mut s = spec(Role::Student);
        s.audience = Some("other-app");
        assert!(auth().authenticate(&mint_hs256(SECRET, &s)).await.is_err());
    }

    #[tokio::test]
    async fn a_token_signed_with_another_secret_is_rejected() {
        let token = mint_hs256(
            b"another-secret-that-is-also-long-enough!!",
            &spec(Role::Admin),
        );
        let err = auth().authenticate(&token).await.unwrap_err();
        assert_eq!(err.code(), "unauthorized");
    }

    #[tokio::test]
    async fn alg_none_is_rejected() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let exp = chrono::Utc::now().timestamp() + 3600;
        let payload = URL_SAFE_NO_PAD.encode(
            format!(r#"{{"sub":"u-1","role":"admin","exp":{exp},"iss":"livestream-dev","aud":"livestream"}}"#)
                .as_bytes(),
        );
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(auth().authenticate(&token).await.is_err());
        }
    }

    #[tokio::test]
    async fn hs256_tokens_are_refused_by_a_jwks_authenticator() {
        // Algorithm confusion: an attacker signs HS256 with the (public) RSA key.
        let jwks = Authenticator::jwks("http://127.0.0.1:9/jwks.json".into(), None, None);
        let token = mint_hs256(SECRET, &spec(Role::Admin));
        let err = jwks.authenticate(&token).await.unwrap_err();
        assert!(err.to_string().contains("algorithm"), "{err}");
    }

    #[tokio::test]
    async fn tokens_without_a_known_role_are_rejected() {
        let claims = serde_json::json!({"sub": "u-9", "role": "hacker", "exp": chrono::Utc::now().timestamp() + 60});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let open = Authenticator::hs256(SECRET, None, None).unwrap();
        assert!(open.authenticate(&token).await.is_err());
    }

    #[tokio::test]
    async fn cognito_groups_map_to_the_most_privileged_role() {
        let claims = serde_json::json!({"sub": "u-9", "cognito:groups": ["student", "teacher"], "exp": chrono::Utc::now().timestamp() + 60});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let open = Authenticator::hs256(SECRET, None, None).unwrap();
        assert_eq!(open.authenticate(&token).await.unwrap().role, Role::Teacher);
    }

    #[tokio::test]
    async fn bearer_header_is_required() {
        let mut headers = http::HeaderMap::new();
        assert!(auth().authenticate_headers(&headers).await.is_err());
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert!(auth().authenticate_headers(&headers).await.is_err());
        let token = mint_hs256(SECRET, &spec(Role::Student));
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_eq!(
            auth().authenticate_headers(&headers).await.unwrap().role,
            Role::Student
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Authenticator::hs256(b"short", None, None).is_err());
    }
}
