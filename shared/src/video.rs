//! A stream's channel on the video service: Amazon IVS through `aws-sdk-ivs`, or the
//! local stack, which serves the same API. The functions create a channel per stream,
//! rotate and revoke its key, cut the encoder off, read the push's health, and sign the
//! viewer tokens of private streams (ES384, IVS playback authorization).

use std::time::Duration;

use aws_sdk_ivs::Client;
use aws_sdk_ivs::types::{ChannelLatencyMode, ChannelType as IvsChannelType};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::error::ApiError;
use crate::model::IngestHealth;
use crate::model::Stream;
use crate::model::video::{ChannelType, VideoLimits};

/// How long a push may stay away before a class that went live from its encoder ends.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(60);
/// How long a private stream's viewer token plays.
pub const VIEWER_TOKEN_TTL: Duration = Duration::from_secs(10 * 60);

/// How encoders reach the ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestScheme {
    /// Amazon IVS: `rtmps://{endpoint}:443/app/`.
    Rtmps,
    /// The local stack: `rtmp://{endpoint}/app/` (the endpoint carries its port).
    Rtmp,
}

impl IngestScheme {
    pub fn url(self, endpoint: &str) -> String {
        match self {
            Self::Rtmps => format!("rtmps://{endpoint}:443/app/"),
            Self::Rtmp => format!("rtmp://{endpoint}/app/"),
        }
    }
}

/// Where the private half of the playback key pair comes from.
pub enum PlaybackKey {
    /// A PEM (PKCS#8) in memory: the local stack, tests.
    Pem(String),
    /// A Secrets Manager secret whose string is the PEM, read on the first private
    /// token and kept for the process (as the JWT secret is).
    SecretsManager(String),
}

/// A new stream's channel, as the video service created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub arn: String,
    pub ingest_url: String,
    pub playback_url: String,
    pub stream_key: String,
    pub stream_key_arn: String,
}

/// A key that replaced the channel's previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKey {
    pub value: String,
    pub arn: String,
}

/// What the video functions borrow: the IVS client and this deployment's rules.
pub struct Video {
    client: Client,
    pub limits: VideoLimits,
    scheme: IngestScheme,
    playback_key: PlaybackKey,
    signing_key: OnceCell<EncodingKey>,
    recording_configuration_arn: Option<String>,
    /// How long a push may stay away before the class ends.
    pub reconnect_grace: Duration,
}

/// The claims of an IVS playback token.
#[derive(Serialize)]
struct ViewerClaims<'a> {
    #[serde(rename = "aws:channel-arn")]
    channel_arn: &'a str,
    #[serde(rename = "aws:access-control-allow-origin")]
    allow_origin: &'a str,
    #[serde(rename = "aws:viewer-id")]
    viewer_id: &'a str,
    exp: i64,
}

/// IVS takes viewer ids of at most 40 characters.
const MAX_VIEWER_ID: usize = 40;

fn unavailable(what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("video service, {what}: {err}"))
}

impl Video {
    pub fn new(
        client: Client,
        limits: VideoLimits,
        scheme: IngestScheme,
        key: PlaybackKey,
    ) -> Self {
        Self {
            client,
            limits,
            scheme,
            playback_key: key,
            signing_key: OnceCell::new(),
            recording_configuration_arn: None,
            reconnect_grace: DEFAULT_RECONNECT_GRACE,
        }
    }

    /// Recording streams' channels record with this IVS recording configuration.
    pub fn with_recording(mut self, arn: Option<String>) -> Self {
        self.recording_configuration_arn = arn;
        self
    }

    pub fn with_reconnect_grace(mut self, grace: Duration) -> Self {
        self.reconnect_grace = grace;
        self
    }

    /// From the environment. On AWS: `PLAYBACK_KEY_SECRET_NAME` (the PEM of the
    /// playback key pair's private half in Secrets Manager), optionally
    /// `RECORDING_CONFIGURATION_ARN` and `INGEST_GRACE_SECONDS` (default 60). A function
    /// the local stack runs through cargo lambda gets `VIDEO_SERVICE=local`,
    /// `PLAYBACK_PRIVATE_KEY` (the PEM itself) and `AWS_ENDPOINT_URL_IVS`. `None` when
    /// the deployment has no video (neither key variable).
    pub async fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let key = match (var("PLAYBACK_KEY_SECRET_NAME"), var("PLAYBACK_PRIVATE_KEY")) {
            (Some(secret), _) => PlaybackKey::SecretsManager(secret),
            (None, Some(pem)) => PlaybackKey::Pem(pem),
            (None, None) => return Ok(None),
        };
        let grace = match var("INGEST_GRACE_SECONDS") {
            Some(v) => Duration::from_secs(
                v.parse()
                    .map_err(|_| format!("INGEST_GRACE_SECONDS must be seconds, not {v:?}"))?,
            ),
            None => DEFAULT_RECONNECT_GRACE,
        };
        let (limits, scheme) = match var("VIDEO_SERVICE").as_deref() {
            None | Some("ivs") => (VideoLimits::IVS, IngestScheme::Rtmps),
            Some("local") => (VideoLimits::LOCAL, IngestScheme::Rtmp),
            Some(other) => return Err(format!("VIDEO_SERVICE is ivs or local, not {other:?}")),
        };
        let client = Client::new(crate::aws::sdk_config().await);
        Ok(Some(
            Self::new(client, limits, scheme, key)
                .with_recording(var("RECORDING_CONFIGURATION_ARN"))
                .with_reconnect_grace(grace),
        ))
    }

    /// A client of the IVS API of the local stack at `endpoint`: fixed region, dummy
    /// credentials.
    pub fn local_client(endpoint: &str) -> Client {
        use aws_sdk_ivs::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_ivs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("local", "local", None, None, "local"))
            .build();
        Client::from_conf(config)
    }

    /// Creates the stream's channel: the cheapest type that carries its quality, low
    /// latency, authorized playback when private, recording when asked. Its name is the
    /// stream's id and it is tagged with it, so an operator can find a channel's class.
    pub async fn create_channel(&self, stream: &Stream) -> Result<Channel, ApiError> {
        let out = self
            .client
            .create_channel()
            .name(&stream.id)
            .r#type(channel_type(&stream.quality_settings))
            .latency_mode(ChannelLatencyMode::LowLatency)
            .authorized(!stream.is_public)
            .set_recording_configuration_arn(self.recording_for(stream))
            .tags("stream_id", &stream.id)
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    "creating a channel",
                    aws_sdk_ivs::error::DisplayErrorContext(e),
                )
            })?;
        let (Some(channel), Some(key)) = (out.channel(), out.stream_key()) else {
            return Err(ApiError::Internal(
                "CreateChannel answered no channel or key".into(),
            ));
        };
        let field = |value: Option<&str>, name: &str| {
            value
                .map(str::to_string)
                .ok_or_else(|| ApiError::Internal(format!("CreateChannel answered no {name}")))
        };
        Ok(Channel {
            arn: field(channel.arn(), "channel arn")?,
            ingest_url: self
                .scheme
                .url(&field(channel.ingest_endpoint(), "ingest endpoint")?),
            playback_url: field(channel.playback_url(), "playback url")?,
            stream_key: field(key.value(), "stream key")?,
            stream_key_arn: field(key.arn(), "stream key arn")?,
        })
    }

    fn recording_for(&self, stream: &Stream) -> Option<String> {
        self.recording_configuration_arn
            .clone()
            .filter(|_| stream.is_recording)
    }

    /// Brings the channel in line with the stream's settings (type, private playback,
    /// recording). IVS does not update a live channel: the push is cut off first, the
    /// channel updated, and the encoder's reconnect (OBS reconnects by itself) carries
    /// on the class within the grace period under the new settings.
    pub async fn update_channel(&self, channel_arn: &str, stream: &Stream) -> Result<(), ApiError> {
        use aws_sdk_ivs::operation::update_channel::UpdateChannelError;
        let update = || {
            self.client
                .update_channel()
                .arn(channel_arn)
                .r#type(channel_type(&stream.quality_settings))
                .latency_mode(ChannelLatencyMode::LowLatency)
                .authorized(!stream.is_public)
                .recording_configuration_arn(self.recording_for(stream).unwrap_or_default())
                .send()
        };
        match update().await {
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateChannelError::ConflictException(_))
                ) => {}
            Err(e) => {
                return Err(unavailable(
                    "updating a channel",
                    aws_sdk_ivs::error::DisplayErrorContext(e),
                ));
            }
        }
        self.cut_off(channel_arn).await?;
        update().await.map(|_| ()).map_err(|e| {
            unavailable(
                "updating a channel",
                aws_sdk_ivs::error::DisplayErrorContext(e),
            )
        })
    }

    /// Cuts the encoder off (IVS StopStream); nothing pushing is not an error.
    pub async fn cut_off(&self, channel_arn: &str) -> Result<(), ApiError> {
        use aws_sdk_ivs::operation::stop_stream::StopStreamError;
        match self
            .client
            .stop_stream()
            .channel_arn(channel_arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(StopStreamError::ChannelNotBroadcasting(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(
                "stopping a stream",
                aws_sdk_ivs::error::DisplayErrorContext(e),
            )),
        }
    }

    /// Deletes a stream key: it refuses new pushes at once. A key already gone is not
    /// an error.
    pub async fn revoke_key(&self, key_arn: &str) -> Result<(), ApiError> {
        use aws_sdk_ivs::operation::delete_stream_key::DeleteStreamKeyError;
        match self.client.delete_stream_key().arn(key_arn).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteStreamKeyError::ResourceNotFoundException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(
                "deleting a stream key",
                aws_sdk_ivs::error::DisplayErrorContext(e),
            )),
        }
    }

    /// A new key for the channel (a channel has one): every old key is revoked and the
    /// encoder on it cut off first, as the IVS demo's reset does.
    pub async fn replace_key(&self, channel_arn: &str) -> Result<StreamKey, ApiError> {
        self.cut_off(channel_arn).await?;
        let keys = self
            .client
            .list_stream_keys()
            .channel_arn(channel_arn)
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    "listing stream keys",
                    aws_sdk_ivs::error::DisplayErrorContext(e),
                )
            })?;
        for key in keys.stream_keys() {
            if let Some(arn) = key.arn() {
                self.revoke_key(arn).await?;
            }
        }
        let created = self
            .client
            .create_stream_key()
            .channel_arn(channel_arn)
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    "creating a stream key",
                    aws_sdk_ivs::error::DisplayErrorContext(e),
                )
            })?;
        let key = created
            .stream_key()
            .ok_or_else(|| ApiError::Internal("CreateStreamKey answered no key".into()))?;
        match (key.value(), key.arn()) {
            (Some(value), Some(arn)) => Ok(StreamKey {
                value: value.to_string(),
                arn: arn.to_string(),
            }),
            _ => Err(ApiError::Internal(
                "CreateStreamKey answered no key value".into(),
            )),
        }
    }

    /// Deletes a channel (after its class); a channel already gone is not an error.
    pub async fn delete_channel(&self, channel_arn: &str) -> Result<(), ApiError> {
        use aws_sdk_ivs::operation::delete_channel::DeleteChannelError;
        match self.client.delete_channel().arn(channel_arn).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteChannelError::ResourceNotFoundException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(
                "deleting a channel",
                aws_sdk_ivs::error::DisplayErrorContext(e),
            )),
        }
    }

    /// The health of the current push (IVS GetStream, then GetStreamSession); `None`
    /// when nothing is pushing.
    pub async fn health(&self, channel_arn: &str) -> Result<Option<IngestHealth>, ApiError> {
        use aws_sdk_ivs::operation::get_stream::GetStreamError;
        let stream = match self
            .client
            .get_stream()
            .channel_arn(channel_arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetStreamError::ChannelNotBroadcasting(_))
                ) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(unavailable(
                    "reading a stream",
                    aws_sdk_ivs::error::DisplayErrorContext(e),
                ));
            }
        };
        let Some(session_id) = stream.stream().and_then(|s| s.stream_id()) else {
            return Ok(None);
        };
        let session = self
            .client
            .get_stream_session()
            .channel_arn(channel_arn)
            .stream_id(session_id)
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    "reading a stream session",
                    aws_sdk_ivs::error::DisplayErrorContext(e),
                )
            })?;
        let Some(ingest) = session
            .stream_session()
            .and_then(|s| s.ingest_configuration())
        else {
            return Ok(Some(IngestHealth::default()));
        };
        let video = ingest.video();
        let audio = ingest.audio();
        let positive = |v: i64| (v > 0).then_some(v);
        Ok(Some(IngestHealth {
            video_codec: video.and_then(|v| v.codec()).map(str::to_string),
            audio_codec: audio.and_then(|a| a.codec()).map(str::to_string),
            width: video
                .and_then(|v| positive(v.video_width()))
                .and_then(|w| u32::try_from(w).ok()),
            height: video
                .and_then(|v| positive(v.video_height()))
                .and_then(|h| u32::try_from(h).ok()),
            frame_rate: video
                .map(|v| v.target_framerate() as f64)
                .filter(|f| *f > 0.0),
            bitrate_kbps: video
                .map(|v| v.target_bitrate() as f64 / 1000.0)
                .filter(|b| *b > 0.0),
            keyframe_interval_seconds: None,
        }))
    }

    /// A token that plays `channel_arn` for `viewer_id` until the returned time (IVS
    /// playback authorization: ES384, `aws:channel-arn`, `aws:viewer-id`, `exp`).
    pub async fn viewer_token(
        &self,
        channel_arn: &str,
        viewer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let key = self
            .signing_key
            .get_or_try_init(|| self.load_signing_key())
            .await?;
        let expires_at = now
            + chrono::Duration::from_std(VIEWER_TOKEN_TTL).unwrap_or(chrono::Duration::minutes(10));
        let viewer_id: String = viewer_id.chars().take(MAX_VIEWER_ID).collect();
        let claims = ViewerClaims {
            channel_arn,
            allow_origin: "*",
            viewer_id: &viewer_id,
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES384), &claims, key)
            .map_err(|e| ApiError::Internal(format!("signing a viewer token: {e}")))?;
        Ok((token, expires_at))
    }

    async fn load_signing_key(&self) -> Result<EncodingKey, ApiError> {
        let pem = match &self.playback_key {
            PlaybackKey::Pem(pem) => pem.clone(),
            PlaybackKey::SecretsManager(secret_id) => {
                crate::aws::secret_string(None, secret_id, "playback key").await?
            }
        };
        EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| ApiError::Internal(format!("the playback key is not an EC PEM: {e}")))
    }
}

fn channel_type(quality: &crate::model::QualitySettings) -> IvsChannelType {
    match ChannelType::for_quality(quality) {
        ChannelType::Basic => IvsChannelType::BasicChannelType,
        ChannelType::Standard => IvsChannelType::StandardChannelType,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_urls_are_what_obs_takes_as_a_custom_server() {
        assert_eq!(
            IngestScheme::Rtmps.url("abc.global-contribute.live-video.net"),
            "rtmps://abc.global-contribute.live-video.net:443/app/"
        );
        assert_eq!(
            IngestScheme::Rtmp.url("127.0.0.1:1935"),
            "rtmp://127.0.0.1:1935/app/"
        );
    }
}
