//! Every key of the table, built from typed inputs in one place.
//!
//! | item        | PK          | SK              | GSI1PK / GSI1SK                    | GSI2PK / GSI2SK            |
//! |-------------|-------------|-----------------|------------------------------------|----------------------------|
//! | course      | COURSE#c    | COURSE          |                                    | USER#teacher / COURSE#c    |
//! | enrollment  | COURSE#c    | MEMBER#u        |                                    | USER#u / COURSE#c          |
//! | stream      | STREAM#s    | STREAM          | STATUS#live / {started_at}#s (sparse: scheduled and live only); STREAMS_UNSETTLED / {ended_at}#s (ended, until settled) | USER#teacher / STREAM#s |
//! | participant | STREAM#s    | PARTICIPANT#u   | HTTP_PRESENCE#n / {seen_at}#s#u (while joined over HTTP) | USER#u / PARTICIPATION#s |
//! | chat head   | STREAM#s    | STREAM#CHAT     |                                    |                            |
//! | chat message| STREAM#s    | CHAT#{seq:012}  | REPLAY#s / {created_at}#CHAT#{seq} (recorded classes only) |                |
//! | question    | STREAM#s    | QUESTION#q      |                                    |                            |
//! | upvote      | STREAM#s    | VOTE#q#u        |                                    | USER#u / VOTE#s#q          |
//! | stats       | STREAM#s    | STATS           |                                    |                            |
//! | closed      | STREAM#s    | CLOSED          |                                    |                            |
//! | connection  | CONN#id     | CONN            | STREAM#s#CONNS / CONN#id           | CONNS#n / {checked_at}#id  |
//! | channel     | CHANNEL#arn | CHANNEL         | CHANNELS_RETIRED / {delete_after}#arn (once its class is over) | |
//!
//! Connection items carry `ttl` (API Gateway's 2-hour limit plus a margin).
//!
//! The sweeper's two indexes (`HTTP_PRESENCE#n`, `CONNS#n`) are spread over
//! [`SWEEP_SHARDS`] partitions by a hash of the item, so a class joining at once does
//! not write one hot index partition; the sweeper queries each shard.
//!
//! Ids are ULIDs, so `COURSE#c` and `STREAM#s` sort by creation time.

use aws_sdk_dynamodb::types::AttributeValue;

use super::Item;
use crate::model::StreamStatus;

pub fn key(pk: String, sk: String) -> Item {
    [
        (crate::table::PK.to_string(), AttributeValue::S(pk)),
        (crate::table::SK.to_string(), AttributeValue::S(sk)),
    ]
    .into()
}

pub fn course_pk(course_id: &str) -> String {
    format!("COURSE#{course_id}")
}

pub const COURSE_SK: &str = "COURSE";

pub fn member_sk(user_id: &str) -> String {
    format!("MEMBER#{user_id}")
}

pub fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}

/// GSI2 sort key of a course and of an enrollment in it.
pub fn course_ref(course_id: &str) -> String {
    format!("COURSE#{course_id}")
}

pub const COURSE_REF_PREFIX: &str = "COURSE#";

pub fn stream_pk(stream_id: &str) -> String {
    format!("STREAM#{stream_id}")
}

pub const STREAM_SK: &str = "STREAM";

/// GSI2 sort key of a stream under its instructor.
pub fn stream_ref(stream_id: &str) -> String {
    format!("STREAM#{stream_id}")
}

pub const STREAM_REF_PREFIX: &str = "STREAM#";

/// GSI1 partition of ended streams whose counts are still to be settled, sorted by
/// when they ended (`{ended_at}#s`); the sweeper settles and removes them.
pub const UNSETTLED_PK: &str = "STREAMS_UNSETTLED";

/// GSI1 partition of streams in a status; only scheduled and live streams are indexed.
pub fn status_pk(status: StreamStatus) -> String {
    format!("STATUS#{}", status.as_str())
}

/// GSI1 sort key: the time that orders the listing, then the id to break ties.
pub fn status_sk(at: &str, stream_id: &str) -> String {
    format!("{at}#{stream_id}")
}

pub fn participant_sk(user_id: &str) -> String {
    format!("PARTICIPANT#{user_id}")
}

pub const PARTICIPANT_PREFIX: &str = "PARTICIPANT#";

/// GSI2 sort key of a participation under its user.
pub fn participation_ref(stream_id: &str) -> String {
    format!("PARTICIPATION#{stream_id}")
}

/// A chat message's sort key: its per-stream sequence number, zero-padded so that
/// string order is number order.
pub fn chat_sk(seq: i64) -> String {
    format!("CHAT#{seq:012}")
}

pub const CHAT_PREFIX: &str = "CHAT#";

/// A stream's chat head: its chat's number, count, rules version and whether it is
/// open (see `store::chat`). It sorts right after the stream item, and only the two
/// begin with [`STREAM_SK`], so one Query reads both.
pub const CHAT_HEAD_SK: &str = "STREAM#CHAT";

pub fn question_sk(question_id: &str) -> String {
    format!("QUESTION#{question_id}")
}

pub const QUESTION_PREFIX: &str = "QUESTION#";

/// One user's vote on one question: its existence is the vote.
pub fn vote_sk(question_id: &str, user_id: &str) -> String {
    format!("VOTE#{question_id}#{user_id}")
}

pub const VOTE_PREFIX: &str = "VOTE#";

/// GSI2 sort key of a vote under its user, so a user's votes in a stream are one Query.
pub fn vote_ref(stream_id: &str, question_id: &str) -> String {
    format!("VOTE#{stream_id}#{question_id}")
}

pub fn vote_ref_prefix(stream_id: &str) -> String {
    format!("VOTE#{stream_id}#")
}

/// The final statistics of an ended stream.
pub const STATS_SK: &str = "STATS";

/// Present once a stream is ended or cancelled: what moderation transactions check,
/// so they never hold the stream item the whole class writes
/// (`shared/src/store/lifecycle.rs`).
pub const CLOSED_SK: &str = "CLOSED";

/// The video channel of a stream, by its ARN: how a video service event finds its class.
pub fn channel_pk(channel_arn: &str) -> String {
    format!("CHANNEL#{channel_arn}")
}

pub const CHANNEL_SK: &str = "CHANNEL";

/// GSI1 partition of channels whose class is over, sorted by when they may be deleted
/// (a handful a day: one partition).
pub const CHANNELS_RETIRED: &str = "CHANNELS_RETIRED";

/// GSI1 sort key of a retired channel.
pub fn channel_retired_sk(delete_after: &str, channel_arn: &str) -> String {
    format!("{delete_after}#{channel_arn}")
}

pub fn connection_pk(connection_id: &str) -> String {
    format!("CONN#{connection_id}")
}

pub const CONNECTION_SK: &str = "CONN";

/// GSI1 partition holding a stream's connections.
pub fn stream_connections_pk(stream_id: &str) -> String {
    format!("STREAM#{stream_id}#CONNS")
}

/// GSI1 sort key of a connection in its stream.
pub fn connection_ref(connection_id: &str) -> String {
    format!("CONN#{connection_id}")
}

/// Partitions each sweep index is spread over.
pub const SWEEP_SHARDS: u32 = 8;

/// The shard of an item in a sweep index: a stable hash of `id` (FNV-1a; written
/// out because std's hasher is not stable across releases).
pub fn sweep_shard(id: &str) -> u32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % SWEEP_SHARDS
}

/// GSI1 partition of users present over HTTP (their heartbeat's age is the sort key).
pub fn http_presence_pk(shard: u32) -> String {
    format!("HTTP_PRESENCE#{shard}")
}

/// GSI1 sort key of an HTTP presence: the last heartbeat, then the participant.
pub fn http_presence_sk(seen_at: &str, stream_id: &str, user_id: &str) -> String {
    format!("{seen_at}#{stream_id}#{user_id}")
}

/// GSI2 partition of open connections (the time they were last checked sorts them).
pub fn connections_pk(shard: u32) -> String {
    format!("CONNS#{shard}")
}

/// GSI2 sort key of a connection: when it was last known alive, then its id.
pub fn connection_check_sk(checked_at: &str, connection_id: &str) -> String {
    format!("{checked_at}#{connection_id}")
}

/// GSI1 partition of a recorded class's chat, ordered by time for replay.
pub fn replay_pk(stream_id: &str) -> String {
    format!("REPLAY#{stream_id}")
}

/// GSI1 sort key of a chat message in its class's replay: its time with a fixed
/// millisecond width (so text order is time order), then its number.
pub fn replay_chat_sk(at: chrono::DateTime<chrono::Utc>, seq: i64) -> String {
    format!(
        "{}#CHAT#{seq:012}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        assert_eq!(course_pk("c1"), "COURSE#c1");
        assert_eq!(member_sk("u1"), "MEMBER#u1");
        assert_eq!(user_pk("u1"), "USER#u1");
        assert_eq!(stream_pk("s1"), "STREAM#s1");
        assert_eq!(status_pk(StreamStatus::Live), "STATUS#live");
        assert_eq!(
            status_sk("2026-01-01T00:00:00.000Z", "s1"),
            "2026-01-01T00:00:00.000Z#s1"
        );
    }

    #[test]
    fn sweep_shards_are_stable_and_in_range() {
        assert_eq!(sweep_shard("abc"), sweep_shard("abc"));
        let shards: std::collections::HashSet<u32> = (0..200)
            .map(|i| sweep_shard(&format!("user-{i}")))
            .collect();
        assert_eq!(shards.len(), SWEEP_SHARDS as usize);
        assert!(shards.iter().all(|s| *s < SWEEP_SHARDS));
    }
}
