//! ZStack's async APIs: the work is done at once, its result (status and body) is kept
//! by core, and the caller gets `202 {"location": ".../api-jobs/<job>"}` to poll.

use actix_web::{route, web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use std::future::Future;
use twofa_core::Session;

use crate::error::{ApiError, ErrorReply};
use crate::extract::{core, job_location, origin, Action, ActionBody, OAuth};
use crate::wire::AsyncReply;

/// How long a job result can be polled.
const JOB_TTL: i64 = 3600;
/// What the 202 answer announces as `apiTimeout` (ms).
const API_TIMEOUT_MS: i64 = 1_800_000;

/// An async action API: the body's `action` object (else 400) and a live session
/// (else 503 `ID.1001`) are checked at once; what `work` returns, success or API
/// error, becomes the job's result.
pub(crate) async fn async_action<T, F, Fut>(
    req: &HttpRequest,
    auth: OAuth,
    body: ActionBody,
    (action, path): (&str, &str),
    work: F,
) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    F: FnOnce(Action, Session) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let action = body.action(action, path)?;
    let session = auth.session(req).await?;
    let outcome = work(action, session).await.and_then(|result| {
        serde_json::to_value(result)
            .map_err(|e| ApiError::from(twofa_core::CoreError::Internal(e.to_string())))
    });
    accepted(req, outcome).await
}

/// Stores the outcome of an async API and answers 202 with where to poll it.
async fn accepted(
    req: &HttpRequest,
    outcome: Result<Value, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let doc = match outcome {
        Ok(body) => json!({"status": 200, "body": body}),
        Err(e @ ApiError::Api { .. }) => json!({"status": 503, "body": e.body()}),
        // REST-layer problems are answered at once, not through the job.
        Err(e) => return Err(e),
    };
    let job = core(req)?
        .store_job_result(origin(req), doc.to_string(), JOB_TTL)
        .await?;
    Ok(HttpResponse::Accepted().json(AsyncReply {
        location: job_location(req, &job),
        api_timeout: API_TIMEOUT_MS,
    }))
}

/// Poll an async API's result.
///
/// 200 with the API's body when it succeeded, 503 with its error when it failed,
/// 404 plain text when the job is unknown or expired. Jobs complete before the 202 is
/// sent, so 202 `{}` is never returned.
/// Other methods on the path answer 405 plain text; only GET is documented, so the
/// document has one operation per id.
#[utoipa::path(
    get,
    path = "/api-jobs/{uuid}",
    tag = "jobs",
    params(("uuid" = String, Path, description = "Job uuid from `location`")),
    responses(
        (status = 200, description = "The API's result, e.g. `{\"inventory\": {...}}`"),
        (status = 503, description = "The API failed", body = ErrorReply),
        (status = 404, description = "`the job has been expired`", content_type = "text/plain"),
    )
)]
#[route(
    "/api-jobs/{uuid}",
    method = "GET",
    method = "POST",
    method = "PUT",
    method = "DELETE"
)]
pub async fn poll(req: HttpRequest, uuid: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if req.method() != actix_web::http::Method::GET {
        return Err(ApiError::MethodNotAllowed(format!(
            "only GET is allowed on /v1/api-jobs, not {}",
            req.method()
        )));
    }
    let expired = || ApiError::NotFound("the job has been expired".into());
    let doc = core(&req)?
        .job_result(origin(&req), uuid.into_inner())
        .await?
        .ok_or_else(expired)?;
    let doc: Value = serde_json::from_str(&doc).map_err(|_| expired())?;
    let status = if doc["status"] == 200 {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(HttpResponse::build(status)
        .content_type("application/json;charset=UTF-8")
        .body(doc["body"].to_string()))
}
