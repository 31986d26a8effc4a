//! Inventory queries: conditions, sorting and paging turned into SQL through diesel
//! with bound parameters (never string-built SQL). Dialects parse their own query
//! syntax and map their field names onto an inventory's field enum; this module owns
//! the operators and paging, and each inventory supplies one function that turns a
//! condition on one of its fields into a boxed filter.

use diesel::dsl::case_when;
use diesel::expression::BoxableExpression;
use diesel::helper_types::InnerJoinQuerySource;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::db::schema::{totp_factors, users};
use crate::db::DbConnection;
use crate::factors::totp::{FactorRow, TotpFactorInfo};
use crate::users::find_by_id;
use crate::{Core, CoreError, CoreResult};

type Db = <DbConnection as Connection>::Backend;

/// Comparison operators, as in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Like,
    NotLike,
    IsNull,
    NotNull,
}

/// `field op values`: one value for comparisons, a list for `In`/`NotIn`, none for the
/// null tests. Values are text and are parsed by the field's type.
#[derive(Debug, Clone)]
pub struct Condition<F> {
    pub field: F,
    pub op: Op,
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Sort<F> {
    pub field: F,
    pub ascending: bool,
}

/// A query: conditions ANDed, an optional order, a page, and what to return.
#[derive(Debug, Clone)]
pub struct QuerySpec<F> {
    pub conditions: Vec<Condition<F>>,
    pub sort: Option<Sort<F>>,
    pub limit: i64,
    pub start: i64,
    /// Load the rows (false: only count them).
    pub rows: bool,
    /// Count all matching rows, ignoring the page.
    pub total: bool,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub total: Option<i64>,
}

diesel::define_sql_function! {
    /// SQL `lower()`: LIKE compares case-insensitively on both backends (as on
    /// SQLite and ZStack's MySQL), not only on SQLite.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

type Filter<QS> = Box<dyn BoxableExpression<QS, Db, SqlType = Bool>>;

fn invalid(what: String) -> CoreError {
    CoreError::InvalidQuery(what)
}

fn one<T: Clone>(values: &[T]) -> CoreResult<T> {
    match values {
        [v] => Ok(v.clone()),
        _ => Err(invalid("exactly one value expected".into())),
    }
}

fn parse_all<T>(values: &[String], parse: impl Fn(&str) -> Option<T>) -> CoreResult<Vec<T>> {
    values
        .iter()
        .map(|v| parse(v).ok_or_else(|| invalid(format!("invalid value [{v}]"))))
        .collect()
}

/// A filter comparing `$col` with `$vals` (already typed) under `$op`. The `text` form
/// adds the LIKE operators, which only apply to text.
macro_rules! compare {
    (text $col:expr, $op:expr, $vals:expr) => {{
        let vals: Vec<String> = $vals;
        match $op {
            Op::Like => Box::new(lower($col).like(lower(one(&vals)?))) as Filter<_>,
            Op::NotLike => Box::new(lower($col).not_like(lower(one(&vals)?))),
            op => compare!($col, op, vals),
        }
    }};
    ($col:expr, $op:expr, $vals:expr) => {{
        let vals = $vals;
        match $op {
            Op::Eq => Box::new($col.eq(one(&vals)?)) as Filter<_>,
            Op::Ne => Box::new($col.ne(one(&vals)?)),
            Op::Gt => Box::new($col.gt(one(&vals)?)),
            Op::Ge => Box::new($col.ge(one(&vals)?)),
            Op::Lt => Box::new($col.lt(one(&vals)?)),
            Op::Le => Box::new($col.le(one(&vals)?)),
            Op::In => Box::new($col.eq_any(vals)),
            Op::NotIn => Box::new($col.ne_all(vals)),
            Op::IsNull => Box::new($col.is_null()),
            Op::NotNull => Box::new($col.is_not_null()),
            op @ (Op::Like | Op::NotLike) => {
                return Err(invalid(format!("operator {op:?} applies only to text")))
            }
        }
    }};
}

/// Fields of the TOTP factor inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpField {
    /// Text.
    Id,
    /// Text.
    UserId,
    /// Text.
    Username,
    /// `true`/`false`.
    Active,
    /// Unix seconds.
    CreatedAt,
    /// Unix seconds: activation, else creation.
    UpdatedAt,
}

type TotpSource = InnerJoinQuerySource<totp_factors::table, users::table>;

fn parse_bool(v: &str) -> Option<bool> {
    v.parse().ok()
}

fn parse_i64(v: &str) -> Option<i64> {
    v.trim().parse().ok()
}

/// The last change of a factor: activation, else creation.
macro_rules! updated_at {
    () => {
        case_when(
            totp_factors::activated_at.is_not_null(),
            totp_factors::activated_at.assume_not_null(),
        )
        .otherwise(totp_factors::created_at)
    };
}

fn totp_filter(c: &Condition<TotpField>) -> CoreResult<Filter<TotpSource>> {
    let v = &c.values;
    Ok(match c.field {
        TotpField::Id => compare!(text totp_factors::id, c.op, v.clone()),
        TotpField::UserId => compare!(text totp_factors::user_id, c.op, v.clone()),
        TotpField::Username => compare!(text users::username, c.op, v.clone()),
        TotpField::Active => compare!(totp_factors::active, c.op, parse_all(v, parse_bool)?),
        TotpField::CreatedAt => {
            compare!(totp_factors::created_at, c.op, parse_all(v, parse_i64)?)
        }
        TotpField::UpdatedAt => compare!(updated_at!(), c.op, parse_all(v, parse_i64)?),
    })
}

type TotpQuery =
    diesel::dsl::IntoBoxed<'static, diesel::dsl::InnerJoin<totp_factors::table, users::table>, Db>;

/// The query in `sort`'s order (creation by default).
fn ordered(q: TotpQuery, sort: Option<&Sort<TotpField>>) -> TotpQuery {
    let Some(s) = sort else {
        return q.order(totp_factors::created_at.asc());
    };
    macro_rules! by {
        ($e:expr) => {
            if s.ascending {
                q.order($e.asc())
            } else {
                q.order($e.desc())
            }
        };
    }
    match s.field {
        TotpField::Id => by!(totp_factors::id),
        TotpField::UserId => by!(totp_factors::user_id),
        TotpField::Username => by!(users::username),
        TotpField::Active => by!(totp_factors::active),
        TotpField::CreatedAt => by!(totp_factors::created_at),
        TotpField::UpdatedAt => by!(updated_at!()),
    }
}

impl Core {
    /// TOTP factors matching `spec`. Admins see every user's; anyone else only their
    /// own. Secrets of active factors are never returned, pending ones only to their
    /// owner.
    pub async fn query_totp_factors(
        &self,
        caller_id: String,
        spec: QuerySpec<TotpField>,
    ) -> CoreResult<Page<TotpFactorInfo>> {
        self.run(move |inner, conn| {
            let caller = find_by_id(conn, &caller_id)?.ok_or(CoreError::InvalidToken)?;
            let own_only = !caller.is_admin;
            let filtered = || -> CoreResult<_> {
                let mut q = totp_factors::table.inner_join(users::table).into_boxed();
                if own_only {
                    q = q.filter(totp_factors::user_id.eq(caller_id.clone()));
                }
                for c in &spec.conditions {
                    q = q.filter(totp_filter(c)?);
                }
                Ok(q)
            };
            let total = if spec.total {
                Some(filtered()?.count().get_result::<i64>(conn)?)
            } else {
                None
            };
            let mut rows = Vec::new();
            if spec.rows {
                let q = ordered(filtered()?, spec.sort.as_ref());
                let found: Vec<FactorRow> = q
                    .then_order_by(totp_factors::id.asc())
                    .limit(spec.limit.max(0))
                    .offset(spec.start.max(0))
                    .select(FactorRow::as_select())
                    .load(conn)?;
                rows = found
                    .into_iter()
                    .map(|r| r.info_seen_by(inner, &caller_id))
                    .collect::<CoreResult<_>>()?;
            }
            Ok(Page { rows, total })
        })
        .await
    }
}
