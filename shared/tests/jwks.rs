//! RS256 tokens verified with keys from a JWKS URL, as with a Cognito user pool.
//! The key pair in `fixtures/` exists only for these tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livestream::auth::{Authenticator, Role};

const PRIVATE_KEY: &[u8] = include_bytes!("fixtures/test-rsa-key.pem");
const PUBLIC_KEY: &[u8] = include_bytes!("fixtures/test-rsa-public.pem");
const JWKS: &str = include_str!("fixtures/test-jwks.json");
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test";

/// Serves the JWKS on loopback and counts how often it is fetched.
async fn jwks_server() -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { ([("content-type", "application/json")], JWKS) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fetches)
}

fn rs256(kid: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(PRIVATE_KEY).unwrap(),
    )
    .unwrap()
}

fn claims(aud: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": "cognito-user-1",
        "cognito:groups": ["teacher"],
        "iss": ISSUER,
        "aud": aud,
        "exp": chrono::Utc::now().timestamp() + 600,
        "name": "Grace"
    })
}

#[tokio::test]
async fn rs256_tokens_from_the_jwks_are_accepted_and_keys_are_cached() {
    let (url, fetches) = jwks_server().await;
    let auth = Authenticator::jwks(url, Some(ISSUER.into()), Some("app-client".into()));
    for _ in 0..3 {
        let identity = auth
            .authenticate(&rs256("test-key-1", claims("app-client")))
            .await
            .unwrap();
        assert_eq!(identity.user_id, "cognito-user-1");
        assert_eq!(identity.role, Role::Teacher);
        assert_eq!(identity.display_name, "Grace");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn wrong_audience_and_unknown_keys_are_refused_without_refetch_storms() {
    let (url, fetches) = jwks_server().await;
    let auth = Authenticator::jwks(url, Some(ISSUER.into()), Some("app-client".into()));
    assert!(
        auth.authenticate(&rs256("test-key-1", claims("other-client")))
            .await
            .is_err()
    );
    for _ in 0..5 {
        let err = auth
            .authenticate(&rs256("forged-kid", claims("app-client")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "unknown kids refetch at most once a minute"
    );
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let (url, _) = jwks_server().await;
    let auth = Authenticator::jwks(url, None, None);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-key-1".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims("app-client"),
        &EncodingKey::from_secret(PUBLIC_KEY),
    )
    .unwrap();
    let err = auth.authenticate(&forged).await.unwrap_err();
    assert!(err.to_string().contains("algorithm"), "{err}");
}
