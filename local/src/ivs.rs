//! Amazon IVS as the functions use it, in this process: the part of its API they call
//! (REST-JSON, what `aws-sdk-ivs` sends), each channel's key handed to the RTMP ingest
//! (`local-video`), and the ingest's sessions turned into the EventBridge events IVS
//! sends ("IVS Stream State Change"), delivered in order to the video events function.
//! Playback of an authorized channel needs a viewer token signed by an imported
//! playback key pair (ES384), as on IVS. Channels with a recording configuration record
//! into its bucket's directory under the local S3's root (see `s3.rs`), in IVS's layout,
//! with "IVS Recording State Change" events delivered the same way.
//!
//! Hand-written: no maintained crate serves the IVS API.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, SecondsFormat, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use local_video::{Ingest, IngestEvent, RecordingTarget};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::invoker::Invoker;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "000000000000";
/// The recording configuration the local stack creates at start, as the deployment's
/// template does: channels of recorded classes name it.
pub const LOCAL_RECORDING_CONFIGURATION_ARN: &str =
    "arn:aws:ivs:us-east-1:000000000000:recording-configuration/LocalRecords";
/// The bucket of [`LOCAL_RECORDING_CONFIGURATION_ARN`]: `<S3 root>/livestream-recordings/`.
pub const RECORDINGS_BUCKET: &str = "livestream-recordings";
/// IVS's default thumbnail interval.
pub const DEFAULT_THUMBNAIL_INTERVAL: Duration = Duration::from_secs(60);
/// IVS's bound on `recordingReconnectWindowSeconds`.
const MAX_RECONNECT_WINDOW_SECONDS: u64 = 300;
/// Tries of one event before it is dropped (EventBridge retries for longer).
const EVENT_TRIES: u32 = 5;

struct ChannelRecord {
    arn: String,
    id: String,
    name: String,
    kind: String,
    latency_mode: String,
    authorized: bool,
    recording_configuration_arn: String,
    tags: Value,
}

struct KeyRecord {
    arn: String,
    channel_arn: String,
    value: String,
}

struct KeyPair {
    arn: String,
    name: String,
    fingerprint: String,
    key: DecodingKey,
}

struct RecordingConfiguration {
    arn: String,
    name: String,
    bucket_name: String,
    reconnect_window: Duration,
    /// `None`: thumbnails off (`recordingMode` `DISABLED`).
    thumbnail_interval: Option<Duration>,
    tags: Value,
}

impl RecordingConfiguration {
    fn json(&self) -> Value {
        let thumbnails = match self.thumbnail_interval {
            Some(interval) => json!({
                "recordingMode": "INTERVAL",
                "targetIntervalSeconds": interval.as_secs(),
                "storage": ["SEQUENTIAL"],
            }),
            None => json!({ "recordingMode": "DISABLED" }),
        };
        json!({
            "arn": self.arn,
            "name": self.name,
            "destinationConfiguration": { "s3": { "bucketName": self.bucket_name } },
            "recordingReconnectWindowSeconds": self.reconnect_window.as_secs(),
            "renditionConfiguration": { "renditionSelection": "ALL", "renditions": [] },
            "state": "ACTIVE",
            "tags": self.tags,
            "thumbnailConfiguration": thumbnails,
        })
    }
}

/// Where recordings go: the local S3's root, holding a directory per bucket.
#[derive(Debug, Clone)]
pub struct RecordingStorage {
    pub s3_root: PathBuf,
    /// The default configuration's `recordingReconnectWindowSeconds`: the stack's ingest
    /// grace, so that a push back within the class's grace stays one recording.
    pub reconnect_window: Duration,
    /// The default configuration's thumbnail interval.
    pub thumbnail_interval: Duration,
}

#[derive(Default)]
struct Registry {
    channels: HashMap<String, ChannelRecord>,
    keys: HashMap<String, KeyRecord>,
    key_pairs: Vec<KeyPair>,
    recording_configurations: HashMap<String, RecordingConfiguration>,
    /// Names of the channels of this run, deleted ones too: a recording's end event
    /// comes after its channel was deleted.
    channel_names: HashMap<String, String>,
}

impl Registry {
    /// A channel by the id the ingest knows it by (its ARN's last part): one lookup, as
    /// every playlist and segment request asks.
    fn channel_by_id(&self, channel_id: &str) -> Option<&ChannelRecord> {
        self.channels.get(&arn("channel", channel_id))
    }
}

/// The IVS API of the local stack, and its ingest.
pub struct LocalIvs {
    ingest: Ingest,
    registry: Mutex<Registry>,
    /// What `ingestEndpoint` answers: the RTMP ingest's `host:port`.
    ingest_endpoint: String,
    /// Where playlists are served: `{playback_base}/{channel id}/index.m3u8`.
    playback_base: String,
    /// `None`: recording configurations cannot be created.
    storage: Option<RecordingStorage>,
    /// The last events handed to the video events function, with whether it took them.
    delivered: Mutex<VecDeque<DeliveredEvent>>,
}

/// Events kept in [`LocalIvs::delivered_events`].
const DELIVERED_KEPT: usize = 256;

/// An EventBridge event the emulation handed to the video events function.
#[derive(Debug, Clone)]
pub struct DeliveredEvent {
    pub event: Value,
    /// `Err`: the function failed it on every try.
    pub result: Result<(), String>,
}

fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn arn(resource: &str, id: &str) -> String {
    format!("arn:aws:ivs:{REGION}:{ACCOUNT}:{resource}/{id}")
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An IVS error: its code in `x-amzn-ErrorType`, as the service sends it.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "exceptionMessage": message, "message": message })),
    )
        .into_response();
    if let Ok(value) = code.parse() {
        response.headers_mut().insert("x-amzn-ErrorType", value);
    }
    response
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        &format!("{what} not found"),
    )
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "ValidationException", message)
}

/// Why an operation naming a channel cannot go on.
enum Refusal {
    NoChannelArn,
    NoSuchChannel,
}

impl Refusal {
    fn response(self) -> Response {
        match self {
            Self::NoChannelArn => invalid("channelArn is required"),
            Self::NoSuchChannel => not_found("channel"),
        }
    }
}

fn text(body: &Value, field: &str) -> Option<String> {
    body.get(field).and_then(Value::as_str).map(str::to_string)
}

impl LocalIvs {
    /// The emulation over `ingest`; encoders reach it at `ingest_endpoint` (`host:port`)
    /// and players at `{playback_base}/{channel id}/index.m3u8`.
    /// Without recording storage: [`LocalIvs::with_recordings`] has it.
    pub fn new(ingest: Ingest, ingest_endpoint: String, playback_base: String) -> Arc<Self> {
        Arc::new(Self::build(ingest, ingest_endpoint, playback_base, None))
    }

    /// The emulation with recordings stored under `storage.s3_root`: the default
    /// configuration ([`LOCAL_RECORDING_CONFIGURATION_ARN`], bucket [`RECORDINGS_BUCKET`])
    /// is created, and the recordings a previous run left open in any bucket there are
    /// finished (their Recording End events are delivered once events flow).
    pub fn with_recordings(
        ingest: Ingest,
        ingest_endpoint: String,
        playback_base: String,
        storage: RecordingStorage,
    ) -> Result<Arc<Self>, String> {
        let bucket = storage.s3_root.join(RECORDINGS_BUCKET);
        std::fs::create_dir_all(&bucket)
            .map_err(|e| format!("creating {}: {e}", bucket.display()))?;
        let default = RecordingConfiguration {
            arn: LOCAL_RECORDING_CONFIGURATION_ARN.into(),
            name: "local-recordings".into(),
            bucket_name: RECORDINGS_BUCKET.into(),
            reconnect_window: storage.reconnect_window,
            thumbnail_interval: Some(storage.thumbnail_interval),
            tags: json!({}),
        };
        let buckets = std::fs::read_dir(&storage.s3_root)
            .map_err(|e| format!("reading {}: {e}", storage.s3_root.display()))?;
        for bucket in buckets.filter_map(Result::ok) {
            if bucket.file_type().is_ok_and(|t| t.is_dir()) {
                let name = bucket.file_name().to_string_lossy().into_owned();
                ingest.finish_abandoned_recordings(&bucket.path(), &name);
            }
        }
        let ivs = Self::build(ingest, ingest_endpoint, playback_base, Some(storage));
        ivs.registry()
            .recording_configurations
            .insert(default.arn.clone(), default);
        Ok(Arc::new(ivs))
    }

    fn build(
        ingest: Ingest,
        ingest_endpoint: String,
        playback_base: String,
        storage: Option<RecordingStorage>,
    ) -> Self {
        Self {
            ingest,
            registry: Mutex::default(),
            ingest_endpoint,
            playback_base,
            storage,
            delivered: Mutex::default(),
        }
    }

    /// The last EventBridge events handed to the video events function (up to 256,
    /// oldest first), with their outcomes: what a test or an operator checks.
    pub fn delivered_events(&self) -> Vec<DeliveredEvent> {
        let delivered = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        delivered.iter().cloned().collect()
    }

    fn record_delivery(&self, event: &Value, result: Result<(), String>) {
        let mut delivered = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        if delivered.len() == DELIVERED_KEPT {
            delivered.pop_front();
        }
        delivered.push_back(DeliveredEvent {
            event: event.clone(),
            result,
        });
    }

    /// Where the channel `channel` records, per its recording configuration.
    fn recording_target(
        &self,
        registry: &Registry,
        channel: &ChannelRecord,
    ) -> Option<RecordingTarget> {
        let storage = self.storage.as_ref()?;
        let configuration = registry
            .recording_configurations
            .get(&channel.recording_configuration_arn)?;
        Some(RecordingTarget {
            bucket_root: storage.s3_root.join(&configuration.bucket_name),
            bucket_name: configuration.bucket_name.clone(),
            account_id: ACCOUNT.into(),
            channel_arn: channel.arn.clone(),
            reconnect_window: configuration.reconnect_window,
            thumbnail_interval: configuration.thumbnail_interval,
        })
    }

    /// Whether `arn` may be a channel's recording configuration: none, or a known one.
    fn check_recording_configuration(registry: &Registry, arn: &str) -> Result<(), Box<Response>> {
        if arn.is_empty() || registry.recording_configurations.contains_key(arn) {
            Ok(())
        } else {
            Err(Box::new(not_found("recording configuration")))
        }
    }

    fn create_recording_configuration(&self, body: &Value) -> Response {
        let Some(storage) = &self.storage else {
            return invalid("this emulation has no S3 storage for recordings");
        };
        let Some(bucket_name) = body["destinationConfiguration"]["s3"]["bucketName"]
            .as_str()
            .map(str::to_owned)
        else {
            return invalid("destinationConfiguration.s3.bucketName is required");
        };
        if !crate::s3::valid_bucket_name(&bucket_name) {
            return invalid("bucketName is not a valid S3 bucket name");
        }
        let window = body["recordingReconnectWindowSeconds"]
            .as_u64()
            .unwrap_or(0);
        if window > MAX_RECONNECT_WINDOW_SECONDS {
            return invalid("recordingReconnectWindowSeconds is 0 to 300");
        }
        let thumbnails = &body["thumbnailConfiguration"];
        let thumbnail_interval = match thumbnails["recordingMode"].as_str() {
            Some("DISABLED") => None,
            None | Some("INTERVAL") => {
                let seconds = thumbnails["targetIntervalSeconds"]
                    .as_u64()
                    .unwrap_or(DEFAULT_THUMBNAIL_INTERVAL.as_secs());
                if !(1..=60).contains(&seconds) {
                    return invalid("targetIntervalSeconds is 1 to 60");
                }
                Some(Duration::from_secs(seconds))
            }
            Some(_) => return invalid("recordingMode is INTERVAL or DISABLED"),
        };
        let bucket = storage.s3_root.join(&bucket_name);
        if let Err(e) = std::fs::create_dir_all(&bucket) {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                &format!("creating the bucket's directory: {e}"),
            );
        }
        let configuration = RecordingConfiguration {
            arn: arn("recording-configuration", &random_id(12)),
            name: text(body, "name").unwrap_or_default(),
            bucket_name,
            reconnect_window: Duration::from_secs(window),
            thumbnail_interval,
            tags: body.get("tags").cloned().unwrap_or_else(|| json!({})),
        };
        let answer = json!({ "recordingConfiguration": configuration.json() });
        self.registry()
            .recording_configurations
            .insert(configuration.arn.clone(), configuration);
        Json(answer).into_response()
    }

    fn get_recording_configuration(&self, body: &Value) -> Response {
        let Some(arn) = text(body, "arn") else {
            return invalid("arn is required");
        };
        match self.registry().recording_configurations.get(&arn) {
            Some(c) => Json(json!({ "recordingConfiguration": c.json() })).into_response(),
            None => not_found("recording configuration"),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn channel_json(&self, channel: &ChannelRecord) -> Value {
        json!({
            "arn": channel.arn,
            "name": channel.name,
            "type": channel.kind,
            "latencyMode": channel.latency_mode,
            "authorized": channel.authorized,
            "recordingConfigurationArn": channel.recording_configuration_arn,
            "ingestEndpoint": self.ingest_endpoint,
            "playbackUrl": format!("{}/{}/index.m3u8", self.playback_base, channel.id),
            "insecureIngest": true,
            "tags": channel.tags,
        })
    }

    fn key_json(key: &KeyRecord, with_value: bool) -> Value {
        let mut value = json!({ "arn": key.arn, "channelArn": key.channel_arn, "tags": {} });
        if with_value {
            value["value"] = key.value.clone().into();
        }
        value
    }

    /// A new key for a channel; the ingest accepts it from now on.
    fn issue_key(&self, registry: &mut Registry, channel: &ChannelRecord) -> Value {
        let key = KeyRecord {
            arn: arn("stream-key", &random_id(12)),
            channel_arn: channel.arn.clone(),
            value: format!("sk_{REGION}_{}", random_id(36)),
        };
        self.ingest.allow_key(&key.value, &channel.id);
        let json = Self::key_json(&key, true);
        registry.keys.insert(key.arn.clone(), key);
        json
    }

    fn create_channel(&self, body: &Value) -> Response {
        let kind = text(body, "type").unwrap_or_else(|| "STANDARD".into());
        if !["BASIC", "STANDARD", "ADVANCED_SD", "ADVANCED_HD"].contains(&kind.as_str()) {
            return invalid("type is BASIC, STANDARD, ADVANCED_SD or ADVANCED_HD");
        }
        let id = random_id(12);
        let channel = ChannelRecord {
            arn: arn("channel", &id),
            id,
            name: text(body, "name").unwrap_or_default(),
            kind,
            latency_mode: text(body, "latencyMode").unwrap_or_else(|| "LOW".into()),
            authorized: body["authorized"].as_bool().unwrap_or(false),
            recording_configuration_arn: text(body, "recordingConfigurationArn")
                .unwrap_or_default(),
            tags: body.get("tags").cloned().unwrap_or_else(|| json!({})),
        };
        let mut registry = self.registry();
        if let Err(refused) =
            Self::check_recording_configuration(&registry, &channel.recording_configuration_arn)
        {
            return *refused;
        }
        let key = self.issue_key(&mut registry, &channel);
        let answer = json!({ "channel": self.channel_json(&channel), "streamKey": key });
        let target = self.recording_target(&registry, &channel);
        self.ingest.set_recording(&channel.id, target);
        registry
            .channel_names
            .insert(channel.id.clone(), channel.name.clone());
        registry.channels.insert(channel.arn.clone(), channel);
        Json(answer).into_response()
    }

    fn with_channel(
        &self,
        arn: Option<String>,
        f: impl FnOnce(&mut ChannelRecord) -> Value,
    ) -> Response {
        let Some(arn) = arn else {
            return invalid("arn is required");
        };
        let mut registry = self.registry();
        match registry.channels.get_mut(&arn) {
            Some(channel) => Json(f(channel)).into_response(),
            None => not_found("channel"),
        }
    }

    fn update_channel(&self, body: &Value) -> Response {
        let live = text(body, "arn").is_some_and(|arn| {
            self.registry()
                .channels
                .get(&arn)
                .is_some_and(|c| self.ingest.is_live(&c.id))
        });
        if live {
            return error(
                StatusCode::CONFLICT,
                "ConflictException",
                "a live channel cannot be updated: stop its stream first",
            );
        }
        if let Some(recording) = text(body, "recordingConfigurationArn")
            && let Err(refused) = Self::check_recording_configuration(&self.registry(), &recording)
        {
            return *refused;
        }
        let response = self.with_channel(text(body, "arn"), |channel| {
            if let Some(kind) = text(body, "type") {
                channel.kind = kind;
            }
            if let Some(mode) = text(body, "latencyMode") {
                channel.latency_mode = mode;
            }
            if let Some(authorized) = body["authorized"].as_bool() {
                channel.authorized = authorized;
            }
            if let Some(recording) = text(body, "recordingConfigurationArn") {
                channel.recording_configuration_arn = recording;
            }
            if let Some(name) = text(body, "name") {
                channel.name = name;
            }
            json!({ "channel": self.channel_json(channel) })
        });
        if let Some(arn) = text(body, "arn") {
            let mut registry = self.registry();
            if let Some(channel) = registry.channels.get(&arn) {
                let (id, name) = (channel.id.clone(), channel.name.clone());
                let target = self.recording_target(&registry, channel);
                self.ingest.set_recording(&id, target);
                registry.channel_names.insert(id, name);
            }
        }
        response
    }

    fn delete_channel(&self, body: &Value) -> Response {
        let Some(channel_arn) = text(body, "arn") else {
            return invalid("arn is required");
        };
        let mut registry = self.registry();
        let Some(channel) = registry.channels.get(&channel_arn) else {
            return not_found("channel");
        };
        if self.ingest.is_live(&channel.id) {
            return error(
                StatusCode::CONFLICT,
                "ConflictException",
                "the channel is live: stop its stream first",
            );
        }
        self.ingest.forget_channel(&channel.id);
        registry
            .keys
            .retain(|_, key| key.channel_arn != channel_arn);
        registry.channels.remove(&channel_arn);
        StatusCode::NO_CONTENT.into_response()
    }

    fn create_stream_key(&self, body: &Value) -> Response {
        let Some(channel_arn) = text(body, "channelArn") else {
            return invalid("channelArn is required");
        };
        let mut registry = self.registry();
        if registry.keys.values().any(|k| k.channel_arn == channel_arn) {
            return error(
                StatusCode::PAYMENT_REQUIRED,
                "ServiceQuotaExceededException",
                "a channel has one stream key: delete it first",
            );
        }
        let Some(channel) = registry.channels.remove(&channel_arn) else {
            return not_found("channel");
        };
        let key = self.issue_key(&mut registry, &channel);
        registry.channels.insert(channel_arn, channel);
        Json(json!({ "streamKey": key })).into_response()
    }

    fn list_stream_keys(&self, body: &Value) -> Response {
        let Some(channel_arn) = text(body, "channelArn") else {
            return invalid("channelArn is required");
        };
        let registry = self.registry();
        if !registry.channels.contains_key(&channel_arn) {
            return not_found("channel");
        }
        let keys: Vec<Value> = registry
            .keys
            .values()
            .filter(|k| k.channel_arn == channel_arn)
            .map(|k| Self::key_json(k, false))
            .collect();
        Json(json!({ "streamKeys": keys })).into_response()
    }

    fn get_stream_key(&self, body: &Value) -> Response {
        let registry = self.registry();
        match text(body, "arn").and_then(|arn| registry.keys.get(&arn)) {
            Some(key) => Json(json!({ "streamKey": Self::key_json(key, true) })).into_response(),
            None => not_found("stream key"),
        }
    }

    /// Deleting a key revokes it in the ingest: it refuses new pushes, and a push on it
    /// is cut off.
    fn delete_stream_key(&self, body: &Value) -> Response {
        let mut registry = self.registry();
        match text(body, "arn").and_then(|arn| registry.keys.remove(&arn)) {
            Some(key) => {
                self.ingest.revoke_key(&key.value);
                StatusCode::NO_CONTENT.into_response()
            }
            None => not_found("stream key"),
        }
    }

    /// The id and description of the channel an operation names; `Err` says which
    /// answer to give instead.
    fn channel_id(&self, channel_arn: Option<String>) -> Result<(String, Value), Refusal> {
        let Some(channel_arn) = channel_arn else {
            return Err(Refusal::NoChannelArn);
        };
        let registry = self.registry();
        registry
            .channels
            .get(&channel_arn)
            .map(|c| (c.id.clone(), self.channel_json(c)))
            .ok_or(Refusal::NoSuchChannel)
    }

    fn not_broadcasting() -> Response {
        error(
            StatusCode::NOT_FOUND,
            "ChannelNotBroadcasting",
            "the channel is not broadcasting",
        )
    }

    fn stop_stream(&self, body: &Value) -> Response {
        match self.channel_id(text(body, "channelArn")) {
            Ok((id, _)) if self.ingest.stop_channel(&id) => Json(json!({})).into_response(),
            Ok(_) => Self::not_broadcasting(),
            Err(refusal) => refusal.response(),
        }
    }

    fn get_stream(&self, body: &Value) -> Response {
        let channel_arn = text(body, "channelArn");
        let (id, channel) = match self.channel_id(channel_arn.clone()) {
            Ok(found) => found,
            Err(refusal) => return refusal.response(),
        };
        match self.ingest.session(&id).filter(|s| s.ended_at.is_none()) {
            Some(session) => Json(json!({ "stream": {
                "channelArn": channel_arn,
                "streamId": session.session_id,
                "playbackUrl": channel["playbackUrl"],
                "startTime": timestamp(session.started_at),
                "state": "LIVE",
                "health": if session.health.is_some() { "HEALTHY" } else { "STARVING" },
                "viewerCount": 0,
            }}))
            .into_response(),
            None => Self::not_broadcasting(),
        }
    }

    fn get_stream_session(&self, body: &Value) -> Response {
        let (id, channel) = match self.channel_id(text(body, "channelArn")) {
            Ok(found) => found,
            Err(refusal) => return refusal.response(),
        };
        let wanted = text(body, "streamId");
        let Some(session) = self
            .ingest
            .session(&id)
            .filter(|s| wanted.as_ref().is_none_or(|w| *w == s.session_id))
        else {
            return not_found("stream session");
        };
        let mut answer = json!({
            "streamId": session.session_id,
            "startTime": timestamp(session.started_at),
            "channel": channel,
            "truncatedEvents": [],
        });
        if let Some(ended) = session.ended_at {
            answer["endTime"] = timestamp(ended).into();
        }
        if let Some(health) = &session.health {
            let round = |v: f64| v.round() as i64;
            answer["ingestConfiguration"] = json!({
                "video": {
                    "codec": health.video_codec,
                    "videoWidth": health.width,
                    "videoHeight": health.height,
                    "targetFramerate": round(health.frame_rate),
                    "targetBitrate": health.bitrate_bps,
                    "encoder": "",
                },
                "audio": {
                    "codec": health.audio_codec,
                    "sampleRate": health.audio_sample_rate,
                    "channels": health.audio_channels,
                    "targetBitrate": 0,
                },
            });
        }
        Json(json!({ "streamSession": answer })).into_response()
    }

    fn import_playback_key_pair(&self, body: &Value) -> Response {
        let Some(pem) = text(body, "publicKeyMaterial") else {
            return invalid("publicKeyMaterial is required");
        };
        let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) else {
            return invalid("publicKeyMaterial is not an EC public key in PEM");
        };
        let digest = format!("{:x}", md5::compute(pem.as_bytes()));
        let pair = KeyPair {
            arn: arn("playback-key", &random_id(12)),
            name: text(body, "name").unwrap_or_default(),
            fingerprint: digest
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(":"),
            key,
        };
        let answer = json!({ "keyPair": {
            "arn": pair.arn, "name": pair.name, "fingerprint": pair.fingerprint, "tags": {},
        }});
        self.registry().key_pairs.push(pair);
        Json(answer).into_response()
    }

    /// Whether a request for channel `channel_id`'s playlist or segments may play: any
    /// for a channel without authorization; else a token signed by an imported key
    /// pair, for this channel, not expired.
    pub fn may_play(&self, channel_id: &str, token: Option<&str>) -> bool {
        let registry = self.registry();
        let Some(channel) = registry.channel_by_id(channel_id) else {
            return false;
        };
        if !channel.authorized {
            return true;
        }
        let Some(token) = token else {
            return false;
        };
        let mut validation = Validation::new(Algorithm::ES384);
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        registry.key_pairs.iter().any(|pair| {
            jsonwebtoken::decode::<Value>(token, &pair.key, &validation).is_ok_and(|data| {
                data.claims["aws:channel-arn"].as_str() == Some(channel.arn.as_str())
            })
        })
    }

    /// The IVS API's router.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        async fn call(
            State((ivs, operation)): State<(Arc<LocalIvs>, &'static str)>,
            _headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> Response {
            let body: Value = if body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(_) => return invalid("the body is not JSON"),
                }
            };
            match operation {
                "CreateChannel" => ivs.create_channel(&body),
                "GetChannel" => ivs.with_channel(
                    text(&body, "arn"),
                    |c| json!({ "channel": ivs.channel_json(c) }),
                ),
                "UpdateChannel" => ivs.update_channel(&body),
                "DeleteChannel" => ivs.delete_channel(&body),
                "CreateStreamKey" => ivs.create_stream_key(&body),
                "GetStreamKey" => ivs.get_stream_key(&body),
                "ListStreamKeys" => ivs.list_stream_keys(&body),
                "DeleteStreamKey" => ivs.delete_stream_key(&body),
                "StopStream" => ivs.stop_stream(&body),
                "GetStream" => ivs.get_stream(&body),
                "GetStreamSession" => ivs.get_stream_session(&body),
                "ImportPlaybackKeyPair" => ivs.import_playback_key_pair(&body),
                "CreateRecordingConfiguration" => ivs.create_recording_configuration(&body),
                "GetRecordingConfiguration" => ivs.get_recording_configuration(&body),
                _ => invalid("not emulated"),
            }
        }
        const OPERATIONS: [&str; 14] = [
            "CreateChannel",
            "GetChannel",
            "UpdateChannel",
            "DeleteChannel",
            "CreateStreamKey",
            "GetStreamKey",
            "ListStreamKeys",
            "DeleteStreamKey",
            "StopStream",
            "GetStream",
            "GetStreamSession",
            "ImportPlaybackKeyPair",
            "CreateRecordingConfiguration",
            "GetRecordingConfiguration",
        ];
        OPERATIONS
            .iter()
            .fold(axum::Router::new(), |router, operation| {
                router.route(
                    &format!("/{operation}"),
                    post(call).with_state((self.clone(), *operation)),
                )
            })
    }

    /// The EventBridge event IVS sends for one ingest event.
    fn event_bridge(&self, event: &IngestEvent) -> Option<Value> {
        let (detail_type, detail) = match event {
            IngestEvent::SessionCreated { .. }
            | IngestEvent::StreamStart { .. }
            | IngestEvent::StreamEnd { .. }
            | IngestEvent::StreamFailure { .. }
            | IngestEvent::StreamTakeover { .. } => {
                let name = match event {
                    IngestEvent::SessionCreated { .. } => "Session Created",
                    IngestEvent::StreamStart { .. } => "Stream Start",
                    IngestEvent::StreamEnd { .. } => "Stream End",
                    IngestEvent::StreamFailure { .. } => "Stream Failure",
                    _ => "Stream Takeover",
                };
                let registry = self.registry();
                let channel = registry.channel_by_id(event.channel_id())?;
                let detail = json!({
                    "event_name": name,
                    "channel_name": channel.name,
                    "stream_id": event.session_id(),
                });
                ("IVS Stream State Change", detail)
            }
            _ => ("IVS Recording State Change", self.recording_detail(event)?),
        };
        Some(json!({
            "version": "0",
            "id": ulid::Ulid::generate().to_string(),
            "detail-type": detail_type,
            "source": "aws.ivs",
            "account": ACCOUNT,
            "time": timestamp(event.at()),
            "region": REGION,
            "resources": [arn("channel", event.channel_id())],
            "detail": detail,
        }))
    }

    /// The `detail` of an "IVS Recording State Change", as IVS sends it. The channel may
    /// be gone (deleted, or from a previous run): its ARN is its id's.
    fn recording_detail(&self, event: &IngestEvent) -> Option<Value> {
        let channel_name = self
            .registry()
            .channel_names
            .get(event.channel_id())
            .cloned()
            .unwrap_or_default();
        let (status, reason, bucket, prefix, duration_ms, recording_id) = match event {
            IngestEvent::RecordingStart {
                recording_id,
                bucket_name,
                key_prefix,
                ..
            } => (
                "Recording Start",
                "",
                bucket_name,
                key_prefix.as_str(),
                0,
                recording_id.as_str(),
            ),
            IngestEvent::RecordingEnd {
                recording_id,
                bucket_name,
                key_prefix,
                duration_ms,
                ..
            } => (
                "Recording End",
                "",
                bucket_name,
                key_prefix.as_str(),
                *duration_ms,
                recording_id.as_str(),
            ),
            IngestEvent::RecordingStartFailure {
                bucket_name,
                reason,
                ..
            } => (
                "Recording Start Failure",
                reason.as_str(),
                bucket_name,
                "",
                0,
                "",
            ),
            IngestEvent::RecordingEndFailure {
                recording_id,
                bucket_name,
                key_prefix,
                reason,
                ..
            } => (
                "Recording End Failure",
                reason.as_str(),
                bucket_name,
                key_prefix.as_str(),
                0,
                recording_id.as_str(),
            ),
            _ => return None,
        };
        let mut detail = json!({
            "channel_name": channel_name,
            "stream_id": event.session_id(),
            "recording_status": status,
            "recording_status_reason": reason,
            "recording_s3_bucket_name": bucket,
            "recording_s3_key_prefix": prefix,
            "recording_duration_ms": duration_ms,
            "recording_session_id": recording_id,
        });
        if let IngestEvent::RecordingEnd { stream_ids, .. } = event {
            detail["recording_session_stream_ids"] = json!(stream_ids);
        }
        Some(detail)
    }

    /// Delivers the ingest's events, one after another, to the video events function
    /// (as EventBridge's rule on `aws.ivs` does), until `stop`.
    pub async fn deliver_events(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<IngestEvent>,
        invoker: Arc<Invoker>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let event = tokio::select! {
                event = events.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            let Some(json) = self.event_bridge(&event) else {
                continue;
            };
            for attempt in 1..=EVENT_TRIES {
                match invoker.video_event(json.clone()).await {
                    Ok(()) => {
                        self.record_delivery(&json, Ok(()));
                        break;
                    }
                    Err(e) if attempt == EVENT_TRIES => {
                        tracing::error!(error = %e, event = %json["detail"], "video event dropped");
                        self.record_delivery(&json, Err(e));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, "video event failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    }
                }
            }
        }
    }
}

/// A P-384 key pair for playback tokens: the private half (PKCS#8 PEM) for the
/// functions, the public half (SPKI PEM) to import into the IVS API. With a `dir`, kept
/// there (`playback-key.pem`) across runs, so functions run through cargo lambda keep
/// working after a restart.
pub fn playback_key_pair(dir: Option<&std::path::Path>) -> Result<(String, String), String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let path = dir.map(|d| d.join("playback-key.pem"));
    let saved = path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|pem| pem_body(&pem))
        .and_then(|der| EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &der).ok());
    let pair = match saved {
        Some(pair) => pair,
        None => EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
            .map_err(|e| format!("generating the playback key pair: {e}"))?,
    };
    let private = pair
        .to_pkcs8v1()
        .map_err(|e| format!("encoding the playback key: {e}"))?;
    let public = pair
        .public_key()
        .as_der()
        .map_err(|e| format!("encoding the playback public key: {e}"))?;
    let private = pem("PRIVATE KEY", private.as_ref());
    if let Some(path) = path {
        std::fs::write(&path, &private).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok((private, pem("PUBLIC KEY", public.as_ref())))
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
