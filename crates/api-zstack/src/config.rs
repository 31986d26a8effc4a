//! The global config `twofa.enable` (admin only), stored by core so every instance
//! agrees.

use actix_web::{put, HttpRequest, HttpResponse};
use twofa_core::{Actor, Session};

use crate::error::{ApiError, Code, ErrorReply};
use crate::extract::{core, origin, Action, ActionBody, OAuth};
use crate::jobs::async_action;
use crate::twofa::ENABLE_KEY;
use crate::wire::{AsyncReply, GlobalConfigInventory, InventoryReply, UpdateGlobalConfigRequest};

/// Turn two-factor authentication on or off for every ZStack login (admin session).
/// Async: 202, then poll `location`. Unlike ZStack, switching does not delete secrets:
/// they are the accounts' factors on every dialect.
#[utoipa::path(
    tag = "global-configurations",
    request_body = UpdateGlobalConfigRequest,
    security(("oauth" = [])),
    responses(
        (status = 202, description = "Poll `location`: 200 `{\"inventory\": {...}}`, or 503 with `ID.1002` (not admin) or `SYS.1007` (not a boolean)", body = AsyncReply),
        (status = 400, description = "Bad `Authorization` or no `updateGlobalConfig` in the body", content_type = "text/plain"),
        (status = 503, description = "`ID.1001` invalid session", body = ErrorReply),
    )
)]
#[put("/global-configurations/twofa/twofa.enable/actions")]
pub async fn update_twofa_enable(
    req: HttpRequest,
    auth: OAuth,
    body: ActionBody,
) -> Result<HttpResponse, ApiError> {
    let path = "/v1/global-configurations/twofa/twofa.enable/actions";
    let req = &req;
    let work = |action: Action, session: Session| async move {
        update_enable(req, session, action.string("value")?).await
    };
    async_action(req, auth, body, ("updateGlobalConfig", path), work).await
}

/// Sets `twofa.enable` by an admin `session` (REST and message API).
pub(crate) async fn update_enable(
    req: &HttpRequest,
    session: Session,
    value: Option<String>,
) -> Result<InventoryReply<GlobalConfigInventory>, ApiError> {
    let value = value.unwrap_or_default().to_lowercase();
    if value != "true" && value != "false" {
        return Err(ApiError::api(
            Code::Sys1007,
            format!("[{value}] is not a boolean value of global config[twofa.enable]"),
        ));
    }
    core(req)?
        .set_setting(
            origin(req),
            Actor::User(session.user.id),
            ENABLE_KEY.into(),
            value.clone(),
        )
        .await?;
    Ok(InventoryReply {
        inventory: GlobalConfigInventory {
            category: "twofa".into(),
            name: ENABLE_KEY.into(),
            value,
            default_value: "false".into(),
            description: "whether every ZStack login needs a two-factor authentication code".into(),
        },
    })
}
