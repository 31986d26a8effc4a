//! The four two-factor APIs: state, get secret, query secrets, reset secret.

use actix_web::{get, put, web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};
use twofa_core::query::{Condition, Op, QuerySpec, Sort, TotpField};
use twofa_core::{Actor, Password, Session, TotpFactorInfo};

use crate::error::{ApiError, Code, ErrorReply};
use crate::extract::{
    core, first, mandatory, origin, query_pairs, settings, Action, ActionBody, OAuth,
};
use crate::jobs::async_action;
use crate::query::{self, QueryParams, RawCondition};
use crate::wire::{
    AsyncReply, InventoryReply, QueryReply, ResetRequest, SecretInventory, StateReply,
    INVENTORY_CLASS, STATUS_CLASS,
};

pub(crate) const ENABLE_KEY: &str = "twofa.enable";

/// The global switch `twofa.enable`, shared through the database; until an admin sets
/// it, the server's configured default (false unless configured).
pub(crate) async fn twofa_enabled(req: &HttpRequest) -> Result<bool, ApiError> {
    let stored = core(req)?.setting(ENABLE_KEY.into()).await?;
    Ok(match stored {
        Some(value) => value == "true",
        None => settings(req).twofa_enable,
    })
}

/// Checks `type`: `account` is served; `iam2` is a valid value without a backend here.
fn check_type(kind: &str) -> Result<(), ApiError> {
    match kind {
        "account" => Ok(()),
        "iam2" => Err(ApiError::api(Code::Id1000, "two-factor authentication failed")),
        other => Err(ApiError::api(
            Code::Sys1007,
            format!("valid value for field[type] of message[org.zstack.header.message.ApiMessageParamValidator] are [account, iam2], but {other} found"),
        )),
    }
}

/// Whether two-factor authentication is required (no session needed).
#[utoipa::path(
    tag = "twofactorauthentication",
    responses((status = 200, description = "`Enable` or `Disable`", body = StateReply))
)]
#[get("/twofactorauthentication/state")]
pub async fn state(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let enabled = twofa_enabled(&req).await?;
    Ok(HttpResponse::Ok().json(StateReply {
        state: if enabled { "Enable" } else { "Disable" }.into(),
    }))
}

/// The account's TOTP secret, by name and SHA-512 password (no session).
///
/// The first call creates a `NewCreated` secret; later calls return the same one until
/// a login with a code binds it, after which `secret` is `""` and `status` `Logined`.
/// Needs `twofa.enable` on. The secret is the account's one TOTP factor, shared with
/// every dialect.
#[utoipa::path(
    tag = "twofactorauthentication",
    params(
        ("name" = String, Query, description = "Account name"),
        ("password" = String, Query, description = "SHA-512 hex of the password"),
        ("type" = String, Query, description = "`account` (`iam2` is accepted by validation but not served)"),
    ),
    responses(
        (status = 200, description = "The secret", body = InventoryReply<SecretInventory>),
        (status = 503, description = "`SYS.1006` not enabled, `ID.1000` wrong name or password, `SYS.1007` missing or invalid parameter", body = ErrorReply),
    )
)]
#[get("/twofactorauthentication/secret")]
pub async fn get_secret(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(&req)?;
    let name = first(&pairs, "name").ok_or_else(|| mandatory("name"))?;
    let password = first(&pairs, "password").ok_or_else(|| mandatory("password"))?;
    let kind = first(&pairs, "type").ok_or_else(|| mandatory("type"))?;
    if !matches!(kind.as_str(), "account" | "iam2") {
        check_type(&kind)?;
    }
    let core = core(&req)?;
    if !twofa_enabled(&req).await? {
        return Err(ApiError::api(
            Code::Sys1006,
            "two factor authenticator is not enabled",
        ));
    }
    check_type(&kind)?;
    let factor = core
        .pending_totp(origin(&req), name, Password::Sha512Hex(password))
        .await?;
    Ok(HttpResponse::Ok().json(InventoryReply {
        inventory: SecretInventory::from(&factor),
    }))
}

/// Reset an account's secret (admin session): a new `NewCreated` secret replaces the
/// old factor, so the next Get discloses it. Async: 202, then poll `location`.
#[utoipa::path(
    tag = "twofactorauthentication",
    request_body = ResetRequest,
    security(("oauth" = [])),
    responses(
        (status = 202, description = "Poll `location`: 200 `{\"inventory\": {...}}`, or 503 with `ID.1002` (not admin), `ID.1000` (wrong name or password), `SYS.1007`", body = AsyncReply),
        (status = 400, description = "Missing or malformed `Authorization`, or no `resetTwoFactorAuthenticationSecret` in the body", content_type = "text/plain"),
        (status = 503, description = "`ID.1001` invalid session", body = ErrorReply),
    )
)]
#[put("/twofactorauthentication/secrets")]
pub async fn reset(
    req: HttpRequest,
    auth: OAuth,
    body: ActionBody,
) -> Result<HttpResponse, ApiError> {
    let path = "/v1/twofactorauthentication/secrets";
    let req = &req;
    let work = |action: Action, session: Session| async move {
        let name = action.required("name")?;
        let password = action.required("password")?;
        check_type(&action.required("type")?)?;
        let factor = core(req)?
            .reissue_totp(
                origin(req),
                Actor::User(session.user.id),
                name,
                Password::Sha512Hex(password),
            )
            .await?;
        Ok(InventoryReply {
            inventory: SecretInventory::from(&factor),
        })
    };
    async_action(
        req,
        auth,
        body,
        ("resetTwoFactorAuthenticationSecret", path),
        work,
    )
    .await
}

/// Query secrets (session). Admins see every account's, others only their own.
/// Secrets of bound (`Logined`) factors are `""`: they are never disclosed again.
///
/// `q` (repeatable) takes `name<op>value` with the operators, in priority order,
/// `!=, >=, <=, !?=, !~=, ~=, ?=, =, >, <, is null, not null`; `?=`/`!?=` take comma
/// lists and `~=` SQL LIKE patterns. Dates in conditions are unix seconds; `secret`
/// cannot be a condition (it is stored encrypted).
#[utoipa::path(
    tag = "twofactorauthentication",
    security(("oauth" = [])),
    params(
        ("q" = Option<Vec<String>>, Query, description = "Condition, e.g. `status=Logined`"),
        ("limit" = Option<i32>, Query, description = "Default 1000"),
        ("start" = Option<i32>, Query),
        ("count" = Option<bool>, Query, description = "Only `total`"),
        ("replyWithCount" = Option<bool>, Query, description = "Also `total`"),
        ("sort" = Option<String>, Query, description = "`+field`, `-field` or `field`"),
        ("fields" = Option<String>, Query, description = "Comma-separated projection"),
    ),
    responses(
        (status = 200, description = "Inventories", body = QueryReply),
        (status = 400, description = "Bad `Authorization`, bad `q` syntax, non-integer `limit`/`start`", content_type = "text/plain"),
        (status = 503, description = "`ID.1001` invalid session, `SYS.1000` unknown field", body = ErrorReply),
    )
)]
#[get("/twofactorauthentication/secrets")]
pub async fn query_secrets(req: HttpRequest, auth: OAuth) -> Result<HttpResponse, ApiError> {
    let params = query::parse(&query_pairs(&req)?)?;
    run_query(&req, &auth, params).await
}

/// One secret by uuid (session); other parameters are ignored. A missing uuid is an
/// empty list, not 404.
#[utoipa::path(
    tag = "twofactorauthentication",
    security(("oauth" = [])),
    params(("uuid" = String, Path, description = "Secret uuid")),
    responses(
        (status = 200, description = "Inventories", body = QueryReply),
        (status = 400, description = "Bad `Authorization`", content_type = "text/plain"),
        (status = 503, description = "`ID.1001` invalid session", body = ErrorReply),
    )
)]
#[get("/twofactorauthentication/secrets/{uuid}")]
pub async fn get_secret_by_uuid(
    req: HttpRequest,
    auth: OAuth,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams {
        conditions: vec![RawCondition {
            name: "uuid".into(),
            op: Op::Eq,
            values: vec![uuid.into_inner()],
        }],
        limit: query::DEFAULT_LIMIT,
        start: 0,
        count: false,
        reply_with_count: false,
        sort: None,
        fields: None,
    };
    run_query(&req, &auth, params).await
}

/// Wire fields of the inventory, in output order.
const FIELDS: [&str; 7] = [
    "uuid",
    "secret",
    "userUuid",
    "userType",
    "status",
    "createDate",
    "lastOpDate",
];

fn unknown_field(name: &str) -> ApiError {
    ApiError::api(
        Code::Sys1000,
        format!("inventory class[class {INVENTORY_CLASS}] not having field[{name}]"),
    )
}

/// A wire field that maps onto a core column.
fn column(name: &str) -> Option<TotpField> {
    Some(match name {
        "uuid" => TotpField::Id,
        "userUuid" => TotpField::UserId,
        "status" => TotpField::Active,
        "createDate" => TotpField::CreatedAt,
        "lastOpDate" => TotpField::UpdatedAt,
        _ => return None,
    })
}

/// Evaluates a condition on a field that is the same on every row (`userType`):
/// `Some(true)` keeps every row, `Some(false)` none.
fn constant_condition(c: &RawCondition, value: &str) -> Option<bool> {
    let has = c.values.iter().any(|v| v == value);
    Some(match c.op {
        Op::Eq | Op::In => has,
        Op::Ne | Op::NotIn => !has,
        Op::IsNull => false,
        Op::NotNull => true,
        _ => return None,
    })
}

/// Maps parsed wire conditions onto the core's TOTP inventory. `None` when a condition
/// on a constant field can match nothing.
fn totp_spec(p: &QueryParams) -> Result<Option<QuerySpec<TotpField>>, ApiError> {
    let mut conditions = Vec::new();
    for c in &p.conditions {
        match c.name.as_str() {
            "userType" => match constant_condition(c, "AccountVO") {
                Some(true) => continue,
                Some(false) => return Ok(None),
                None => return Err(unknown_operator(c)),
            },
            "secret" => {
                return Err(ApiError::api(
                    Code::Sys1000,
                    "field[secret] cannot be used in a condition: it is stored encrypted",
                ))
            }
            name => {
                let field = column(name).ok_or_else(|| unknown_field(name))?;
                let values = if field == TotpField::Active {
                    c.values
                        .iter()
                        .map(|v| match v.as_str() {
                            "Logined" => Ok("true".to_string()),
                            "NewCreated" => Ok("false".to_string()),
                            other => Err(ApiError::api(
                                Code::Sys1000,
                                format!("No enum constant {STATUS_CLASS}.{other}"),
                            )),
                        })
                        .collect::<Result<_, _>>()?
                } else {
                    c.values.clone()
                };
                conditions.push(Condition {
                    field,
                    op: c.op,
                    values,
                });
            }
        }
    }
    let sort = match &p.sort {
        None => None,
        Some((name, ascending)) => Some(Sort {
            field: column(name).ok_or_else(|| {
                ApiError::api(
                    Code::Sys1000,
                    format!("invalid order by clause, inventory[{INVENTORY_CLASS}] doesn't have field[{name}]"),
                )
            })?,
            ascending: *ascending,
        }),
    };
    Ok(Some(QuerySpec {
        conditions,
        sort,
        limit: p.limit,
        start: p.start,
        rows: !p.count,
        total: p.count || p.reply_with_count,
    }))
}

fn unknown_operator(c: &RawCondition) -> ApiError {
    ApiError::api(
        Code::Sys1000,
        format!("operator {:?} does not apply to field[{}]", c.op, c.name),
    )
}

async fn run_query(
    req: &HttpRequest,
    auth: &OAuth,
    p: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let session = auth.session(req).await?;
    if let Some(fields) = &p.fields {
        if let Some(bad) = fields.iter().find(|f| !FIELDS.contains(&f.as_str())) {
            return Err(ApiError::api(
                Code::Sys1000,
                format!("inventory[${{selfInventoryClass}}] has no field[{bad}]"),
            ));
        }
    }
    let page = match totp_spec(&p)? {
        None => twofa_core::query::Page {
            rows: Vec::new(),
            total: (p.count || p.reply_with_count).then_some(0),
        },
        Some(spec) => {
            core(req)?
                .query_totp_factors(session.user.id.clone(), spec)
                .await?
        }
    };
    Ok(HttpResponse::Ok().json(render(&p, &page.rows, page.total)))
}

fn render(p: &QueryParams, rows: &[TotpFactorInfo], total: Option<i64>) -> QueryReply {
    let mut schema = Map::new();
    if p.count {
        return QueryReply {
            inventories: None,
            total,
            schema,
        };
    }
    let wanted = |f: &str| p.fields.as_ref().is_none_or(|fs| fs.iter().any(|x| x == f));
    let inventories = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let Ok(Value::Object(mut obj)) = serde_json::to_value(SecretInventory::from(row))
            else {
                return Value::Null;
            };
            obj.retain(|k, _| wanted(k));
            // ZStack's schema builder lists the nested enum before its parent.
            if obj.contains_key("status") {
                schema.insert(format!("inventories[{i}].status"), STATUS_CLASS.into());
            }
            schema.insert(format!("inventories[{i}]"), INVENTORY_CLASS.into());
            Value::Object(obj)
        })
        .collect();
    QueryReply {
        inventories: Some(inventories),
        total,
        schema,
    }
}
