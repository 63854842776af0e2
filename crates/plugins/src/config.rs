//! Shared helpers to parse plugin configs and report faults with the path
//! of the field at fault.

use http::{HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use gatehouse_core::{Ctx, Flow, PluginError, Problem};

/// Deserializes a plugin `config`. `null` (no config) is read as `{}`, so
/// every field takes its default and required fields are reported missing.
/// Type errors carry the path of the faulty field (`allow[1]`).
pub(crate) fn parse<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, PluginError> {
    let empty = serde_json::Value::Object(serde_json::Map::new());
    let value = match value {
        serde_json::Value::Null => &empty,
        serde_json::Value::Object(_) => value,
        other => {
            return Err(PluginError::at(
                "",
                format!(
                    "invalid type: {}, expected an object of plugin options",
                    kind(other)
                ),
            ));
        }
    };
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        PluginError::at(path, err.into_inner().to_string())
    })
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// `prefix.key` for a map entry, `key` at the top level.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Parses a header name (case-insensitive, stored lowercase).
pub(crate) fn header_name(path: &str, name: &str) -> Result<HeaderName, PluginError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        PluginError::at(
            path,
            format!("invalid header name {name:?}: expected an HTTP token such as \"x-api-key\""),
        )
    })
}

/// Parses a header value (visible ASCII, spaces and tabs; no CR/LF).
pub(crate) fn header_value(path: &str, value: &str) -> Result<HeaderValue, PluginError> {
    HeaderValue::from_str(value).map_err(|_| {
        PluginError::at(
            path,
            format!(
                "invalid header value {value:?}: expected visible ASCII without control characters"
            ),
        )
    })
}

/// Checks that `code` is a status in `range` (for example 400..=599 for a
/// rejection).
pub(crate) fn status(
    path: &str,
    code: u16,
    range: std::ops::RangeInclusive<u16>,
) -> Result<StatusCode, PluginError> {
    match StatusCode::from_u16(code) {
        Ok(status) if range.contains(&code) => Ok(status),
        _ => Err(PluginError::at(
            path,
            format!(
                "invalid status {code}: expected an HTTP status between {} and {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// Answers the request with `problem`, with the request id in the
/// document (the proxy adds the `x-request-id` header).
pub(crate) fn reject(ctx: &Ctx, problem: Problem) -> Flow {
    Flow::Respond(problem.into_response(Some(&ctx.request_id)))
}

/// JSON Schema of `T` as a JSON value.
pub(crate) fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Demo {
        list: Vec<u16>,
        inner: Inner,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        flag: bool,
    }

    #[test]
    fn null_means_defaults() {
        let demo: Demo = parse(&serde_json::Value::Null).unwrap();
        assert!(demo.list.is_empty());
    }

    #[test]
    fn errors_carry_the_field_path() {
        let err = parse::<Demo>(&json!({"list": [1, "x"]})).unwrap_err();
        assert_eq!(err.path, "list[1]");
        assert!(err.message.contains("expected u16"), "{}", err.message);

        let err = parse::<Demo>(&json!({"inner": {"flag": 3}})).unwrap_err();
        assert_eq!(err.path, "inner.flag");

        let err = parse::<Demo>(&json!({"nope": 1})).unwrap_err();
        assert_eq!(err.path, "nope");
        assert!(err.message.contains("unknown field"), "{}", err.message);

        let err = parse::<Demo>(&json!([1])).unwrap_err();
        assert_eq!(err.path, "");
        assert_eq!(
            err.message,
            "invalid type: array, expected an object of plugin options"
        );
    }

    #[test]
    fn status_range_is_enforced() {
        assert!(status("s", 403, 400..=599).is_ok());
        assert_eq!(status("s", 200, 400..=599).unwrap_err().path, "s");
        assert!(status("s", 1000, 100..=999).is_err());
    }
}
