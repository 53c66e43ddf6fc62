//! The attendance report: JSON, or CSV for `Accept: text/csv`.

use lambda_http::Request;
use livestream::auth::Identity;
use livestream::http::{Reply, accepts, ok, path_param, text};
use livestream::service::attendance as rules;
use livestream::{ApiError, AppState};

/// `GET /api/livestream/{id}/attendance`
pub async fn report(state: &AppState, who: Identity, req: Request) -> Reply {
    let report = rules::report(&state.store, &who, &path_param(&req, "id")?).await?;
    if !accepts(&req, "text/csv") {
        return ok(&report);
    }
    let mut response = text("text/csv; charset=utf-8", rules::to_csv(&report)?)?;
    let disposition = format!("attachment; filename=\"{}\"", rules::csv_file_name(&report));
    response.headers_mut().insert(
        http::header::CONTENT_DISPOSITION,
        http::HeaderValue::from_str(&disposition)
            .map_err(|e| ApiError::Internal(format!("the CSV's file name: {e}")))?,
    );
    Ok(response)
}
