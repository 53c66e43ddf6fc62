//! Where the classes' recordings are: the S3 bucket the video service records into
//! (Amazon S3 through `aws-sdk-s3`, or the local stack's emulation of it), and the
//! tokens that let a player fetch a recording's playlist without an `Authorization`
//! header (HLS players fetch playlists as plain GETs).
//!
//! A recording token is an HS256 JWT for one viewer, one stream and one recording
//! session, short-lived like a live viewer token. Its key is derived from the private
//! half of the playback key pair, the secret the live viewer tokens are signed with
//! (the same trust model, and a deployment whose users sign in through an identity
//! provider has no HS256 secret of its own).

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::ApiError;
use crate::video::PlaybackKey;

/// How long a recording token plays beyond the recording's own length: the player
/// fetches the playlist once and its segments while it plays, so the presigned segment
/// URLs in it must outlive the whole watch (with room for pauses).
pub const RECORDING_TOKEN_SLACK: Duration = Duration::from_secs(60 * 60);
/// The longest a recording token plays. Presigned URLs signed with a function role's
/// temporary credentials also stop working when those credentials expire: a player
/// asks `GET .../recording` again when a segment is refused.
pub const RECORDING_TOKEN_MAX: Duration = Duration::from_secs(6 * 60 * 60);

/// The audience of recording tokens: no other token of this deployment carries it.
const AUDIENCE: &str = "livestream-recording";
/// Separates the recording tokens' HMAC key from any other use of the playback key.
const KEY_CONTEXT: &[u8] = b"livestream recording token v1\n";

/// The claims of a recording token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The viewer.
    sub: String,
    /// The stream.
    stream_id: String,
    /// The recording session it plays.
    recording: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// What a valid recording token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingGrant {
    pub user_id: String,
    pub stream_id: String,
    pub session_id: String,
    pub expires_at: DateTime<Utc>,
}

/// The recordings' bucket and the signing of their tokens.
pub struct Recordings {
    client: Client,
    /// The bucket the recording configuration writes to.
    pub bucket: String,
    key_source: PlaybackKey,
    keys: OnceCell<(EncodingKey, DecodingKey)>,
}

fn unavailable(what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("recordings' storage, {what}: {err}"))
}

/// A refused recording token: always the same 403, whatever was wrong with it.
fn refused() -> ApiError {
    ApiError::forbidden(
        "invalid_recording_token",
        "the recording token is missing, expired or not for this recording: ask GET /api/livestream/{id}/recording again",
    )
}

impl Recordings {
    pub fn new(client: Client, bucket: impl Into<String>, key: PlaybackKey) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            key_source: key,
            keys: OnceCell::new(),
        }
    }

    /// From the environment: `RECORDING_BUCKET` (`None` without it: the deployment
    /// does not record), the playback key as [`crate::video::Video::from_env`] reads it
    /// (`PLAYBACK_KEY_SECRET_NAME` or `PLAYBACK_PRIVATE_KEY`), and for the local stack's
    /// S3 `AWS_ENDPOINT_URL_S3` (path-style addressing).
    pub async fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(bucket) = var("RECORDING_BUCKET") else {
            return Ok(None);
        };
        let key = match (var("PLAYBACK_KEY_SECRET_NAME"), var("PLAYBACK_PRIVATE_KEY")) {
            (Some(secret), _) => PlaybackKey::SecretsManager(secret),
            (None, Some(pem)) => PlaybackKey::Pem(pem),
            (None, None) => {
                return Err("RECORDING_BUCKET needs the playback key (PLAYBACK_KEY_SECRET_NAME or PLAYBACK_PRIVATE_KEY) to sign recording tokens".into());
            }
        };
        let mut config = aws_sdk_s3::config::Builder::from(crate::aws::sdk_config().await);
        if let Some(endpoint) = var("AWS_ENDPOINT_URL_S3") {
            config = config.endpoint_url(endpoint).force_path_style(true);
        }
        Ok(Some(Self::new(
            Client::from_conf(config.build()),
            bucket,
            key,
        )))
    }

    /// A client of the local stack's S3 at `endpoint`: path-style, fixed region, the
    /// local stack's credentials.
    pub fn local_client(endpoint: &str) -> Client {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new("local", "local", None, None, "local"))
            .build();
        Client::from_conf(config)
    }

    async fn keys(&self) -> Result<&(EncodingKey, DecodingKey), ApiError> {
        self.keys
            .get_or_try_init(|| async {
                let pem = match &self.key_source {
                    PlaybackKey::Pem(pem) => pem.clone(),
                    PlaybackKey::SecretsManager(secret_id) => {
                        crate::aws::secret_string(None, secret_id, "playback key").await?
                    }
                };
                let secret = [KEY_CONTEXT, pem.trim().as_bytes()].concat();
                Ok::<_, ApiError>((
                    EncodingKey::from_secret(&secret),
                    DecodingKey::from_secret(&secret),
                ))
            })
            .await
    }

    /// A token that plays the recording `session_id` of `stream_id` for `user_id`
    /// until `expires_at`.
    pub async fn sign_token(
        &self,
        stream_id: &str,
        user_id: &str,
        session_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        let (key, _) = self.keys().await?;
        let claims = Claims {
            sub: user_id.to_string(),
            stream_id: stream_id.to_string(),
            recording: session_id.to_string(),
            aud: AUDIENCE.to_string(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(|e| ApiError::Internal(format!("signing a recording token: {e}")))
    }

    /// What `token` grants, if it is a valid, unexpired recording token for
    /// `stream_id`; otherwise 403 `invalid_recording_token`.
    pub async fn verify_token(
        &self,
        token: &str,
        stream_id: &str,
    ) -> Result<RecordingGrant, ApiError> {
        let (_, key) = self.keys().await?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|_| refused())?
            .claims;
        if claims.stream_id != stream_id {
            return Err(refused());
        }
        Ok(RecordingGrant {
            user_id: claims.sub,
            stream_id: claims.stream_id,
            session_id: claims.recording,
            expires_at: DateTime::from_timestamp(claims.exp, 0).ok_or_else(refused)?,
        })
    }

    /// A presigned GET of `key` in `bucket`, valid for `valid_for` (at least a second).
    pub async fn presigned_get(
        &self,
        bucket: &str,
        key: &str,
        valid_for: Duration,
    ) -> Result<String, ApiError> {
        let config = PresigningConfig::expires_in(valid_for.max(Duration::from_secs(1)))
            .map_err(|e| ApiError::Internal(format!("presigning for {valid_for:?}: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| {
                ApiError::Internal(format!(
                    "presigning {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(request.uri().to_string())
    }

    /// The text of an object (a playlist); `None` when there is no such object.
    pub async fn read_text(&self, bucket: &str, key: &str) -> Result<Option<String>, ApiError> {
        use aws_sdk_s3::operation::get_object::GetObjectError;
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None);
            }
            Err(e) => {
                return Err(unavailable(
                    &format!("reading {key}"),
                    aws_sdk_s3::error::DisplayErrorContext(e),
                ));
            }
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| unavailable(&format!("reading {key}"), e))?
            .into_bytes();
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| ApiError::Internal(format!("{key} is not UTF-8 text")))
    }

    /// Deletes every object under `prefix/` (ListObjectsV2 pages of up to 1000 keys,
    /// each deleted with one DeleteObjects); how many were deleted. Nothing there is
    /// not an error, so deleting again is harmless.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, ApiError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let prefix = format!("{}/", prefix.trim_end_matches('/'));
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut deleted = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                unavailable(
                    &format!("listing {prefix}"),
                    aws_sdk_s3::error::DisplayErrorContext(e),
                )
            })?;
            let objects = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::Internal(format!("an object to delete: {e}")))?;
            if objects.is_empty() {
                continue;
            }
            let count = objects.len();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| ApiError::Internal(format!("a DeleteObjects request: {e}")))?;
            let out = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| {
                    unavailable(
                        &format!("deleting under {prefix}"),
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    )
                })?;
            if let Some(failed) = out.errors().first() {
                return Err(unavailable(
                    &format!("deleting under {prefix}"),
                    format!(
                        "{} of {count} objects not deleted, first {:?}: {:?}",
                        out.errors().len(),
                        failed.key(),
                        failed.message()
                    ),
                ));
            }
            deleted += count;
        }
        Ok(deleted)
    }
}

/// How long a recording token for a recording of `duration_ms` plays (unknown while
/// it is still being written: the longest).
pub fn token_lifetime(duration_ms: Option<i64>) -> Duration {
    match duration_ms.and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => (Duration::from_millis(ms) + RECORDING_TOKEN_SLACK).min(RECORDING_TOKEN_MAX),
        None => RECORDING_TOKEN_MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_outlive_the_recording_within_the_cap() {
        assert_eq!(
            token_lifetime(Some(20_000)),
            Duration::from_secs(3620),
            "20 s plus the slack"
        );
        assert_eq!(token_lifetime(Some(10 * 3_600_000)), RECORDING_TOKEN_MAX);
        assert_eq!(token_lifetime(None), RECORDING_TOKEN_MAX);
        assert_eq!(token_lifetime(Some(-5)), RECORDING_TOKEN_MAX);
    }
}
