//! What a change-stream record means for clients: each record of the table becomes
//! zero or more client events for one stream, with the audience that may see them.

use aws_lambda_events::dynamodb::EventRecord;
use livestream::live::{
    ChatHidden, QuestionRemoved, StreamIngestChanged, StreamRecordingChanged, StreamStatusChanged,
    StreamUpdated, ViewersUpdated, data,
};
use livestream::model::{
    ChatMessage, Connection, Question, QuestionStatus, RecordingState, Stream, StreamStatus,
};
use livestream::realtime::client_event;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Who receives an event among a stream's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    /// The instructor, admins and moderators (and `also`, e.g. a question's asker).
    Moderators {
        also: Option<String>,
    },
    /// Everyone who is not a moderator (they get a redacted view).
    NotModerators,
}

/// An event for the connections of one stream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub stream_id: String,
    pub kind: &'static str,
    pub audience: Audience,
    /// The same data for everyone in the audience.
    pub data: Value,
    /// Replaces an earlier event with the same key in the batch (viewer counts, a
    /// question's successive updates).
    pub coalesce_key: Option<String>,
    /// The change record's sequence number. All items of a stream share its partition
    /// key, so their records come in one shard in order: the numbers only grow within a
    /// stream, and a client can order and de-duplicate events by them.
    pub sequence: Option<String>,
}

impl Outgoing {
    fn everyone(stream_id: &str, kind: &'static str, data: Value) -> Self {
        Self {
            stream_id: stream_id.to_string(),
            kind,
            audience: Audience::Everyone,
            data,
            coalesce_key: None,
            sequence: None,
        }
    }

    fn to(
        stream_id: &str,
        kind: &'static str,
        audience: Audience,
        data: Value,
        coalesce_key: Option<String>,
    ) -> Self {
        Self {
            stream_id: stream_id.to_string(),
            kind,
            audience,
            data,
            coalesce_key,
            sequence: None,
        }
    }

    pub fn to_client_event(&self) -> Value {
        let mut event = client_event(self.kind, &self.stream_id, self.data.clone());
        if let Some(sequence) = &self.sequence {
            event["sequence"] = Value::String(sequence.clone());
        }
        event
    }
}

/// Work the broadcaster does besides posting events.
#[derive(Debug, Clone)]
pub enum SideEffect {
    /// The stream went live: count connections opened while it was scheduled.
    StreamWentLive(String),
    /// TTL deleted a connection whose `$disconnect` never came: end its presence.
    ConnectionExpired(Connection),
    /// The stream ended or was cancelled: after its last events are delivered, its
    /// sockets are closed.
    CloseStream(String),
    /// The stream turned private: connections opened while it was public whose users
    /// are enrolled are marked as allowed, before the batch's events go out, so they
    /// miss none (the others receive nothing more: delivery checks the stream).
    AdmitEnrolled(String),
    /// The stream turned private: connections of users who may not watch it are
    /// closed (they already receive nothing more: delivery checks the stream).
    RevokeOutsiders(String),
}

impl SideEffect {
    /// Effects that must wait until the batch's events are delivered.
    pub fn after_delivery(&self) -> bool {
        matches!(self, Self::CloseStream(_) | Self::RevokeOutsiders(_))
    }
}

/// What one record asks for.
#[derive(Debug, Default)]
pub struct Interpretation {
    pub events: Vec<Outgoing>,
    pub effects: Vec<SideEffect>,
}

fn image<T: DeserializeOwned>(item: &serde_dynamo::Item) -> Option<T> {
    if item.is_empty() {
        return None;
    }
    serde_dynamo::from_item(item.clone()).ok()
}

fn kind(record: &EventRecord) -> Option<String> {
    let item = if record.change.new_image.is_empty() {
        &record.change.old_image
    } else {
        &record.change.new_image
    };
    let value: Value = serde_json::to_value(item).ok()?;
    value
        .get(livestream::table::KIND)?
        .get("S")?
        .as_str()
        .map(str::to_string)
}

/// Deleted by DynamoDB's TTL (not by a request).
fn removed_by_ttl(record: &EventRecord) -> bool {
    record.event_name == "REMOVE"
        && record
            .user_identity
            .as_ref()
            .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com")
}

/// The client events and side effects of one record.
pub fn interpret(record: &EventRecord) -> Interpretation {
    let mut out = Interpretation::default();
    match kind(record).as_deref() {
        Some("stream") => stream_changed(record, &mut out),
        Some("chat_message") => chat_changed(record, &mut out),
        Some("question") => question_changed(record, &mut out),
        Some("connection") if removed_by_ttl(record) => {
            if let Some(connection) = image::<Connection>(&record.change.old_image) {
                out.effects.push(SideEffect::ConnectionExpired(connection));
            }
        }
        _ => {}
    }
    out
}

fn stream_changed(record: &EventRecord, out: &mut Interpretation) {
    let Some(new) = image::<Stream>(&record.change.new_image).map(Stream::with_peak) else {
        return;
    };
    let old = image::<Stream>(&record.change.old_image).map(Stream::with_peak);
    let id = new.id.clone();
    let status_changed = old.as_ref().is_none_or(|o| o.status != new.status);
    if status_changed && old.is_some() {
        out.events.push(Outgoing::everyone(
            &id,
            "stream.status",
            data(&StreamStatusChanged {
                status: new.status,
                started_at: new.started_at,
                ended_at: new.ended_at,
                duration: new.duration,
            }),
        ));
        if new.status == StreamStatus::Live {
            out.effects.push(SideEffect::StreamWentLive(id.clone()));
        }
        if new.status.is_finished() {
            out.effects.push(SideEffect::CloseStream(id.clone()));
        }
    }
    let Some(old) = old else { return };
    if old.ingest.state != new.ingest.state && !new.status.is_finished() {
        out.events.push(Outgoing::everyone(
            &id,
            "stream.ingest",
            data(&StreamIngestChanged {
                state: new.ingest.state,
                reconnect_deadline: new.ingest.reconnect_deadline,
                live_from_encoder: new.live_from_encoder,
            }),
        ));
    }
    let recording = |s: &Stream| {
        s.recording.as_ref().map_or(RecordingState::None, |r| {
            r.state_for(s.status.is_finished())
        })
    };
    if recording(&old) != recording(&new) {
        let current = new
            .recording
            .as_ref()
            .filter(|_| recording(&new) != RecordingState::None);
        out.events.push(Outgoing::everyone(
            &id,
            "stream.recording",
            data(&StreamRecordingChanged {
                state: recording(&new),
                started_at: current.and_then(|r| r.started_at),
                ended_at: current.and_then(|r| r.ended_at),
                duration_ms: current.and_then(|r| r.duration_ms),
            }),
        ));
    }
    if old.is_public && !new.is_public && !new.status.is_finished() {
        out.effects.push(SideEffect::AdmitEnrolled(id.clone()));
        out.effects.push(SideEffect::RevokeOutsiders(id.clone()));
    }
    let viewers = |s: &Stream| (s.viewer_count, s.max_viewers, s.unique_viewers);
    if viewers(&old) != viewers(&new) {
        out.events.push(Outgoing {
            coalesce_key: Some("viewers.updated".into()),
            ..Outgoing::everyone(
                &id,
                "viewers.updated",
                data(&ViewersUpdated {
                    viewer_count: new.viewer_count,
                    max_viewers: new.max_viewers,
                    unique_viewers: new.unique_viewers,
                }),
            )
        })
    }
    let details = |s: &Stream| {
        (
            s.title.clone(),
            s.description.clone(),
            s.pinned_message_seq,
            s.highlighted_question_id.clone(),
            s.chat_slow_mode_seconds,
            s.questions_require_approval,
            s.is_public,
            s.quality_settings,
        )
    };
    if details(&old) != details(&new) {
        out.events.push(Outgoing::everyone(
            &id,
            "stream.updated",
            data(&StreamUpdated {
                title: new.title.clone(),
                description: new.description.clone(),
                pinned_message_seq: new.pinned_message_seq,
                highlighted_question_id: new.highlighted_question_id.clone(),
                chat_slow_mode_seconds: new.chat_slow_mode_seconds,
                questions_require_approval: new.questions_require_approval,
                is_public: new.is_public,
                quality_settings: new.quality_settings,
            }),
        ));
    }
}

fn chat_changed(record: &EventRecord, out: &mut Interpretation) {
    let Some(new) = image::<ChatMessage>(&record.change.new_image) else {
        return;
    };
    let old = image::<ChatMessage>(&record.change.old_image);
    let stream_id = new.stream_id.clone();
    match old {
        None => {
            // A message is written visible; `view` withholds a hidden one regardless.
            if let Some(data) = new.view(false) {
                out.events
                    .push(Outgoing::everyone(&stream_id, "chat.message", data));
            }
        }
        Some(old) if !old.hidden && new.hidden => {
            // Only the fact: moderators already have the text, students must not get it.
            out.events.push(Outgoing::everyone(
                &stream_id,
                "chat.hidden",
                data(&ChatHidden {
                    id: new.id.clone(),
                    seq: new.seq,
                    hidden_at: new.hidden_at,
                }),
            ));
        }
        Some(_) => {}
    }
}

fn question_changed(record: &EventRecord, out: &mut Interpretation) {
    let Some(new) = image::<Question>(&record.change.new_image) else {
        return;
    };
    let created = record.change.old_image.is_empty();
    let kind = if created {
        "question.created"
    } else {
        "question.updated"
    };
    let key = (!created).then(|| format!("question.updated:{}", new.id));
    let stream_id = new.stream_id.clone();
    let full = new.clone().view(None, true, false);
    if new.is_public() {
        out.events.push(Outgoing::to(
            &stream_id,
            kind,
            Audience::Moderators { also: None },
            full,
            key.clone(),
        ));
        // Anonymous askers stay anonymous: no viewer, not a moderator.
        let public = new.view(None, false, false);
        out.events.push(Outgoing::to(
            &stream_id,
            kind,
            Audience::NotModerators,
            public,
            key.map(|k| k + ":public"),
        ));
    } else if new.status == QuestionStatus::Pending && !new.hidden {
        let asker = Some(new.user_id.clone());
        out.events.push(Outgoing::to(
            &stream_id,
            kind,
            Audience::Moderators { also: asker },
            full,
            key,
        ));
    } else {
        out.events.push(Outgoing::to(
            &stream_id,
            kind,
            Audience::Moderators { also: None },
            full,
            key.clone(),
        ));
        if !created {
            // Students drop it from their board; they never get its text again.
            let gone = data(&QuestionRemoved {
                id: new.id.clone(),
                status: new.status,
                hidden: new.hidden,
            });
            out.events.push(Outgoing::to(
                &stream_id,
                kind,
                Audience::NotModerators,
                gone,
                key.map(|k| k + ":public"),
            ));
        }
    }
}
