//! The attendance report of a class: who came, for how long, and what they did; and
//! the enrolled students who never came.
//!
//! Watch time is the participants' own accounting, the one the live counts and the
//! statistics use ([`Participant::watched_until`]): a user's tabs count once, a dropped
//! socket or a lapsed HTTP heartbeat ends their watching when the presence rules end
//! it, and only time while the stream was live counts. The report's total watch time is
//! therefore the statistics' `total_watch_time`. Messages, questions and upvotes are
//! counted from the class's items ([`Store::contributions`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::{Identity, Role};
use crate::error::ApiError;
use crate::model::{Participant, Stream, StreamStatus, now};
use crate::store::Store;
use crate::store::attendance::Contribution;

use super::access;

/// One person of the class.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AttendanceRow {
    pub user_id: String,
    /// The name they joined or wrote with; null for enrolled students who never came
    /// (names come from a user's sign-in).
    pub display_name: Option<String>,
    pub role: Role,
    /// Enrolled in the stream's course.
    pub enrolled: bool,
    /// Their first join; null if they never joined.
    pub joined_at: Option<DateTime<Utc>>,
    /// When they last stopped watching; null while still watching or if they never came.
    pub left_at: Option<DateTime<Utc>>,
    pub is_watching: bool,
    /// Seconds watched while the stream was live, all tabs and re-joins counted once.
    pub watch_time: i64,
    /// `watch_time / duration`, from 0 to 1 (0 while the class has no duration).
    pub watched_share: f64,
    pub chat_messages_count: i64,
    pub questions_count: i64,
    pub upvotes_count: i64,
}

/// The sums of the report's rows.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AttendanceTotals {
    /// People who joined at least once.
    pub attended: i64,
    /// Students enrolled in the course.
    pub enrolled: i64,
    /// Of them, those who never joined.
    pub enrolled_absent: i64,
    /// Seconds watched by everyone: the statistics' `total_watch_time`.
    pub total_watch_time: i64,
    pub chat_messages_count: i64,
    pub questions_count: i64,
    pub upvotes_count: i64,
}

/// `GET /api/livestream/{id}/attendance`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AttendanceReport {
    pub stream_id: String,
    pub title: String,
    pub status: StreamStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds live: final for an ended stream, running for a live one.
    pub duration: i64,
    /// When these figures were computed (watch time of people still watching runs to it).
    pub computed_at: DateTime<Utc>,
    /// Participants by first join, then people who took part without joining (the
    /// instructor), then enrolled students who never came, by user id.
    pub rows: Vec<AttendanceRow>,
    pub totals: AttendanceTotals,
}

/// Seconds a class has been live at `at`: its final duration once ended. The figure
/// of the statistics' `duration`.
pub fn class_duration(stream: &Stream, at: DateTime<Utc>) -> i64 {
    match (stream.status, stream.started_at) {
        (StreamStatus::Ended, _) => stream.duration.unwrap_or_default(),
        (StreamStatus::Live, Some(started)) => (at - started).num_seconds().max(0),
        _ => 0,
    }
}

/// Share of a class watched, rounded to 4 decimals.
fn share(watch_time: i64, duration: i64) -> f64 {
    if duration <= 0 {
        return 0.0;
    }
    let share = (watch_time as f64 / duration as f64).clamp(0.0, 1.0);
    (share * 10_000.0).round() / 10_000.0
}

/// The report from what was read: pure, so its rules are tested on their own.
pub fn build(
    stream: &Stream,
    participants: Vec<Participant>,
    mut contributions: BTreeMap<String, Contribution>,
    enrolled: BTreeSet<String>,
    at: DateTime<Utc>,
) -> AttendanceReport {
    let duration = class_duration(stream, at);
    let watched_to = stream.ended_at.unwrap_or(at);
    let mut rows = Vec::new();
    let mut participants = participants;
    participants.sort_by(|a, b| (a.joined_at, &a.user_id).cmp(&(b.joined_at, &b.user_id)));
    for p in participants {
        let did = contributions.remove(&p.user_id).unwrap_or_default();
        let watch_time = p.watched_until(watched_to);
        rows.push(AttendanceRow {
            enrolled: enrolled.contains(&p.user_id),
            display_name: Some(p.display_name),
            role: p.role,
            joined_at: Some(p.joined_at),
            left_at: if p.is_watching { None } else { p.left_at },
            is_watching: p.is_watching,
            watch_time,
            watched_share: share(watch_time, duration),
            chat_messages_count: did.chat_messages,
            questions_count: did.questions,
            upvotes_count: did.upvotes,
            user_id: p.user_id,
        });
    }
    // People who took part without ever joining: the instructor, admins.
    for (user_id, did) in std::mem::take(&mut contributions) {
        let role = did.role.unwrap_or(if user_id == stream.instructor_id {
            Role::Teacher
        } else {
            Role::Student
        });
        rows.push(AttendanceRow {
            enrolled: enrolled.contains(&user_id),
            display_name: did.display_name,
            role,
            joined_at: None,
            left_at: None,
            is_watching: false,
            watch_time: 0,
            watched_share: 0.0,
            chat_messages_count: did.chat_messages,
            questions_count: did.questions,
            upvotes_count: did.upvotes,
            user_id,
        });
    }
    let present: BTreeSet<String> = rows.iter().map(|r| r.user_id.clone()).collect();
    let absent: Vec<&String> = enrolled.difference(&present).collect();
    let enrolled_absent = absent.len();
    for user_id in absent {
        rows.push(AttendanceRow {
            user_id: user_id.clone(),
            display_name: None,
            role: Role::Student,
            enrolled: true,
            joined_at: None,
            left_at: None,
            is_watching: false,
            watch_time: 0,
            watched_share: 0.0,
            chat_messages_count: 0,
            questions_count: 0,
            upvotes_count: 0,
        });
    }
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let totals = AttendanceTotals {
        attended: count(rows.iter().filter(|r| r.joined_at.is_some()).count()),
        enrolled: count(enrolled.len()),
        enrolled_absent: count(enrolled_absent),
        total_watch_time: rows.iter().map(|r| r.watch_time).sum(),
        chat_messages_count: rows.iter().map(|r| r.chat_messages_count).sum(),
        questions_count: rows.iter().map(|r| r.questions_count).sum(),
        upvotes_count: rows.iter().map(|r| r.upvotes_count).sum(),
    };
    AttendanceReport {
        stream_id: stream.id.clone(),
        title: stream.title.clone(),
        status: stream.status,
        started_at: stream.started_at,
        ended_at: stream.ended_at,
        duration,
        computed_at: at,
        rows,
        totals,
    }
}

/// `GET /api/livestream/{id}/attendance`: the instructor and admins; live or ended.
pub async fn report(
    store: &Store,
    who: &Identity,
    stream_id: &str,
) -> Result<AttendanceReport, ApiError> {
    let stream = access::load(store, stream_id).await?;
    if !access::is_owner(who, &stream) && !who.is_admin() {
        return Err(ApiError::forbidden(
            "not_stream_owner",
            "only the stream's instructor and admins see its attendance",
        ));
    }
    let (participants, contributions, members) = futures::try_join!(
        store.all_participants(&stream.id),
        store.contributions(&stream.id),
        store.course_members(&stream.course_id),
    )?;
    let enrolled = members.into_iter().map(|m| m.user_id).collect();
    Ok(build(&stream, participants, contributions, enrolled, now()))
}

/// The CSV columns, in order.
const CSV_HEADER: [&str; 12] = [
    "user_id",
    "display_name",
    "role",
    "enrolled",
    "joined_at",
    "left_at",
    "is_watching",
    "watch_time",
    "watched_share",
    "chat_messages_count",
    "questions_count",
    "upvotes_count",
];

/// The report as CSV (RFC 4180, CRLF): a header row, one row per person, then a `TOTAL`
/// row with the sums (its `enrolled` column counts the enrolled students). Names that a
/// spreadsheet would take for a formula start with `'`.
pub fn to_csv(report: &AttendanceReport) -> Result<String, ApiError> {
    let failed = |e: csv::Error| ApiError::Internal(format!("writing the attendance CSV: {e}"));
    let time = |t: Option<DateTime<Utc>>| t.map(crate::model::sort_time).unwrap_or_default();
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    out.write_record(CSV_HEADER).map_err(failed)?;
    for row in &report.rows {
        out.write_record([
            row.user_id.clone(),
            as_text_cell(row.display_name.as_deref().unwrap_or_default()),
            row.role.as_str().to_string(),
            row.enrolled.to_string(),
            time(row.joined_at),
            time(row.left_at),
            row.is_watching.to_string(),
            row.watch_time.to_string(),
            row.watched_share.to_string(),
            row.chat_messages_count.to_string(),
            row.questions_count.to_string(),
            row.upvotes_count.to_string(),
        ])
        .map_err(failed)?;
    }
    let totals = &report.totals;
    out.write_record([
        "TOTAL".to_string(),
        String::new(),
        String::new(),
        totals.enrolled.to_string(),
        String::new(),
        String::new(),
        String::new(),
        totals.total_watch_time.to_string(),
        String::new(),
        totals.chat_messages_count.to_string(),
        totals.questions_count.to_string(),
        totals.upvotes_count.to_string(),
    ])
    .map_err(failed)?;
    let bytes = out
        .into_inner()
        .map_err(|e| ApiError::Internal(format!("writing the attendance CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ApiError::Internal(e.to_string()))
}

/// A name as a spreadsheet cell: one starting like a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return) gets a leading `'`, so opening the file never runs what a user chose
/// as their name.
fn as_text_cell(name: &str) -> String {
    if name.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{name}")
    } else {
        name.to_string()
    }
}

/// The download's file name: the class's id, so it is safe in a header as it is.
pub fn csv_file_name(report: &AttendanceReport) -> String {
    format!("attendance-{}.csv", report.stream_id)
}
