//! Q&A: asking, listing, upvoting, answering and moderating questions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::question::{AnswerInput, AskInput};
use crate::model::{Question, QuestionStatus, Stream, new_id, now, parse_id};
use crate::store::questions::{QUESTION_ACTION, UnvoteOutcome, VoteOutcome};
use crate::store::{Store, StoreError};

use super::{access, roles};

/// Questions read for one listing. A class's Q&A stays far below this; past it the
/// oldest questions are listed and the rest are not.
pub const MAX_QUESTIONS_LISTED: usize = 2000;

fn question_id(raw: &str) -> Result<String, ApiError> {
    parse_id(raw, "question")
}

/// The stream and one of its questions, read at once: two lookups by key that do not
/// depend on each other, one store round trip instead of two. Callers check the stream
/// before they look at the question, so a refusal is the one it was when they were
/// read one after the other.
async fn stream_and_question(
    store: &Store,
    stream_id: &str,
    raw_id: &str,
) -> Result<(Stream, Option<Question>), ApiError> {
    let stream_id = parse_id(stream_id, "stream")?;
    let question_id = question_id(raw_id)?;
    let (stream, question) = tokio::try_join!(
        store.stream(&stream_id),
        store.question(&stream_id, &question_id)
    )?;
    Ok((stream.ok_or(ApiError::NotFound("stream"))?, question))
}

async fn load_question(store: &Store, stream: &Stream, raw_id: &str) -> Result<Question, ApiError> {
    let id = question_id(raw_id)?;
    store
        .question(&stream.id, &id)
        .await?
        .ok_or(ApiError::NotFound("question"))
}

/// `POST /api/livestream/{id}/questions`: joined participants allowed to ask (and the
/// instructor and moderators). With the approval queue on, a student's question waits
/// as `pending` until a moderator approves it.
pub async fn ask(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    input: AskInput,
) -> Result<serde_json::Value, ApiError> {
    let stream = access::load_visible(store, who, stream_id).await?;
    let text = input.validate()?;
    access::require_live(stream.status, "questions are open")?;
    let moderator = roles::can_moderate(who, &stream);
    if !moderator {
        let participant = roles::require_joined(store, who, &stream).await?;
        if !participant.can_ask_questions {
            return Err(ApiError::forbidden(
                "questions_disabled",
                "the instructor has turned off your questions",
            ));
        }
    }
    let at = now();
    let question = Question {
        id: new_id(),
        stream_id: stream.id.clone(),
        user_id: who.user_id.clone(),
        display_name: who.display_name.clone(),
        anonymous: input.anonymous.unwrap_or(false),
        text,
        status: if stream.questions_require_approval && !moderator {
            QuestionStatus::Pending
        } else {
            QuestionStatus::Open
        },
        created_at: at,
        updated_at: at,
        ..Default::default()
    };
    match store.ask(&question).await {
        Ok(()) => Ok(question.view(Some(who), moderator, false)),
        Err(StoreError::ConditionFailed) => {
            let latest = access::load(store, &stream.id).await?;
            access::require_live(latest.status, "questions are open")?;
            Err(ApiError::Internal("question refused while live".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Most upvoted first, then oldest first.
    Top,
    /// Newest first.
    Recent,
}

/// Which questions a listing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    Answered,
    Unanswered,
    /// The approval queue (moderators only).
    Pending,
}

/// Questions per page unless `limit` says otherwise (a board shows more than other lists).
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// A listing's parameters, parsed from the query string.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub sort: Sort,
    pub filter: Filter,
    pub offset: usize,
    pub limit: usize,
}

impl ListQuery {
    pub fn parse(
        sort: Option<&str>,
        filter: Option<&str>,
        status: Option<&str>,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Self, ApiError> {
        let sort = match sort.unwrap_or("top") {
            "top" => Sort::Top,
            "recent" => Sort::Recent,
            _ => return Err(ApiError::invalid("sort", "must be top or recent")),
        };
        let mut filter = match filter.unwrap_or("all") {
            "all" => Filter::All,
            "answered" => Filter::Answered,
            "unanswered" => Filter::Unanswered,
            _ => {
                return Err(ApiError::invalid(
                    "filter",
                    "must be all, answered or unanswered",
                ));
            }
        };
        match status {
            None | Some("") => {}
            Some("pending") => filter = Filter::Pending,
            Some(_) => return Err(ApiError::invalid("status", "must be pending")),
        }
        let offset = match cursor.filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("q:").and_then(|n| n.parse::<usize>().ok()))
                .filter(|offset| *offset <= MAX_QUESTIONS_LISTED)
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_cursor", "cursor is not valid for this listing")
                })?,
        };
        let limit = match limit.filter(|l| !l.is_empty()) {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=super::MAX_PAGE_SIZE as usize).contains(l))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!("must be a whole number from 1 to {}", super::MAX_PAGE_SIZE),
                    )
                })?,
        };
        Ok(Self {
            sort,
            filter,
            offset,
            limit,
        })
    }
}

/// A page of questions.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct QuestionPage {
    #[schemars(with = "Vec<Question>")]
    pub items: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
    /// The "now answering" question, if any.
    pub highlighted_question_id: Option<String>,
}

/// `GET /api/livestream/{id}/questions`. Students see approved, visible questions (and
/// their own pending ones); moderators see everything, flagged.
pub async fn list(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    query: ListQuery,
) -> Result<QuestionPage, ApiError> {
    let stream = access::load_visible(store, who, stream_id).await?;
    let moderator = roles::can_moderate(who, &stream);
    if query.filter == Filter::Pending && !moderator {
        return Err(ApiError::forbidden(
            "not_moderator",
            "only moderators see the approval queue",
        ));
    }
    let mut questions: Vec<Question> = store
        .questions(&stream.id, MAX_QUESTIONS_LISTED)
        .await?
        .into_iter()
        .filter(|q| {
            moderator
                || q.is_public()
                || (q.user_id == who.user_id && q.status == QuestionStatus::Pending && !q.hidden)
        })
        .filter(|q| match query.filter {
            Filter::All => true,
            Filter::Answered => q.status == QuestionStatus::Answered,
            Filter::Unanswered => {
                matches!(q.status, QuestionStatus::Open | QuestionStatus::Pending)
            }
            Filter::Pending => q.status == QuestionStatus::Pending,
        })
        .collect();
    match query.sort {
        // Ids are ULIDs: id order is creation order.
        Sort::Top => {
            questions.sort_by(|a, b| b.upvotes.cmp(&a.upvotes).then_with(|| a.id.cmp(&b.id)))
        }
        Sort::Recent => questions.sort_by(|a, b| b.id.cmp(&a.id)),
    }
    let voted = store.votes_of_user(&stream.id, &who.user_id).await?;
    let total = questions.len();
    let end = query.offset.saturating_add(query.limit).min(total);
    let items = questions
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|q| {
            let has_upvoted = voted.contains(&q.id);
            q.view(Some(who), moderator, has_upvoted)
        })
        .collect();
    Ok(QuestionPage {
        items,
        next_cursor: (end < total).then(|| URL_SAFE_NO_PAD.encode(format!("q:{end}"))),
        highlighted_question_id: stream.highlighted_question_id,
    })
}

/// `POST .../questions/{question_id}/upvote`: one vote per user, idempotent, not on
/// one's own question, only on approved visible questions.
pub async fn upvote(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let (stream, question) = stream_and_question(store, stream_id, raw_id).await?;
    let stream = access::visible(store, who, stream).await?;
    access::require_open(&stream)?;
    let question = question.ok_or(ApiError::NotFound("question"))?;
    let moderator = roles::can_moderate(who, &stream);
    if question.user_id == who.user_id {
        return Err(ApiError::forbidden(
            "own_question",
            "you cannot upvote your own question",
        ));
    }
    let current = match store
        .upvote(&stream.id, &question.id, &who.user_id, now())
        .await?
    {
        VoteOutcome::Counted(voted) => *voted,
        VoteOutcome::AlreadyVoted => load_question(store, &stream, &question.id).await?,
        VoteOutcome::NotVotable => {
            return Err(ApiError::conflict(
                "question_not_votable",
                "only approved, visible questions can be upvoted",
            ));
        }
    };
    Ok(current.view(Some(who), moderator, true))
}

/// `DELETE .../questions/{question_id}/upvote`: idempotent.
pub async fn remove_upvote(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let (stream, question) = stream_and_question(store, stream_id, raw_id).await?;
    let stream = access::visible(store, who, stream).await?;
    access::require_open(&stream)?;
    let question = question.ok_or(ApiError::NotFound("question"))?;
    let moderator = roles::can_moderate(who, &stream);
    // Withdrawing a vote that is not there changes nothing (idempotent).
    let (UnvoteOutcome::Removed | UnvoteOutcome::NotVoted) = store
        .remove_upvote(&stream.id, &question.id, &who.user_id)
        .await?;
    let current = load_question(store, &stream, &question.id).await?;
    Ok(current.view(Some(who), moderator, false))
}

async fn moderated(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
) -> Result<(Stream, Question), ApiError> {
    let (stream, question) = stream_and_question(store, stream_id, raw_id).await?;
    roles::require_moderator(who, &stream)?;
    access::require_open(&stream)?;
    let question = question.ok_or(ApiError::NotFound("question"))?;
    Ok((stream, question))
}

fn wrong_state(question: &Question, action: &str) -> ApiError {
    ApiError::conflict(
        "question_wrong_state",
        format!("a {} question cannot be {action}", question.status.as_str()),
    )
}

/// `PUT .../questions/{question_id}/answer`: sets or edits the answer.
pub async fn answer(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
    input: AnswerInput,
) -> Result<serde_json::Value, ApiError> {
    let (stream, question) = moderated(store, who, stream_id, raw_id).await?;
    let text = input.validate()?;
    if question.status == QuestionStatus::Dismissed {
        return Err(wrong_state(&question, "answered"));
    }
    match store.answer(&question, &text, &who.user_id, now()).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Err(wrong_state(&question, "answered")),
        Err(e) if e.failed_condition_at(QUESTION_ACTION) => {
            let latest = load_question(store, &stream, &question.id).await?;
            if latest.status == QuestionStatus::Answered {
                // Answered concurrently: edit that answer instead (counted once).
                store.answer(&latest, &text, &who.user_id, now()).await?;
            } else {
                return Err(wrong_state(&latest, "answered"));
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(load_question(store, &stream, &question.id)
        .await?
        .view(Some(who), true, false))
}

async fn transition(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
    from: &[QuestionStatus],
    to: QuestionStatus,
    action: &str,
) -> Result<serde_json::Value, ApiError> {
    let (stream, question) = moderated(store, who, stream_id, raw_id).await?;
    if question.status == to {
        return Ok(question.view(Some(who), true, false));
    }
    match store
        .set_question_status(&stream.id, &question.id, from, to, now())
        .await
    {
        Ok(q) => {
            if to == QuestionStatus::Dismissed {
                store
                    .clear_highlight(&stream.id, Some(&q.id), now())
                    .await?;
            }
            Ok(q.view(Some(who), true, false))
        }
        Err(StoreError::ConditionFailed) => {
            let latest = load_question(store, &stream, &question.id).await?;
            Err(wrong_state(&latest, action))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST .../approve`: pending -> open.
pub async fn approve(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
) -> Result<serde_json::Value, ApiError> {
    transition(
        store,
        who,
        stream_id,
        raw_id,
        &[QuestionStatus::Pending],
        QuestionStatus::Open,
        "approved",
    )
    .await
}

/// `POST .../dismiss`: any state -> dismissed (taken off the board, kept for the record).
pub async fn dismiss(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let from = [
        QuestionStatus::Pending,
        QuestionStatus::Open,
        QuestionStatus::Answered,
    ];
    transition(
        store,
        who,
        stream_id,
        raw_id,
        &from,
        QuestionStatus::Dismissed,
        "dismissed",
    )
    .await
}

/// `POST .../reopen`: dismissed -> open, or answered when it has an answer.
pub async fn reopen(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let (_, question) = moderated(store, who, stream_id, raw_id).await?;
    let to = if question.answer.is_some() {
        QuestionStatus::Answered
    } else {
        QuestionStatus::Open
    };
    if question.status != QuestionStatus::Dismissed {
        return Err(wrong_state(&question, "reopened"));
    }
    transition(
        store,
        who,
        stream_id,
        raw_id,
        &[QuestionStatus::Dismissed],
        to,
        "reopened",
    )
    .await
}

/// `POST .../hide`: hidden from students for good; a highlighted question loses it.
pub async fn hide(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let (stream, question) = moderated(store, who, stream_id, raw_id).await?;
    let hidden = store.hide_question(&stream.id, &question.id, now()).await?;
    store
        .clear_highlight(&stream.id, Some(&question.id), now())
        .await?;
    Ok(hidden.view(Some(who), true, false))
}

/// `POST .../highlight`: the one "now answering" question.
pub async fn highlight(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    raw_id: &str,
) -> Result<Stream, ApiError> {
    let (stream, question) = moderated(store, who, stream_id, raw_id).await?;
    match store
        .highlight_question(&stream.id, &question.id, now())
        .await
    {
        Ok(()) => access::load(store, &stream.id).await,
        Err(e) if e.failed_condition_at(1) => Err(ApiError::conflict(
            "question_not_highlightable",
            "only approved, visible questions can be highlighted",
        )),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/livestream/{id}/questions/highlight`.
pub async fn clear_highlight(
    store: &Store,
    who: &Identity,
    stream_id: &str,
) -> Result<Stream, ApiError> {
    let stream = access::load(store, stream_id).await?;
    roles::require_moderator(who, &stream)?;
    access::require_open(&stream)?;
    store.clear_highlight(&stream.id, None, now()).await?;
    access::load(store, &stream.id).await
}
