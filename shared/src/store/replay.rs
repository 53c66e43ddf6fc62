//! The reads of a class's replay: its chat by time, and its questions with the times
//! of what happened to them.
//!
//! A recorded class's chat messages carry a second key in GSI1 (`REPLAY#s`, sorted by
//! `{created_at}#CHAT#{seq}`, written with the message), so the messages of a stretch
//! of the recording are one Query with a `BETWEEN` on that sort key, whatever the
//! length of the class: never a read of the whole chat.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::keys;
use super::{QuerySpec, Store, StoreError, from_item};
use crate::model::{ChatMessage, Question};
use crate::table::{GSI1, GSI1PK, GSI1SK};

/// The highest chat number a replay sort key can hold (`{seq:012}`): after it come the
/// next millisecond's keys.
pub const LAST_SEQ: i64 = 999_999_999_999;

/// A chat message's place in its class's replay: when it was sent, then its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChatPosition {
    pub at: DateTime<Utc>,
    pub seq: i64,
}

/// What [`Store::chat_between`] read.
#[derive(Debug, Default)]
pub struct ChatBetween {
    /// Oldest first; ties in time by number.
    pub messages: Vec<ChatMessage>,
    /// More messages follow in the range.
    pub has_more: bool,
}

/// A question and when it was highlighted ("now answering"), if it was.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionMoments {
    pub question: Question,
    pub highlighted_at: Option<DateTime<Utc>>,
}

/// The highlight time a question item carries besides the [`Question`] fields.
#[derive(Deserialize)]
struct HighlightTime {
    #[serde(default)]
    highlighted_at: Option<DateTime<Utc>>,
}

impl Store {
    /// A recorded class's chat messages sent from `from` to `to` (both included), at
    /// most `limit`, oldest first; with `after`, only those after that message. Hidden
    /// messages are included (the caller decides who sees them). Messages of a class
    /// that was not recording when they were sent have no replay key and are not read.
    pub async fn chat_between(
        &self,
        stream_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<ChatPosition>,
        limit: i32,
    ) -> Result<ChatBetween, StoreError> {
        let mut low = keys::replay_chat_sk(from, 0);
        if let Some(after) = after {
            let next = if after.seq < LAST_SEQ {
                keys::replay_chat_sk(after.at, after.seq + 1)
            } else {
                keys::replay_chat_sk(after.at + chrono::TimeDelta::milliseconds(1), 0)
            };
            low = low.max(next);
        }
        let high = keys::replay_chat_sk(to, LAST_SEQ);
        let mut read = ChatBetween::default();
        if low > high || limit <= 0 {
            return Ok(read);
        }
        let wanted = usize::try_from(limit).unwrap_or(0);
        let mut start: Option<super::Item> = None;
        loop {
            // One more than wanted, to know whether the range goes on.
            let budget = i32::try_from(wanted + 1 - read.messages.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(self.table())
                .index_name(GSI1)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
                .expression_attribute_names("#pk", GSI1PK)
                .expression_attribute_names("#sk", GSI1SK)
                .expression_attribute_values(":pk", AttributeValue::S(keys::replay_pk(stream_id)))
                .expression_attribute_values(":low", AttributeValue::S(low.clone()))
                .expression_attribute_values(":high", AttributeValue::S(high.clone()))
                .scan_index_forward(true)
                .limit(budget)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            for item in out.items.unwrap_or_default() {
                if read.messages.len() == wanted {
                    read.has_more = true;
                    return Ok(read);
                }
                read.messages.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(read),
            }
        }
    }

    /// A stream's questions (at most `max`, oldest first), each with the time it was
    /// highlighted when its item records one.
    pub async fn question_moments(
        &self,
        stream_id: &str,
        max: usize,
    ) -> Result<Vec<QuestionMoments>, StoreError> {
        let spec = QuerySpec {
            limit: 500,
            ..QuerySpec::stream_items(stream_id, keys::QUESTION_PREFIX)
        };
        self.query_all(spec, max)
            .await?
            .into_iter()
            .map(|item| {
                let highlight: HighlightTime = from_item(item.clone())?;
                Ok(QuestionMoments {
                    question: from_item(item)?,
                    highlighted_at: highlight.highlighted_at,
                })
            })
            .collect()
    }
}
