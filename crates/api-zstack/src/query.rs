//! ZStack's query-string syntax for every `Query*` API: repeated `q` conditions with
//! the operator found by a fixed priority list, `limit`/`start`/`count`/
//! `replyWithCount`/`sort`/`fields`. Only the syntax lives here (400 plain text on bad
//! syntax); an inventory maps field names onto core fields, and core builds the SQL.

use twofa_core::query::Op;

use crate::error::ApiError;
use crate::extract::first;

/// Operators in ZStack's priority order: the first one the condition contains wins,
/// and the condition is split at its first occurrence.
const OPS: [(&str, Op); 12] = [
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("!?=", Op::NotIn),
    ("!~=", Op::NotLike),
    ("~=", Op::Like),
    ("?=", Op::In),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("is null", Op::IsNull),
    ("not null", Op::NotNull),
];

pub const DEFAULT_LIMIT: i64 = 1000;

/// One `q` condition by wire field name. `values` has one entry, a comma-split list
/// for `?=`/`!?=`, and none for the null tests.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCondition {
    pub name: String,
    pub op: Op,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryParams {
    pub conditions: Vec<RawCondition>,
    pub limit: i64,
    pub start: i64,
    pub count: bool,
    pub reply_with_count: bool,
    /// Field name and ascending.
    pub sort: Option<(String, bool)>,
    pub fields: Option<Vec<String>>,
}

fn parse_condition(cond: &str) -> Result<RawCondition, ApiError> {
    let Some(&(token, op)) = OPS.iter().find(|(token, _)| cond.contains(token)) else {
        return Err(ApiError::bad_request(format!(
            "Invalid query parameter. The '{cond}' in the parameter[q] doesn't contain any query operator. Valid query operators are [[{}]]",
            OPS.map(|(t, _)| t).join(", ")
        )));
    };
    let (name, value) = cond.split_once(token).expect("the condition contains it");
    let name = name.trim().to_string();
    let values = match op {
        Op::IsNull | Op::NotNull => Vec::new(),
        // Like Commons' splitByWholeSeparator: an empty side means no pair.
        _ if name.is_empty() || value.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "Invalid query parameter. The '{cond}' in the parameter[q] is not a key-value pair split by {token}"
            )))
        }
        Op::In | Op::NotIn => value.split(',').map(str::to_string).collect(),
        _ => vec![value.to_string()],
    };
    Ok(RawCondition { name, op, values })
}

fn integer(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, ApiError> {
    first(pairs, name)
        .map(|v| {
            v.parse::<i32>().map(i64::from).map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid query parameter. '{name}' must be an integer"
                ))
            })
        })
        .transpose()
}

fn flag(pairs: &[(String, String)], name: &str) -> bool {
    first(pairs, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Parses the query string of a query API. Unknown parameters are ignored.
pub fn parse(pairs: &[(String, String)]) -> Result<QueryParams, ApiError> {
    let conditions = pairs
        .iter()
        // ZStack tests `"q".startsWith(name)`, so an empty name counts too.
        .filter(|(k, _)| "q".starts_with(k.as_str()))
        .map(|(_, v)| parse_condition(v))
        .collect::<Result<_, _>>()?;
    let sort = first(pairs, "sort")
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('-') {
            Some(field) => (field.trim().to_string(), false),
            None => (s.trim_start_matches('+').trim().to_string(), true),
        });
    let fields =
        first(pairs, "fields").map(|f| f.split(',').map(|x| x.trim().to_string()).collect());
    Ok(QueryParams {
        conditions,
        limit: integer(pairs, "limit")?.unwrap_or(DEFAULT_LIMIT),
        start: integer(pairs, "start")?.unwrap_or(0),
        count: flag(pairs, "count"),
        reply_with_count: flag(pairs, "replyWithCount"),
        sort,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> RawCondition {
        parse_condition(s).unwrap()
    }

    #[test]
    fn operators_in_priority_order() {
        assert_eq!(c("name=a!=b").name, "name=a");
        assert_eq!(c("name=a!=b").op, Op::Ne);
        assert_eq!(c("uuid?=a,b").values, vec!["a", "b"]);
        assert_eq!(c("uuid!?=a,b").op, Op::NotIn);
        assert_eq!(c("uuid!~=%a").op, Op::NotLike);
        assert_eq!(c(" uuid ~=%a ").values, vec!["%a "]);
        assert_eq!(c("createDate>=5").op, Op::Ge);
        assert_eq!(c("createDate<5").op, Op::Lt);
        assert_eq!(c("x is null").op, Op::IsNull);
        assert_eq!(c("x not null").name, "x");
        assert!(parse_condition("uuid").is_err());
        assert!(parse_condition("uuid=").is_err());
    }
}
