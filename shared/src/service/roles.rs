//! Who may act in a stream: the instructor, admins, moderators, joined participants.

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::{Participant, Stream};
use crate::store::Store;

use super::access::is_owner;

/// May `who` moderate this stream (hide, answer, approve, pin)? The instructor,
/// admins, and participants the instructor made moderators (`moderator_ids`, kept in
/// step with their participant records).
pub fn can_moderate(who: &Identity, stream: &Stream) -> bool {
    is_owner(who, stream) || who.is_admin() || stream.moderator_ids.contains(&who.user_id)
}

/// Refuses callers who may not moderate this stream.
pub fn require_moderator(who: &Identity, stream: &Stream) -> Result<(), ApiError> {
    if can_moderate(who, stream) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not_moderator",
            "only the instructor and moderators can do this",
        ))
    }
}

/// The caller's participation, which must be active (joined and watching).
pub async fn require_joined(
    store: &Store,
    who: &Identity,
    stream: &Stream,
) -> Result<Participant, ApiError> {
    match store.participant(&stream.id, &who.user_id).await? {
        Some(p) if p.is_watching => Ok(p),
        _ => Err(ApiError::forbidden(
            "not_joined",
            "join the stream before taking part",
        )),
    }
}
