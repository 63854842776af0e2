//! The JSON Schema printed by `gatehouse schema`: the config types' schema
//! with each plugin's `config` schema attached by plugin name, so editors
//! can complete plugin options too.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Map, Value, json};

/// Prints the full schema.
pub fn exec() -> anyhow::Result<ExitCode> {
    let schema = serde_json::to_string_pretty(&full_schema()).context("cannot render schema")?;
    println!("{schema}");
    Ok(ExitCode::SUCCESS)
}

/// The full schema.
pub fn full_schema() -> Value {
    let mut root = gatehouse_config::schema();
    let mut conditions = Vec::new();
    let mut extra_defs = Map::new();
    for factory in gatehouse_plugins::registry().iter() {
        let name = factory.name();
        let schema = embed(
            factory.schema(),
            &format!("plugin-{name}-"),
            &mut extra_defs,
        );
        conditions.push(json!({
            "if": { "properties": { "name": { "const": name } } },
            "then": { "properties": { "config": schema } }
        }));
    }
    // Consumers' credentials: one list per registered credential scheme
    // (the config type holds them as raw values).
    let mut credential_fields = Map::new();
    for scheme in gatehouse_plugins::registry().schemes().iter() {
        let prefix = format!("credential-{}-", scheme.name());
        let schema = embed(scheme.schema(), &prefix, &mut extra_defs);
        credential_fields.insert(
            scheme.field().to_owned(),
            json!({
                "type": "array",
                "items": schema,
                "description": format!("Credentials for the `{}` plugin.", scheme.name()),
            }),
        );
    }
    if let Some(defs) = root.get_mut("$defs").and_then(Value::as_object_mut) {
        defs.extend(extra_defs);
        if let Some(Value::Object(credentials)) = defs.get_mut("Credentials") {
            credentials.remove("additionalProperties");
            credentials.insert("type".into(), json!("object"));
            credentials.insert("properties".into(), Value::Object(credential_fields));
            credentials.insert("additionalProperties".into(), json!(false));
        }
        if let Some(Value::Object(plugin_ref)) = defs.get_mut("PluginRef") {
            plugin_ref.insert("allOf".into(), Value::Array(conditions));
            let names: Vec<Value> = gatehouse_plugins::registry()
                .iter()
                .map(|f| Value::String(f.name().to_string()))
                .collect();
            if let Some(Value::Object(props)) = plugin_ref.get_mut("properties")
                && let Some(Value::Object(name)) = props.get_mut("name")
            {
                name.insert("enum".into(), Value::Array(names));
            }
        }
    }
    root
}

/// A plugin's or credential scheme's own schema made fit to sit inside the
/// config schema: its `$defs` move into `extra_defs` under `prefix` (its
/// `$ref`s follow), and its `$schema` goes.
fn embed(mut schema: Value, prefix: &str, extra_defs: &mut Map<String, Value>) -> Value {
    if let Some(Value::Object(defs)) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
        for (k, mut v) in defs {
            rewrite_refs(&mut v, prefix);
            extra_defs.insert(format!("{prefix}{k}"), v);
        }
    }
    rewrite_refs(&mut schema, prefix);
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
    }
    schema
}

fn rewrite_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "$ref"
                    && let Value::String(s) = child
                    && let Some(rest) = s.strip_prefix("#/$defs/")
                {
                    *s = format!("#/$defs/{prefix}{rest}");
                } else {
                    rewrite_refs(child, prefix);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_refs(c, prefix)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_credentials_list_each_registered_scheme() {
        let schema = full_schema();
        let credentials = &schema["$defs"]["Credentials"];
        assert_eq!(credentials["additionalProperties"], false, "{credentials}");
        let key = &credentials["properties"]["key_auth"]["items"];
        assert_eq!(key["properties"]["key"]["type"], "string", "{key}");
        assert!(key.get("$schema").is_none());
    }
}
