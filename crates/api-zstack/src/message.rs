//! ZStack's message API, which its Python tooling uses instead of the REST paths
//! (zstack-utility `apibinding/api.py`, zstack-cli): `POST /zstack/api` with
//! `{"<message class>": {...fields, "session": {"uuid"}, "systemTags": [...]}}`,
//! answered `{"uuid","state":"Done","result":"<JSON string>"}` where the result is
//! `{"<reply class>": {"success": true, ...}}` or `{"<reply class>": {"success":
//! false, "error": {code, description, details}}}`. Every message runs to completion
//! before the answer, so `state` is always `Done`; the result can also be fetched
//! again at `GET /zstack/api/result/<uuid>`. Each message calls the same function
//! as its REST handler.

use actix_web::{get, route, web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Map, Value};
use twofa_core::query::Op;

use crate::error::{ApiError, Code};
use crate::extract::{core, origin, Action, ActionBody, OAuth};
use crate::query::{QueryParams, RawCondition, DEFAULT_LIMIT};
use crate::twofa::ENABLE_KEY;
use crate::{config, sessions, twofa};

/// How long a message result can be fetched again.
const RESULT_TTL: i64 = 3600;

const IDENTITY: &str = "org.zstack.header.identity";
const TWOFA: &str = "org.zstack.twoFactorAuthentication";

/// The messages served, with the class of their reply or event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    LogInByAccount,
    LogOut,
    GetLoginProcedures,
    GetState,
    GetSecret,
    Query,
    ResetSecret,
    UpdateGlobalConfig,
}

impl Message {
    fn find(class: &str) -> Option<Message> {
        Some(match class {
            "org.zstack.header.identity.APILogInByAccountMsg" => Message::LogInByAccount,
            "org.zstack.header.identity.APILogOutMsg" => Message::LogOut,
            "org.zstack.header.identity.login.APIGetLoginProceduresMsg" => {
                Message::GetLoginProcedures
            }
            "org.zstack.twoFactorAuthentication.APIGetTwoFactorAuthenticationStateMsg" => {
                Message::GetState
            }
            "org.zstack.twoFactorAuthentication.APIGetTwoFactorAuthenticationSecretMsg" => {
                Message::GetSecret
            }
            "org.zstack.twoFactorAuthentication.APIQueryTwoFactorAuthenticationMsg" => {
                Message::Query
            }
            "org.zstack.twoFactorAuthentication.APIResetTwoFactorAuthenticationSecretMsg" => {
                Message::ResetSecret
            }
            "org.zstack.core.config.APIUpdateGlobalConfigMsg" => Message::UpdateGlobalConfig,
            _ => return None,
        })
    }

    fn reply_class(self) -> String {
        match self {
            Message::LogInByAccount => format!("{IDENTITY}.APILogInReply"),
            Message::LogOut => format!("{IDENTITY}.APILogOutReply"),
            Message::GetLoginProcedures => format!("{IDENTITY}.login.APIGetLoginProceduresReply"),
            Message::GetState => format!("{TWOFA}.APIGetTwoFactorAuthenticationStateReply"),
            Message::GetSecret => format!("{TWOFA}.APIGetTwoFactorAuthenticationSecretReply"),
            Message::Query => format!("{TWOFA}.APIQueryTwoFactorAuthenticationReply"),
            Message::ResetSecret => format!("{TWOFA}.APIResetTwoFactorAuthenticationSecretEvent"),
            Message::UpdateGlobalConfig => {
                "org.zstack.core.config.APIUpdateGlobalConfigEvent".into()
            }
        }
    }
}

fn object(reply: impl Serialize) -> Result<Map<String, Value>, ApiError> {
    match serde_json::to_value(reply) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Ok(Map::new()),
        Err(e) => Err(twofa_core::CoreError::Internal(e.to_string()).into()),
    }
}

/// The `session.uuid` of a message, else `ID.1001` (as for a missing `OAuth` header's
/// session in the API).
fn session_uuid(action: &Action) -> Result<OAuth, ApiError> {
    action
        .object("session")
        .and_then(|s| s.get("uuid")?.as_str().map(str::to_string))
        .map(OAuth)
        .ok_or_else(|| ApiError::api(Code::Id1001, "Session expired"))
}

/// A query message's operator (`QueryOp`).
fn query_op(op: &str) -> Result<Op, ApiError> {
    Ok(match op.trim().to_ascii_lowercase().as_str() {
        "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        "<" => Op::Lt,
        ">=" => Op::Ge,
        "<=" => Op::Le,
        "in" => Op::In,
        "not in" => Op::NotIn,
        "is null" => Op::IsNull,
        "is not null" | "not null" => Op::NotNull,
        "like" => Op::Like,
        "not like" => Op::NotLike,
        other => {
            return Err(ApiError::api(
                Code::Sys1007,
                format!("invalid query operator[{other}]"),
            ))
        }
    })
}

/// `APIQueryMessage`'s fields: `conditions` (`{name, op, value}`), `limit`, `start`,
/// `count`, `replyWithCount`, `sortBy`/`sortDirection`, `fields`.
fn query_params(action: &Action) -> Result<QueryParams, ApiError> {
    let invalid = |what: &str| ApiError::api(Code::Sys1007, format!("invalid field[{what}]"));
    let mut conditions = Vec::new();
    for c in action
        .list("conditions")
        .map_err(|_| invalid("conditions"))?
    {
        let c = c.as_object().ok_or_else(|| invalid("conditions"))?;
        let text = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
        let name = text("name").ok_or_else(|| invalid("conditions.name"))?;
        let op = query_op(&text("op").ok_or_else(|| invalid("conditions.op"))?)?;
        let values = match (op, text("value")) {
            (Op::IsNull | Op::NotNull, _) => Vec::new(),
            (Op::In | Op::NotIn, Some(v)) => v.split(',').map(str::to_string).collect(),
            (_, Some(v)) => vec![v],
            (_, None) => return Err(invalid("conditions.value")),
        };
        conditions.push(RawCondition { name, op, values });
    }
    let integer = |k: &str| -> Result<Option<i64>, ApiError> {
        match action.object_value(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| invalid(k)),
        }
    };
    let flag = |k: &str| action.object_value(k).and_then(Value::as_bool) == Some(true);
    let sort = match action.string("sortBy")? {
        None => None,
        Some(field) => {
            let direction = action.string("sortDirection")?.unwrap_or_default();
            Some((field, !direction.eq_ignore_ascii_case("desc")))
        }
    };
    let fields = match action.object_value("fields") {
        None | Some(Value::Null) => None,
        Some(_) => Some(
            action
                .list("fields")
                .map_err(|_| invalid("fields"))?
                .iter()
                .map(|f| {
                    f.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid("fields"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(QueryParams {
        conditions,
        limit: integer("limit")?.unwrap_or(DEFAULT_LIMIT),
        start: integer("start")?.unwrap_or(0),
        count: flag("count"),
        reply_with_count: flag("replyWithCount"),
        sort,
        fields,
    })
}

/// Runs one message over the REST handlers' functions.
async fn run(
    req: &HttpRequest,
    message: Message,
    action: &Action,
) -> Result<Map<String, Value>, ApiError> {
    match message {
        Message::LogInByAccount => object(sessions::log_in(req, action).await?),
        Message::LogOut => {
            let uuid = action.required("sessionUuid")?;
            sessions::log_out(req, uuid).await?;
            Ok(Map::new())
        }
        Message::GetLoginProcedures => object(sessions::login_procedures(req).await?),
        Message::GetState => object(twofa::twofa_state(req).await?),
        Message::GetSecret => {
            let reply = twofa::secret(
                req,
                action.string("name")?,
                action.string("password")?,
                action.string("type")?,
            )
            .await?;
            object(reply)
        }
        Message::Query => {
            let params = query_params(action)?;
            let session = session_uuid(action)?.session(req).await?;
            let mut reply = object(twofa::run_query(req, &session, params).await?)?;
            // The schema is for the REST Java SDK; message replies carry none.
            reply.remove("schema");
            Ok(reply)
        }
        Message::ResetSecret => {
            let session = session_uuid(action)?.session(req).await?;
            object(twofa::reset_secret(req, session, action).await?)
        }
        Message::UpdateGlobalConfig => {
            let category = action.required("category")?;
            let name = action.required("name")?;
            if category != "twofa" || name != ENABLE_KEY {
                return Err(ApiError::api(
                    Code::Sys1007,
                    format!("unable to find GlobalConfig[category: {category}, name: {name}]"),
                ));
            }
            let session = session_uuid(action)?.session(req).await?;
            object(config::update_enable(req, session, action.string("value")?).await?)
        }
    }
}

/// The reply object: the message's answer with `success`, or its error.
fn reply_body(outcome: Result<Map<String, Value>, ApiError>) -> Value {
    match outcome {
        Ok(mut reply) => {
            reply.insert("success".into(), Value::Bool(true));
            Value::Object(reply)
        }
        Err(e) => {
            // A field of the wrong type is a REST-layer 400 on the REST paths; in a
            // message it is the API's argument error.
            let e = match e {
                ApiError::Api { .. } => e,
                other => ApiError::api(Code::Sys1007, other.to_string()),
            };
            let mut reply = match e.body() {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            reply.insert("success".into(), Value::Bool(false));
            Value::Object(reply)
        }
    }
}

fn done(uuid: &str, result: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json;charset=UTF-8")
        .body(json!({"uuid": uuid, "state": "Done", "result": result}).to_string())
}

/// Send an API message (ZStack's `RESTApiController`): the body is
/// `{"<message class>": {...}}`. The answer is always `state` `Done` with the reply
/// as a JSON string in `result`. A body that is not JSON, or names no served message,
/// is 400 plain text.
#[utoipa::path(
    post,
    path = "/zstack/api",
    tag = "message-api",
    request_body(content = Object, description = "`{\"org.zstack.header.identity.APILogInByAccountMsg\": {\"accountName\": \"admin\", \"password\": \"<sha512 hex>\", \"systemTags\": [\"twofatoken::123456\"]}}`"),
    responses(
        (status = 200, description = "`{\"uuid\", \"state\": \"Done\", \"result\": \"{\\\"<reply class>\\\": {\\\"success\\\": true, ...}}\"}`"),
        (status = 400, description = "Not JSON, or no served message class", content_type = "text/plain"),
    )
)]
#[route("", method = "POST", method = "PUT")]
pub async fn api(req: HttpRequest, body: ActionBody) -> Result<HttpResponse, ApiError> {
    let Some(class) = body.0.keys().find(|k| k.as_str() != "systemTags").cloned() else {
        return Err(ApiError::bad_request("the body contains no API message"));
    };
    let message = Message::find(&class).ok_or_else(|| {
        ApiError::bad_request(format!("unable to find API message class[{class}]"))
    })?;
    let outcome = match body.action(&class, "/zstack/api") {
        Ok(action) => run(&req, message, &action).await,
        Err(e) => Err(e),
    };
    let result = json!({ message.reply_class(): reply_body(outcome) }).to_string();
    let doc = json!({ "message": result.clone() }).to_string();
    let uuid = core(&req)?
        .store_job_result(origin(&req), doc, RESULT_TTL)
        .await?;
    Ok(done(&uuid, &result))
}

/// The result of a message sent earlier, as it was first answered; 404 plain text
/// when unknown or expired.
#[utoipa::path(
    get,
    path = "/zstack/api/result/{uuid}",
    tag = "message-api",
    params(("uuid" = String, Path, description = "The `uuid` of the message's answer")),
    responses(
        (status = 200, description = "`{\"uuid\", \"state\": \"Done\", \"result\"}`"),
        (status = 404, description = "Unknown or expired", content_type = "text/plain"),
    )
)]
#[get("/result/{uuid}")]
pub async fn api_result(
    req: HttpRequest,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let uuid = uuid.into_inner();
    let missing = || ApiError::NotFound(format!("no API result[uuid:{uuid}]"));
    let doc = core(&req)?
        .job_result(origin(&req), uuid.clone())
        .await?
        .ok_or_else(missing)?;
    let doc: Value = serde_json::from_str(&doc).map_err(|_| missing())?;
    let result = doc["message"].as_str().ok_or_else(missing)?;
    Ok(done(&uuid, result))
}
