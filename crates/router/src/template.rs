//! Rewrite templates: `{name}` placeholders filled from a [`crate::RouteMatch`]'s captures.

use std::sync::Arc;

use crate::path::parse_path;
use crate::spec::RouteSpec;

/// Placeholder names in `template`, in order; `{*rest}` is the same as `{rest}`.
fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("unmatched '}}' in template {template:?}"));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("unclosed '{{' in template {template:?}"));
        };
        let inner = &after[..close];
        let name = inner.strip_prefix('*').unwrap_or(inner);
        if name.is_empty() || name.contains('{') {
            return Err(format!(
                "bad placeholder {{{inner}}} in template {template:?}"
            ));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// Checks that every `{name}` placeholder of a rewrite `template` is captured by
/// **every** path of `spec` (a request can match any one of them), so that
/// [`expand_template`] never meets an unknown name at run time. Call it when
/// compiling config; the error is a message for the config error report.
///
/// # Errors
/// Unbalanced braces, an empty placeholder, or a name some path does not capture
/// (routes without paths capture nothing).
pub fn validate_template(template: &str, spec: &RouteSpec) -> Result<(), String> {
    let names = placeholders(template)?;
    if names.is_empty() {
        return Ok(());
    }
    if spec.paths.is_empty() {
        return Err(format!(
            "template {template:?} uses {{{}}} but the route has no paths to capture it",
            names[0]
        ));
    }
    for raw in &spec.paths {
        let captured = parse_path(raw)?.capture_names();
        if let Some(missing) = names.iter().find(|n| !captured.iter().any(|c| &**c == **n)) {
            return Err(format!(
                "template {template:?} uses {{{missing}}} but path {raw:?} does not capture it"
            ));
        }
    }
    Ok(())
}

/// Replaces each `{name}` (or `{*name}`) in `template` with the capture of that
/// name; captures are inserted raw, as matched, in the path part. In the
/// template's query part (after a literal `?`) a capture is one value:
/// `&`, `=`, `+` and `;` in it are percent-encoded, so a path such as
/// `/search/a&admin=1` cannot add parameters to the upstream query. An
/// unknown name expands to the empty string and an unbalanced brace is
/// copied as is: run [`validate_template`] at build time so neither happens.
pub fn expand_template(template: &str, captures: &[(Arc<str>, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    let mut in_query = false;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        out.push_str(&rest[..open]);
        in_query |= rest[..open].contains('?');
        let inner = &after[..close];
        let name = inner.strip_prefix('*').unwrap_or(inner);
        if let Some((_, v)) = captures.iter().find(|(n, _)| &**n == name) {
            if in_query {
                for c in v.chars() {
                    match c {
                        '&' => out.push_str("%26"),
                        '=' => out.push_str("%3D"),
                        '+' => out.push_str("%2B"),
                        ';' => out.push_str("%3B"),
                        c => out.push(c),
                    }
                }
            } else {
                out.push_str(v);
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pairs: &[(&str, &str)]) -> Vec<(Arc<str>, String)> {
        pairs
            .iter()
            .map(|(k, v)| (Arc::from(*k), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expands_placeholders() {
        let c = caps(&[("id", "7"), ("rest", "a/b%20c")]);
        assert_eq!(expand_template("/u/{id}/f/{rest}", &c), "/u/7/f/a/b%20c");
        assert_eq!(expand_template("/f/{*rest}?x=1", &c), "/f/a/b%20c?x=1");
        assert_eq!(expand_template("/plain", &c), "/plain");
        assert_eq!(expand_template("/{missing}/x", &c), "//x");
        assert_eq!(expand_template("/{id", &c), "/{id");
        assert_eq!(expand_template("{id}{id}", &c), "77");
    }

    #[test]
    fn captures_in_the_query_part_are_one_value() {
        let c = caps(&[("t", "a&admin=1+x;y")]);
        assert_eq!(
            expand_template("/s/{t}?q={t}", &c),
            "/s/a&admin=1+x;y?q=a%26admin%3D1%2Bx%3By"
        );
    }

    #[test]
    fn validates_against_every_path() {
        let spec = RouteSpec {
            paths: vec!["/users/{id}".into(), "~^/u/(?P<id>\\d+)$".into()],
            ..Default::default()
        };
        assert_eq!(validate_template("/v2/users/{id}", &spec), Ok(()));
        assert_eq!(validate_template("/static", &spec), Ok(()));
        let err = validate_template("/x/{post}", &spec).unwrap_err();
        assert!(err.contains("{post}"), "{err}");

        let mixed = RouteSpec {
            paths: vec!["/a/{id}".into(), "/b/*".into()],
            ..Default::default()
        };
        let err = validate_template("/{id}", &mixed).unwrap_err();
        assert!(err.contains("\"/b/*\""), "{err}");

        let none = RouteSpec::default();
        assert!(validate_template("/{id}", &none).is_err());
        assert_eq!(validate_template("/x", &none), Ok(()));

        let catch = RouteSpec {
            paths: vec!["/f/{*rest}".into()],
            ..Default::default()
        };
        assert_eq!(validate_template("/g/{*rest}", &catch), Ok(()));
        assert_eq!(validate_template("/g/{rest}", &catch), Ok(()));
    }

    #[test]
    fn rejects_bad_template_syntax() {
        let spec = RouteSpec {
            paths: vec!["/users/{id}".into()],
            ..Default::default()
        };
        assert!(validate_template("/{id", &spec).is_err());
        assert!(validate_template("/id}", &spec).is_err());
        assert!(validate_template("/{}", &spec).is_err());
        assert!(validate_template("/{*}", &spec).is_err());
    }
}
