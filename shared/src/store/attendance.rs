//! What each user did in a class, counted from the class's items themselves (for the
//! attendance report): chat messages by sender, questions by asker, upvotes by voter.
//! Counting the items rather than keeping per-user counters makes the figures exact by
//! construction; each kind is one Query of the stream's partition, only the attributes
//! counted being read.

use std::collections::BTreeMap;

use super::chat::CHAT_MESSAGE_KIND;
use super::keys;
use super::questions::{REMOVING, VOTE_STATE};
use super::{Item, QuerySpec, Store, StoreError};
use crate::auth::Role;
use crate::table::KIND;

/// One user's part in a class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contribution {
    /// The name and role their messages and questions were sent with (the latest seen),
    /// for users who never joined (the instructor, admins).
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub chat_messages: i64,
    pub questions: i64,
    pub upvotes: i64,
}

fn text<'a>(item: &'a Item, attribute: &str) -> Option<&'a str> {
    item.get(attribute)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

impl Store {
    /// Every user's messages, questions and upvotes in a stream, by user id. Given-up
    /// chat numbers are not messages; a vote being withdrawn no longer counts.
    pub async fn contributions(
        &self,
        stream_id: &str,
    ) -> Result<BTreeMap<String, Contribution>, StoreError> {
        let spec = |prefix, projection| QuerySpec {
            projection: Some(projection),
            ..QuerySpec::stream_items(stream_id, prefix)
        };
        let (chat, questions, votes) = futures::try_join!(
            self.query_all(
                spec(
                    keys::CHAT_PREFIX,
                    &[KIND, "user_id", "display_name", "role"]
                ),
                usize::MAX
            ),
            self.query_all(
                spec(keys::QUESTION_PREFIX, &["user_id", "display_name"]),
                usize::MAX
            ),
            self.query_all(
                spec(keys::VOTE_PREFIX, &["user_id", VOTE_STATE]),
                usize::MAX
            ),
        )?;
        let mut by_user: BTreeMap<String, Contribution> = BTreeMap::new();
        for item in &chat {
            if text(item, KIND) != Some(CHAT_MESSAGE_KIND) {
                continue;
            }
            let Some(user) = text(item, "user_id") else {
                continue;
            };
            let entry = by_user.entry(user.to_string()).or_default();
            entry.chat_messages += 1;
            if let Some(name) = text(item, "display_name") {
                entry.display_name = Some(name.to_string());
            }
            if let Some(role) = item.get("role").cloned() {
                entry.role = serde_dynamo::from_attribute_value(role).ok().or(entry.role);
            }
        }
        for item in &questions {
            let Some(user) = text(item, "user_id") else {
                continue;
            };
            let entry = by_user.entry(user.to_string()).or_default();
            entry.questions += 1;
            if entry.display_name.is_none() {
                entry.display_name = text(item, "display_name").map(str::to_string);
            }
        }
        for item in &votes {
            if text(item, VOTE_STATE) == Some(REMOVING) {
                continue;
            }
            if let Some(user) = text(item, "user_id") {
                by_user.entry(user.to_string()).or_default().upvotes += 1;
            }
        }
        Ok(by_user)
    }
}
