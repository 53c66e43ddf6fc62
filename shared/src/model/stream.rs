//! Live streams: the stored record, what clients see, and the validated inputs.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ingest::Ingest;
use super::text::{parse_text, pattern};
use crate::error::{FieldError, Validator};

/// The life of a stream: scheduled -> live -> ended, or scheduled -> cancelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    #[default]
    Scheduled,
    Live,
    Ended,
    Cancelled,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Live => "live",
            Self::Ended => "ended",
            Self::Cancelled => "cancelled",
        }
    }

    /// Ended or cancelled: the class no longer changes (the lifecycle rule).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Ended | Self::Cancelled)
    }
}

/// Output resolution, smallest first.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Resolution {
    #[serde(rename = "480p")]
    P480,
    #[serde(rename = "720p")]
    #[default]
    P720,
    #[serde(rename = "1080p")]
    P1080,
    #[serde(rename = "4K")]
    K4,
}

impl Resolution {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw.trim() {
            "480p" => Ok(Self::P480),
            "720p" => Ok(Self::P720),
            "1080p" => Ok(Self::P1080),
            "4K" | "4k" => Ok(Self::K4),
            _ => Err(FieldError::new(
                "quality_settings.resolution",
                "must be one of 480p, 720p, 1080p, 4K",
            )),
        }
    }
}

/// Encoder settings of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QualitySettings {
    pub resolution: Resolution,
    #[schemars(extend("enum" = FRAME_RATES))]
    pub frame_rate: u16,
    #[schemars(range(min = 500, max = 15000))]
    pub bitrate_kbps: u32,
}

impl Default for QualitySettings {
    fn default() -> Self {
        Self {
            resolution: Resolution::default(),
            frame_rate: 30,
            bitrate_kbps: 2500,
        }
    }
}

pub const FRAME_RATES: [u16; 3] = [24, 30, 60];
pub const BITRATE_KBPS: std::ops::RangeInclusive<u32> = 500..=15000;

/// Quality settings as a client sends them: every field optional. `bitrate` is the
/// platform frontend's name for `bitrate_kbps`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = document_bitrate_alias)]
pub struct QualitySettingsInput {
    #[schemars(with = "Option<Resolution>")]
    pub resolution: Option<String>,
    #[schemars(extend("enum" = [24, 30, 60, null]))]
    pub frame_rate: Option<i64>,
    #[serde(alias = "bitrate")]
    #[schemars(range(min = 500, max = 15000))]
    pub bitrate_kbps: Option<i64>,
}

/// Serde aliases are invisible to schemars: the accepted alias is added by hand.
fn document_bitrate_alias(schema: &mut schemars::Schema) {
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut())
        && let Some(mut kbps) = props.get("bitrate_kbps").cloned()
    {
        kbps["description"] = "The same as `bitrate_kbps` (the platform frontend's name).".into();
        props.insert("bitrate".into(), kbps);
    }
}

impl QualitySettingsInput {
    /// Applies the given fields over `base`, recording every invalid one.
    pub fn apply(&self, base: QualitySettings, v: &mut Validator) -> QualitySettings {
        let mut out = base;
        if let Some(r) = &self.resolution
            && let Some(r) = v.check(Resolution::parse(r))
        {
            out.resolution = r;
        }
        if let Some(fps) = self.frame_rate {
            match u16::try_from(fps).ok().filter(|f| FRAME_RATES.contains(f)) {
                Some(f) => out.frame_rate = f,
                None => v.push("quality_settings.frame_rate", "must be one of 24, 30, 60"),
            }
        }
        if let Some(kbps) = self.bitrate_kbps {
            match u32::try_from(kbps)
                .ok()
                .filter(|k| BITRATE_KBPS.contains(k))
            {
                Some(k) => out.bitrate_kbps = k,
                None => v.push(
                    "quality_settings.bitrate_kbps",
                    "must be between 500 and 15000",
                ),
            }
        }
        out
    }
}

/// A stream as stored. Counters are only changed by atomic updates. Its schema is the
/// one of [`Stream::view`]: `stream_key` and `blocked_words` only for the instructor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = owner_only_fields_optional, example = example())]
pub struct Stream {
    pub id: String,
    pub title: String,
    pub description: String,
    pub course_id: String,
    pub instructor_id: String,
    pub status: StreamStatus,
    /// The ingest secret; only ever shown to the instructor.
    pub stream_key: String,
    #[serde(default)]
    pub viewer_count: i64,
    #[serde(default)]
    pub max_viewers: i64,
    /// Distinct users who ever joined.
    #[serde(default)]
    pub unique_viewers: i64,
    /// Seconds watched by all viewers in finished watching periods.
    #[serde(default)]
    pub total_watch_seconds: i64,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds between start and stop.
    pub duration: Option<i64>,
    pub quality_settings: QualitySettings,
    pub is_public: bool,
    pub is_recording: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,

    // Video, on the deployment's video service (Amazon IVS, or the local stack's).
    /// Where the encoder pushes (OBS: Settings > Stream > Service "Custom", Server);
    /// the stream key goes beside it. Only for the instructor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_url: Option<String>,
    /// The live HLS playlist. A private stream's plays only with a viewer token: ask
    /// `GET /api/livestream/{id}/playback` for the URL to play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_url: Option<String>,
    /// The stream's channel on the video service. Only for the instructor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_arn: Option<String>,
    /// The video service's id of the stream key. Only for the instructor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_key_arn: Option<String>,
    /// The encoder's connection (`idle`, `connected`, `reconnecting`).
    #[serde(default)]
    pub ingest: Ingest,
    /// The stream went live when its encoder started pushing, so it also ends by itself
    /// when the push stops and does not come back within the grace period.
    #[serde(default)]
    pub live_from_encoder: bool,
    /// The class's recording (streams with `is_recording`), once the video service
    /// started one; its `bucket` and `key_prefix` only for the instructor. Ask
    /// `GET /api/livestream/{id}/recording` for what to play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<super::recording::Recording>,

    // Interaction settings, changed by the instructor.
    /// Slow mode: minimum seconds between two chat messages of one user (0 = off).
    #[serde(default)]
    pub chat_slow_mode_seconds: u32,
    /// Messages containing one of these words are refused.
    #[serde(default)]
    pub blocked_words: Vec<String>,
    /// The `seq` of the one chat message pinned by the instructor.
    #[serde(default)]
    pub pinned_message_seq: Option<i64>,
    /// New questions wait for a moderator's approval before students see them.
    #[serde(default)]
    pub questions_require_approval: bool,
    /// Participants the instructor made moderators (a string set, kept with their
    /// participant records; absent when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moderator_ids: Vec<String>,
    /// The question being answered now ("now answering").
    #[serde(default)]
    pub highlighted_question_id: Option<String>,

    // Counters, changed only by atomic updates.
    /// The sequence number of the last chat message (per stream, gap-free order).
    #[serde(default)]
    pub chat_seq: i64,
    #[serde(default)]
    pub chat_messages_count: i64,
    #[serde(default)]
    pub questions_count: i64,
    #[serde(default)]
    pub questions_answered_count: i64,
    #[serde(default)]
    pub upvotes_count: i64,
}

/// A live stream as its instructor sees it, for the API documents.
fn example() -> Stream {
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    };
    Stream {
        id: "01JD7QA2B3C4D5E6F7G8H9J0KM".into(),
        title: "Ownership and borrowing".into(),
        description: "Live coding, questions at the end.".into(),
        course_id: "01JD7Q8Z3M5X2V9C4B6N1K0P7R".into(),
        instructor_id: "teacher-1".into(),
        status: StreamStatus::Live,
        stream_key: "sk_us-east-1_AbCdEf0123456789".into(),
        viewer_count: 42,
        max_viewers: 57,
        unique_viewers: 63,
        total_watch_seconds: 51_840,
        scheduled_at: Some(at("2030-01-31T09:00:00Z")),
        started_at: Some(at("2030-01-31T09:01:12Z")),
        quality_settings: QualitySettings {
            resolution: Resolution::P1080,
            frame_rate: 30,
            bitrate_kbps: 4500,
        },
        is_public: true,
        ingest_url: Some("rtmps://a1b2c3d4e5f6.global-contribute.live-video.net:443/app/".into()),
        playback_url: Some(
            "https://a1b2c3d4e5f6.us-east-1.playback.live-video.net/api/video/v1/us-east-1.123456789012.channel.AbCdEf123456.m3u8"
                .into(),
        ),
        channel_arn: Some("arn:aws:ivs:us-east-1:123456789012:channel/AbCdEf123456".into()),
        stream_key_arn: Some("arn:aws:ivs:us-east-1:123456789012:stream-key/XyZ987654321".into()),
        ingest: crate::model::ingest::Ingest {
            state: crate::model::IngestState::Connected,
            session_id: Some("st-1A2b3C4d5E6f".into()),
            changed_at: Some(at("2030-01-31T09:01:10Z")),
            reconnect_deadline: None,
        },
        live_from_encoder: true,
        created_at: at("2030-01-20T16:40:00Z"),
        updated_at: at("2030-01-31T09:20:31Z"),
        chat_slow_mode_seconds: 5,
        blocked_words: vec!["spam".into()],
        pinned_message_seq: Some(12),
        highlighted_question_id: Some("01JD7QC9X8W7V6T5S4R3Q2P1N0".into()),
        chat_seq: 120,
        chat_messages_count: 118,
        questions_count: 9,
        questions_answered_count: 4,
        upvotes_count: 31,
        ..Stream::default()
    }
}

/// Fields [`Stream::view`] removes for everyone but the instructor.
const OWNER_ONLY: [&str; 5] = [
    "stream_key",
    "blocked_words",
    "ingest_url",
    "channel_arn",
    "stream_key_arn",
];

fn owner_only_fields_optional(schema: &mut schemars::Schema) {
    if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
        required.retain(|f| !OWNER_ONLY.iter().any(|o| f == o));
    }
}

impl Stream {
    /// The stored `max_viewers` is only brought up to date before the count falls,
    /// so the peak is the larger of it and the current count.
    pub fn with_peak(mut self) -> Self {
        self.max_viewers = self.max_viewers.max(self.viewer_count);
        self
    }

    /// The stream as a client sees it. The stream key (the ingest secret), where it is
    /// used (the ingest URL, the channel) and the blocked-words list (which would show how to get around it) only for `owner`,
    /// the instructor.
    pub fn view(self, owner: bool) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if !owner && let Some(map) = value.as_object_mut() {
            for field in OWNER_ONLY {
                map.remove(field);
            }
            if let Some(recording) = map.get_mut("recording").and_then(|r| r.as_object_mut()) {
                for field in super::recording::OWNER_ONLY {
                    recording.remove(field);
                }
            }
        }
        value
    }
}

/// The body of `POST /api/livestream/`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = create_stream_example())]
pub struct CreateStreamInput {
    #[schemars(length(min = 1, max = 200), pattern(pattern::LINE_REQUIRED))]
    pub title: String,
    #[serde(default)]
    #[schemars(length(max = 5000), pattern(pattern::MULTILINE))]
    pub description: Option<String>,
    /// A course the caller teaches.
    #[schemars(pattern(pattern::ULID))]
    pub course_id: String,
    /// RFC 3339, not in the past, at most a year ahead.
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub scheduled_at: Option<String>,
    #[serde(default)]
    pub quality_settings: Option<QualitySettingsInput>,
    #[serde(default)]
    pub is_public: Option<bool>,
    #[serde(default)]
    pub is_recording: Option<bool>,
}

fn create_stream_example() -> serde_json::Value {
    serde_json::json!({
        "title": "Ownership and borrowing",
        "description": "Live coding, questions at the end.",
        "course_id": "01JD7Q8Z3M5X2V9C4B6N1K0P7R",
        "scheduled_at": "2030-01-31T09:00:00Z",
        "quality_settings": { "resolution": "1080p", "frame_rate": 30, "bitrate_kbps": 4500 },
        "is_public": false,
        "is_recording": true
    })
}

/// A validated new stream, before ids and keys are assigned.
#[derive(Debug, Clone)]
pub struct NewStream {
    pub title: String,
    pub description: String,
    pub course_id: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub quality_settings: QualitySettings,
    pub is_public: bool,
    pub is_recording: bool,
}

/// The body of `PUT /api/livestream/{id}`: every field optional.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "title": "Ownership, part 2", "quality_settings": { "bitrate": 6000 } }))]
pub struct UpdateStreamInput {
    #[schemars(length(min = 1, max = 200), pattern(pattern::LINE_REQUIRED))]
    pub title: Option<String>,
    #[schemars(length(max = 5000), pattern(pattern::MULTILINE))]
    pub description: Option<String>,
    /// Only while the stream is scheduled.
    #[schemars(extend("format" = "date-time"))]
    pub scheduled_at: Option<String>,
    pub quality_settings: Option<QualitySettingsInput>,
    pub is_public: Option<bool>,
    pub is_recording: Option<bool>,
}

/// A validated change to a stream's details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub quality_settings: Option<QualitySettings>,
    pub is_public: Option<bool>,
    pub is_recording: Option<bool>,
}

impl StreamChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `stream` as it is once these changes are written.
    pub fn applied_to(&self, stream: &Stream) -> Stream {
        let mut after = stream.clone();
        if let Some(title) = &self.title {
            after.title = title.clone();
        }
        if let Some(description) = &self.description {
            after.description = description.clone();
        }
        if let Some(at) = self.scheduled_at {
            after.scheduled_at = Some(at);
        }
        if let Some(quality) = self.quality_settings {
            after.quality_settings = quality;
        }
        if let Some(is_public) = self.is_public {
            after.is_public = is_public;
        }
        if let Some(is_recording) = self.is_recording {
            after.is_recording = is_recording;
        }
        after
    }
}

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 5000;
/// Clock skew tolerated when checking that a schedule is not in the past.
const SCHEDULE_GRACE_SECS: i64 = 60;
const SCHEDULE_HORIZON_DAYS: i64 = 366;

pub fn parse_title(raw: &str) -> Result<String, FieldError> {
    parse_text("title", raw, 1, TITLE_MAX, false)
}

pub fn parse_description(raw: &str) -> Result<String, FieldError> {
    parse_text("description", raw, 0, DESCRIPTION_MAX, true)
}

/// An RFC 3339 time, not in the past and at most a year ahead.
pub fn parse_scheduled_at(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, FieldError> {
    let at = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| {
            FieldError::new(
                "scheduled_at",
                "must be an RFC 3339 time such as 2030-01-31T09:00:00Z",
            )
        })?
        .with_timezone(&Utc);
    if at < now - chrono::Duration::seconds(SCHEDULE_GRACE_SECS) {
        return Err(FieldError::new("scheduled_at", "must not be in the past"));
    }
    if at > now + chrono::Duration::days(SCHEDULE_HORIZON_DAYS) {
        return Err(FieldError::new(
            "scheduled_at",
            "must be at most a year ahead",
        ));
    }
    Ok(at)
}

impl CreateStreamInput {
    /// Validates every field, reporting all problems at once.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<NewStream, crate::ApiError> {
        let mut v = Validator::new();
        let title = v.check(parse_title(&self.title));
        let description = v.check(parse_description(self.description.as_deref().unwrap_or("")));
        let course_id = match ulid::Ulid::from_string(self.course_id.trim()) {
            Ok(id) => Some(id.to_string()),
            Err(_) => {
                v.push("course_id", "is not a valid course id");
                None
            }
        };
        let scheduled_at = match &self.scheduled_at {
            Some(raw) => v.check(parse_scheduled_at(raw, now)).map(Some),
            None => Some(None),
        };
        let quality_settings = self
            .quality_settings
            .as_ref()
            .map(|q| q.apply(QualitySettings::default(), &mut v))
            .unwrap_or_default();
        v.finish()?;
        Ok(NewStream {
            title: title.unwrap_or_default(),
            description: description.unwrap_or_default(),
            course_id: course_id.unwrap_or_default(),
            scheduled_at: scheduled_at.flatten(),
            quality_settings,
            is_public: self.is_public.unwrap_or(true),
            is_recording: self.is_recording.unwrap_or(false),
        })
    }
}

impl UpdateStreamInput {
    /// Validates the given fields against the stream they change.
    pub fn validate(
        &self,
        current: &Stream,
        now: DateTime<Utc>,
    ) -> Result<StreamChanges, crate::ApiError> {
        let mut v = Validator::new();
        let title = self.title.as_deref().and_then(|t| v.check(parse_title(t)));
        let description = self
            .description
            .as_deref()
            .and_then(|d| v.check(parse_description(d)));
        let scheduled_at = self
            .scheduled_at
            .as_deref()
            .and_then(|s| v.check(parse_scheduled_at(s, now)));
        if self.scheduled_at.is_some() && current.status != StreamStatus::Scheduled {
            v.push(
                "scheduled_at",
                "can only be changed while the stream is scheduled",
            );
        }
        let quality_settings = self
            .quality_settings
            .as_ref()
            .map(|q| q.apply(current.quality_settings, &mut v));
        v.finish()?;
        Ok(StreamChanges {
            title,
            description,
            scheduled_at,
            quality_settings,
            is_public: self.is_public,
            is_recording: self.is_recording,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> CreateStreamInput {
        CreateStreamInput {
            title: "Intro to Rust".into(),
            description: None,
            course_id: ulid::Ulid::generate().to_string(),
            scheduled_at: None,
            quality_settings: None,
            is_public: None,
            is_recording: None,
        }
    }

    #[test]
    fn defaults_are_public_720p_30fps_not_recording() {
        let s = input().validate(Utc::now()).unwrap();
        assert!(s.is_public);
        assert!(!s.is_recording);
        assert_eq!(s.quality_settings, QualitySettings::default());
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let mut i = input();
        i.title = "".into();
        i.description = Some("x".repeat(5001));
        i.scheduled_at = Some("2001-01-01T00:00:00Z".into());
        i.quality_settings = Some(QualitySettingsInput {
            resolution: Some("8K".into()),
            frame_rate: Some(25),
            bitrate_kbps: Some(499),
        });
        let err = i.validate(Utc::now()).unwrap_err();
        let crate::ApiError::Validation(fields) = err else {
            panic!("expected validation error")
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "title",
                "description",
                "scheduled_at",
                "quality_settings.resolution",
                "quality_settings.frame_rate",
                "quality_settings.bitrate_kbps"
            ]
        );
    }

    #[test]
    fn bitrate_bounds_are_inclusive() {
        for (kbps, ok) in [(500, true), (15000, true), (15001, false), (0, false)] {
            let mut i = input();
            i.quality_settings = Some(QualitySettingsInput {
                bitrate_kbps: Some(kbps),
                ..Default::default()
            });
            assert_eq!(i.validate(Utc::now()).is_ok(), ok, "{kbps}");
        }
    }

    #[test]
    fn the_frontends_bitrate_is_accepted_for_bitrate_kbps() {
        let input: CreateStreamInput = serde_json::from_value(serde_json::json!({
            "title": "t",
            "course_id": ulid::Ulid::generate().to_string(),
            "quality_settings": { "bitrate": 6000 }
        }))
        .unwrap();
        let stream = input.validate(Utc::now()).unwrap();
        assert_eq!(stream.quality_settings.bitrate_kbps, 6000);
        let both = serde_json::from_value::<QualitySettingsInput>(
            serde_json::json!({ "bitrate": 6000, "bitrate_kbps": 6000 }),
        );
        assert!(both.is_err(), "one quantity, one value");
    }

    #[test]
    fn resolutions_serialize_as_the_frontend_spells_them() {
        let json = serde_json::to_value(QualitySettings {
            resolution: Resolution::K4,
            frame_rate: 60,
            bitrate_kbps: 15000,
        })
        .unwrap();
        assert_eq!(json["resolution"], "4K");
    }

    #[test]
    fn scheduled_at_must_be_rfc3339_and_not_past() {
        let now = Utc::now();
        assert!(parse_scheduled_at("tomorrow", now).is_err());
        assert!(parse_scheduled_at(&(now - chrono::Duration::hours(1)).to_rfc3339(), now).is_err());
        assert!(parse_scheduled_at(&(now + chrono::Duration::hours(1)).to_rfc3339(), now).is_ok());
    }
}
