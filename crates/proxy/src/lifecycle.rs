//! API lifecycle and subscriptions on the request path: what a route's API
//! version adds to its responses (Deprecation, Sunset, Link), the 410 of a
//! retired version, and the subscription check after the access phase.
//! Everything is computed when a snapshot is compiled; per request it is
//! one state check, a header copy for deprecated APIs and, for APIs that
//! require a subscription, one `HashMap` lookup by app name.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_config::{Api, ApiState, Config, SubscriptionStatus};
use gatehouse_core::{Ctx, Problem, ProblemType};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// One API version, compiled.
#[derive(Debug)]
pub struct ApiRt {
    /// The API's name.
    pub name: Arc<str>,
    /// Its version.
    pub version: Arc<str>,
    /// Lifecycle state (draft routes never reach the route table).
    pub state: ApiState,
    /// Deprecation / Sunset / Link headers added to every response of a
    /// deprecated or retired API (empty otherwise).
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Successor URI, for the detail of the retired problem.
    successor: Option<String>,
    /// Whether callers need an approved subscription.
    pub require_subscription: bool,
    /// Subscription status and plan by app name: a subscription to this
    /// version wins over one to every version of the API.
    subscribers: HashMap<Arc<str>, (SubscriptionStatus, Arc<str>)>,
}

impl ApiRt {
    /// Compiles `apis[index]` of `config`. Fields were validated already;
    /// header values that still do not render are reported as
    /// `(field, message)`.
    pub fn compile(config: &Config, index: usize) -> Result<Self, (String, String)> {
        let api: &Api = &config.apis[index];
        let mut headers = Vec::new();
        if matches!(api.state, ApiState::Deprecated | ApiState::Retired) {
            if let Some(at) = api.deprecated_at {
                // RFC 9745: an RFC 9651 Date, `@` and Unix seconds.
                let v = HeaderValue::try_from(format!("@{}", at.unix_seconds()))
                    .map_err(|e| (format!("apis[{index}].deprecated_at"), e.to_string()))?;
                headers.push((HeaderName::from_static("deprecation"), v));
            }
            if let Some(sunset) = api.sunset {
                // RFC 8594: an HTTP-date (IMF-fixdate).
                let v = HeaderValue::try_from(httpdate::fmt_http_date(sunset.0))
                    .map_err(|e| (format!("apis[{index}].sunset"), e.to_string()))?;
                headers.push((HeaderName::from_static("sunset"), v));
            }
            if let Some(s) = &api.successor {
                let v = HeaderValue::try_from(format!("<{s}>; rel=\"successor-version\""))
                    .map_err(|e| (format!("apis[{index}].successor"), e.to_string()))?;
                headers.push((header::LINK, v));
            }
        }
        let mut subscribers = HashMap::new();
        // Subscriptions to every version first, so that one to this
        // version overwrites them.
        for specific in [false, true] {
            for s in &config.subscriptions {
                let applies = match &s.version {
                    None => !specific,
                    Some(v) => specific && *v == api.version,
                };
                if applies && s.api == api.name {
                    subscribers.insert(
                        Arc::from(s.app.as_str()),
                        (s.status, Arc::from(s.plan.as_str())),
                    );
                }
            }
        }
        Ok(Self {
            name: api.name.as_str().into(),
            version: api.version.as_str().into(),
            state: api.state,
            headers,
            successor: api.successor.clone(),
            require_subscription: api.require_subscription,
            subscribers,
        })
    }

    /// The 410 answer of a retired API, `None` for any other state.
    pub fn retired(&self) -> Option<Problem> {
        if self.state != ApiState::Retired {
            return None;
        }
        let detail = match &self.successor {
            Some(s) => format!(
                "`{}` {} is retired; its successor is {s}",
                self.name, self.version
            ),
            None => format!("`{}` {} is retired", self.name, self.version),
        };
        // The Link header comes with the other lifecycle headers (`decorate`).
        Some(Problem::new(ProblemType::ApiRetired).detail(detail))
    }

    /// Whether the request may go on: with `require_subscription`, the
    /// identified app must hold an approved subscription. Runs after the
    /// access phase, so `key-auth` has identified the app. `Ok` carries
    /// the plan of the app's approved subscription, if it has one (with or
    /// without `require_subscription`): the plan's plugins apply.
    pub fn admit(&self, ctx: &Ctx) -> Result<Option<Arc<str>>, Problem> {
        let approved = |app: &gatehouse_core::App| match self.subscribers.get(&*app.name) {
            Some((SubscriptionStatus::Approved, plan)) => Some(plan.clone()),
            _ => None,
        };
        if !self.require_subscription {
            return Ok(ctx.app.as_ref().and_then(approved));
        }
        let Some(app) = &ctx.app else {
            return Err(Problem::new(ProblemType::Unauthorized)
                .detail(format!(
                    "`{}` requires a subscription: call it with an API key of a subscribed app",
                    self.name
                ))
                .header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Key realm=\"gatehouse\""),
                ));
        };
        let detail = match self.subscribers.get(&*app.name).map(|(s, _)| s) {
            Some(SubscriptionStatus::Approved) => return Ok(approved(app)),
            Some(SubscriptionStatus::Pending) => format!(
                "subscription of app `{}` to `{}` awaits approval",
                app.name, self.name
            ),
            Some(SubscriptionStatus::Rejected) => format!(
                "subscription of app `{}` to `{}` was rejected",
                app.name, self.name
            ),
            None => format!("app `{}` is not subscribed to `{}`", app.name, self.name),
        };
        Err(Problem::new(ProblemType::Forbidden).detail(detail))
    }

    /// Adds the lifecycle headers (deprecated and retired APIs) to a
    /// response, whoever made it.
    pub fn decorate(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Every API, compiled, by the name of each route it lists.
pub fn compile(config: &Config, errors: &mut Vec<(String, String)>) -> HashMap<String, Arc<ApiRt>> {
    let mut by_route = HashMap::new();
    for (i, api) in config.apis.iter().enumerate() {
        match ApiRt::compile(config, i) {
            Ok(rt) => {
                let rt = Arc::new(rt);
                for r in &api.routes {
                    by_route.insert(r.clone(), rt.clone());
                }
            }
            Err(e) => errors.push(e),
        }
    }
    by_route
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn api(yaml: &str) -> ApiRt {
        let loaded = gatehouse_config::parse_str(yaml, "t.yaml").unwrap();
        ApiRt::compile(&loaded.config, 0).unwrap()
    }

    #[test]
    fn deprecated_headers_have_the_rfc_formats() {
        let a = api(
            "apis:\n  - name: orders\n    version: v1\n    state: deprecated\n    deprecated_at: 2026-06-01T00:00:00Z\n    sunset: 2027-01-01T00:00:00Z\n    successor: /v2/orders\n",
        );
        let mut h = HeaderMap::new();
        a.decorate(&mut h);
        assert_eq!(h["deprecation"], "@1780272000");
        assert_eq!(h["sunset"], "Fri, 01 Jan 2027 00:00:00 GMT");
        assert_eq!(h["link"], "</v2/orders>; rel=\"successor-version\"");
        assert!(a.retired().is_none());
    }

    #[test]
    fn published_adds_nothing() {
        let a = api(
            "apis:\n  - name: orders\n    version: v1\n    deprecated_at: 2026-06-01T00:00:00Z\n    successor: /v2/orders\n",
        );
        let mut h = HeaderMap::new();
        a.decorate(&mut h);
        assert!(h.is_empty());
    }
}
