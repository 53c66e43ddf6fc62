//! Q&A handlers.

use lambda_http::Request;
use livestream::AppState;
use livestream::auth::Identity;
use livestream::http::{Reply, created, json_body, ok, path_param, query_param};
use livestream::service::questions::{self as rules, ListQuery};

/// `POST /api/livestream/{id}/questions`
pub async fn ask(state: &AppState, who: Identity, req: Request) -> Reply {
    created(
        &rules::ask(
            &state.store,
            &who,
            &path_param(&req, "id")?,
            json_body(&req)?,
        )
        .await?,
    )
}

/// `GET /api/livestream/{id}/questions?sort=top|recent&filter=all|answered|unanswered&status=pending`
pub async fn list(state: &AppState, who: Identity, req: Request) -> Reply {
    let q = |name| query_param(&req, name);
    let query = ListQuery::parse(
        q("sort").as_deref(),
        q("filter").as_deref(),
        q("status").as_deref(),
        q("cursor").as_deref(),
        q("limit").as_deref(),
    )?;
    ok(&rules::list(&state.store, &who, &path_param(&req, "id")?, query).await?)
}

/// A moderation or voting action on one question: `{id}` and `{question_id}` from the path.
macro_rules! question_action {
    ($(#[$doc:meta])* $name:ident => $rule:path) => {
        $(#[$doc])*
        pub async fn $name(state: &AppState, who: Identity, req: Request) -> Reply {
            let (id, question) = (path_param(&req, "id")?, path_param(&req, "question_id")?);
            ok(&$rule(&state.store, &who, &id, &question).await?)
        }
    };
}

question_action!(
    /// `POST .../questions/{question_id}/upvote`
    upvote => rules::upvote
);
question_action!(
    /// `DELETE .../questions/{question_id}/upvote`
    remove_upvote => rules::remove_upvote
);
question_action!(
    /// `POST .../questions/{question_id}/hide`
    hide => rules::hide
);
question_action!(
    /// `POST .../questions/{question_id}/approve`
    approve => rules::approve
);
question_action!(
    /// `POST .../questions/{question_id}/dismiss`
    dismiss => rules::dismiss
);
question_action!(
    /// `POST .../questions/{question_id}/reopen`
    reopen => rules::reopen
);

/// `PUT .../questions/{question_id}/answer`
pub async fn answer(state: &AppState, who: Identity, req: Request) -> Reply {
    let (id, question) = (path_param(&req, "id")?, path_param(&req, "question_id")?);
    ok(&rules::answer(&state.store, &who, &id, &question, json_body(&req)?).await?)
}

/// `POST .../questions/{question_id}/highlight`
pub async fn highlight(state: &AppState, who: Identity, req: Request) -> Reply {
    let (id, question) = (path_param(&req, "id")?, path_param(&req, "question_id")?);
    let stream = rules::highlight(&state.store, &who, &id, &question).await?;
    let owner = stream.instructor_id == who.user_id;
    ok(&stream.view(owner))
}

/// `DELETE /api/livestream/{id}/questions/highlight`
pub async fn clear_highlight(state: &AppState, who: Identity, req: Request) -> Reply {
    let stream = rules::clear_highlight(&state.store, &who, &path_param(&req, "id")?).await?;
    let owner = stream.instructor_id == who.user_id;
    ok(&stream.view(owner))
}
