//! Replay: a class's chat and questions by their offset into its recording, so a player
//! shows them in step with the video.
//!
//! Each event's `offset_ms` is milliseconds from the recording's start (the replay's
//! origin, [`replay_origin`]); what happened before the first frame is at offset 0.
//! Events come oldest first in a total order: time, then kind (chat, question, answer,
//! highlight), then the chat number or the question id. A page's cursor is the last
//! event returned in that order, and the next page reads each source again from there:
//! the chat by time from its index, the questions from the stream's question items.
//! Students see what the live reads show them: no hidden message, no hidden, dismissed
//! or unapproved question (but their own pending one); moderators see everything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Identity;
use crate::error::{ApiError, Validator};
use crate::model::{ChatMessage, Question, QuestionStatus, Stream};
use crate::store::Store;
use crate::store::replay::ChatPosition;

use super::{access, roles};

/// Events per page unless `limit` says otherwise, and the most a page holds.
pub const DEFAULT_PAGE_SIZE: i32 = 100;
pub const MAX_PAGE_SIZE: i32 = 500;

/// Offsets past this (a year) all mean "to the end": times stay in the range whose
/// text form sorts as time.
pub const MAX_OFFSET_MS: i64 = 366 * 24 * 60 * 60 * 1000;

/// The time offset 0 of a class's replay stands for: the start of its recording, or
/// for a class without one (not recorded, or nothing pushed yet) its start. A class
/// never live has no replay.
pub fn replay_origin(stream: &Stream) -> Option<DateTime<Utc>> {
    stream
        .recording
        .as_ref()
        .and_then(|r| r.started_at)
        .or(stream.started_at)
}

/// What happened at one moment of the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Chat,
    Question,
    Answer,
    Highlight,
}

/// An event's place in the replay's order (and what a cursor holds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Position {
    /// Milliseconds since the Unix epoch.
    at: i64,
    kind: Kind,
    /// The chat number, zero-padded, or the question id.
    id: String,
}

impl Position {
    fn chat(at: DateTime<Utc>, seq: i64) -> Self {
        Self {
            at: at.timestamp_millis(),
            kind: Kind::Chat,
            id: format!("{seq:012}"),
        }
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> Result<Self, ApiError> {
        let invalid =
            || ApiError::bad_request("invalid_cursor", "cursor is not valid for this listing");
        if raw.len() > 512 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
        let position: Self = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let chat_number_ok = position.kind != Kind::Chat
            || (position.id.len() == 12 && position.id.bytes().all(|b| b.is_ascii_digit()));
        if DateTime::from_timestamp_millis(position.at).is_none() || !chat_number_ok {
            return Err(invalid());
        }
        Ok(position)
    }

    /// The chat message this position is, or the last one it comes after.
    fn chat_bound(&self) -> Option<ChatPosition> {
        let at = DateTime::from_timestamp_millis(self.at)?;
        match self.kind {
            Kind::Chat => Some(ChatPosition {
                at,
                seq: self.id.parse().ok()?,
            }),
            // Every message of that millisecond comes before a question event of it.
            _ => Some(ChatPosition {
                at,
                seq: crate::store::replay::LAST_SEQ,
            }),
        }
    }
}

/// A replay read's parameters, parsed from the query string.
#[derive(Debug, Clone)]
pub struct ReplayQuery {
    pub from_ms: i64,
    /// `None`: to the end.
    pub to_ms: Option<i64>,
    pub limit: i32,
    cursor: Option<Position>,
}

fn offset(v: &mut Validator, field: &'static str, raw: Option<&str>) -> Option<i64> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty())?;
    match raw.parse::<i64>() {
        Ok(ms) if ms >= 0 => Some(ms),
        _ => {
            v.push(field, "must be a whole number of milliseconds, 0 or more");
            None
        }
    }
}

impl ReplayQuery {
    /// `from_ms` (default 0) and `to_ms` (default: the end) are milliseconds into the
    /// recording, both included, `from_ms <= to_ms`; `limit` 1 to 500 (default 100).
    pub fn parse(
        from_ms: Option<&str>,
        to_ms: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Self, ApiError> {
        let mut v = Validator::new();
        let from = offset(&mut v, "from_ms", from_ms).unwrap_or(0);
        let to = offset(&mut v, "to_ms", to_ms);
        if let Some(to) = to
            && to < from
        {
            v.push("to_ms", "must not be less than from_ms");
        }
        let limit = match limit.map(str::trim).filter(|l| !l.is_empty()) {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => match raw.parse::<i32>() {
                Ok(l) if (1..=MAX_PAGE_SIZE).contains(&l) => l,
                _ => {
                    v.push(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                    );
                    DEFAULT_PAGE_SIZE
                }
            },
        };
        v.finish()?;
        let cursor = cursor
            .filter(|c| !c.is_empty())
            .map(Position::decode)
            .transpose()?;
        Ok(Self {
            from_ms: from,
            to_ms: to,
            limit,
            cursor,
        })
    }
}

/// One event of the replay.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplayEvent {
    /// A chat message was sent.
    Chat {
        /// Milliseconds into the recording.
        offset_ms: i64,
        #[schemars(with = "ChatMessage")]
        message: serde_json::Value,
    },
    /// A question was asked (as it stands now).
    Question {
        offset_ms: i64,
        #[schemars(with = "Question")]
        question: serde_json::Value,
    },
    /// A question was answered (its answer as it stands now).
    Answer {
        offset_ms: i64,
        #[schemars(with = "Question")]
        question: serde_json::Value,
    },
    /// A question was marked "now answering".
    Highlight {
        offset_ms: i64,
        #[schemars(with = "Question")]
        question: serde_json::Value,
    },
}

/// A page of the replay: events oldest first.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReplayPage {
    /// What offset 0 stands for: the start of the recording, or of the class when it
    /// has no recording.
    pub origin: DateTime<Utc>,
    pub items: Vec<ReplayEvent>,
    /// Pass as `?cursor=` (with the same range) for the next page; null on the last.
    /// A page may hold fewer than `limit` events and still have a next one.
    pub next_cursor: Option<String>,
}

/// May a viewer see this question (the live list's rule)?
fn question_visible(question: &Question, who: &Identity, moderator: bool) -> bool {
    moderator
        || question.is_public()
        || (question.user_id == who.user_id
            && question.status == QuestionStatus::Pending
            && !question.hidden)
}

/// The time `offset_ms` into a recording that started at `origin`.
fn at_offset(origin: DateTime<Utc>, offset_ms: i64) -> DateTime<Utc> {
    origin
        .checked_add_signed(TimeDelta::milliseconds(offset_ms.min(MAX_OFFSET_MS)))
        .unwrap_or(origin)
}

/// `GET /api/livestream/{id}/replay`: for whoever may view the stream; 409 `no_replay`
/// for a class that never went live.
pub async fn read(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    query: ReplayQuery,
) -> Result<ReplayPage, ApiError> {
    let stream = access::load_visible(store, who, stream_id).await?;
    let origin = replay_origin(&stream).ok_or_else(|| {
        ApiError::conflict(
            "no_replay",
            "this class never went live: it has nothing to replay",
        )
    })?;
    let moderator = roles::can_moderate(who, &stream);
    // What happened before the first frame shows at its start.
    let from = if query.from_ms == 0 {
        DateTime::UNIX_EPOCH
    } else {
        at_offset(origin, query.from_ms)
    };
    let to = at_offset(origin, query.to_ms.unwrap_or(MAX_OFFSET_MS));
    let after = query.cursor.as_ref();
    let limit = usize::try_from(query.limit).unwrap_or(1);
    let offset_of = |at: DateTime<Utc>| (at - origin).num_milliseconds().max(0);
    let in_range = |position: &Position| {
        let at = position.at;
        at >= from.timestamp_millis()
            && at <= to.timestamp_millis()
            && after.is_none_or(|after| position > after)
    };

    let chat = store
        .chat_between(
            &stream.id,
            from,
            to,
            after.and_then(Position::chat_bound),
            query.limit,
        )
        .await?;
    // The chat read stopped at `limit`: what comes after its last message waits for the
    // next page.
    let chat_end = chat
        .has_more
        .then(|| chat.messages.last())
        .flatten()
        .map(|m| Position::chat(m.created_at, m.seq));
    let mut events: Vec<(Position, ReplayEvent)> = Vec::new();
    for message in chat.messages {
        let position = Position::chat(message.created_at, message.seq);
        let offset_ms = offset_of(message.created_at);
        if let Some(message) = message.view(moderator) {
            events.push((position, ReplayEvent::Chat { offset_ms, message }));
        }
    }

    let questions = store
        .question_moments(&stream.id, super::questions::MAX_QUESTIONS_LISTED)
        .await?;
    let voted = store.votes_of_user(&stream.id, &who.user_id).await?;
    for moments in questions {
        let question = &moments.question;
        if !question_visible(question, who, moderator) {
            continue;
        }
        let happened = [
            (Kind::Question, Some(question.created_at)),
            (Kind::Answer, question.answered_at),
            (Kind::Highlight, moments.highlighted_at),
        ];
        for (kind, at) in happened {
            let Some(at) = at else { continue };
            let position = Position {
                at: at.timestamp_millis(),
                kind,
                id: question.id.clone(),
            };
            let before_chat_end = chat_end.as_ref().is_none_or(|end| position < *end);
            if !in_range(&position) || !before_chat_end {
                continue;
            }
            let view = question
                .clone()
                .view(Some(who), moderator, voted.contains(&question.id));
            events.push((position, question_event(kind, offset_of(at), view)));
        }
    }
    events.sort_by(|a, b| a.0.cmp(&b.0));
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|(position, _)| position.clone())
    } else {
        // Everything up to the chat read's end is here; the next page starts after it.
        chat_end
    };
    Ok(ReplayPage {
        origin,
        items: events.into_iter().map(|(_, event)| event).collect(),
        next_cursor: next.map(|position| position.encode()),
    })
}

/// The event of `kind` about a question (a chat kind is never asked for).
fn question_event(kind: Kind, offset_ms: i64, question: serde_json::Value) -> ReplayEvent {
    match kind {
        Kind::Answer => ReplayEvent::Answer {
            offset_ms,
            question,
        },
        Kind::Highlight => ReplayEvent::Highlight {
            offset_ms,
            question,
        },
        Kind::Question | Kind::Chat => ReplayEvent::Question {
            offset_ms,
            question,
        },
    }
}
