//! An in-process chain harness for plugin tests (feature `testing`): runs
//! built plugins phase by phase over one request, in the order the data
//! plane runs them, against an upstream that is a closure. A plugin's tests
//! stay in its own crate and need no listener, no config file and no
//! gateway; what a phase changed is there to assert on.
//!
//! It follows the proxy's rules for the parts a plugin can see: order by
//! descending priority then name, only declared phases are called, a
//! `Flow::Respond` skips the later request phases and the upstream but not
//! the response phases, the first `upstream` choice wins, `upstream_error`
//! runs only when the upstream failed. It does not route, forward headers,
//! retry or time out: those are the proxy's, tested end to end in
//! `crates/proxy/tests/dataplane`.

use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::env::BuildEnv;
use crate::error::PluginError;
use crate::plugin::{
    ErrorFlow, Flow, LogRecord, Phase, Plugin, PluginFactory, Request, Response, UpstreamChoice,
    UpstreamFailure,
};
use crate::problem::{Problem, ProblemType};
use crate::resources::{BuildCx, Resources, Scope};

/// What the upstream closure answers: a response, or the failure the
/// gateway would report (`upstream-unreachable`, `upstream-timeout`, ...).
pub type UpstreamResult = Result<Response, ProblemType>;

/// The plugins of one chain, built and sorted.
pub struct Harness {
    plugins: Vec<(i32, Arc<dyn Plugin>)>,
    resources: Resources,
    env: BuildEnv,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field(
                "plugins",
                &self
                    .plugins
                    .iter()
                    .map(|(p, x)| (x.name(), *p))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What one request through the harness did.
#[derive(Debug)]
pub struct Outcome {
    /// The response the client would get (after the response phases; the
    /// body is wrapped by `response_body` plugins, not yet read).
    pub response: Response,
    /// The context after the exchange (consumer, app, extensions, ...).
    pub ctx: Ctx,
    /// How many times the upstream was called (0 when a plugin answered,
    /// 2 when an `upstream_error` plugin retried).
    pub upstream_calls: usize,
    /// The choice of the first `upstream` plugin that made one.
    pub choice: Option<UpstreamChoice>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// An empty chain with its own resources (kept across [`Harness::add`]
    /// calls, so a plugin built twice with the same config finds its state
    /// again, as it would across a reload).
    pub fn new() -> Self {
        Self {
            plugins: Vec::new(),
            resources: Resources::new(),
            env: BuildEnv::default(),
        }
    }

    /// The build environment later [`Harness::add`] calls use (consumers,
    /// credential indexes, app keys).
    pub fn with_env(mut self, env: BuildEnv) -> Self {
        self.env = env;
        self
    }

    /// Builds `factory` from `config` at the route scope `route:test`
    /// with its default priority and adds it to the chain.
    pub fn add(
        &mut self,
        factory: &dyn PluginFactory,
        config: serde_json::Value,
    ) -> Result<&mut Self, PluginError> {
        let scope = Scope::Route("test".into());
        let view = self.resources.build();
        let plugin = factory.build(
            &config,
            &BuildCx::new(factory.name(), &self.env, &scope, &view),
        )?;
        // Background tasks are not started: a harness test drives the
        // plugin, not its exporters.
        drop(self.resources.commit(&view));
        Ok(self.add_plugin(factory.priority(), plugin))
    }

    /// Adds a built plugin with `priority`.
    pub fn add_plugin(&mut self, priority: i32, plugin: Arc<dyn Plugin>) -> &mut Self {
        self.plugins.push((priority, plugin));
        // The chain's order: higher priority first, ties by name.
        self.plugins
            .sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name().cmp(b.1.name())));
        self
    }

    /// The resources the plugins were built with.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    fn each(&self, phase: Phase) -> impl Iterator<Item = &Arc<dyn Plugin>> + '_ {
        self.plugins
            .iter()
            .map(|(_, p)| p)
            .filter(move |p| p.phases().contains(phase))
    }

    /// Runs `req` through the chain; `upstream` answers when the request
    /// gets that far.
    pub async fn run(
        &self,
        mut ctx: Ctx,
        mut req: Request,
        mut upstream: impl FnMut(&Ctx, Request) -> UpstreamResult,
    ) -> Outcome {
        let mut choice = None;
        let mut calls = 0;
        let answered = 'request: {
            for (phase, p) in [Phase::Rewrite, Phase::Access]
                .into_iter()
                .flat_map(|ph| self.each(ph).map(move |p| (ph, p)))
            {
                let flow = match phase {
                    Phase::Rewrite => p.rewrite(&mut ctx, &mut req).await,
                    _ => p.access(&mut ctx, &mut req).await,
                };
                if let Flow::Respond(r) = flow {
                    break 'request r;
                }
            }
            for p in self.each(Phase::Upstream) {
                if let Some(c) = p.upstream(&mut ctx, &mut req).await {
                    choice = Some(c);
                    break;
                }
            }
            for p in self.each(Phase::RequestBody) {
                if let Flow::Respond(r) = p.request_body(&mut ctx, &mut req).await {
                    break 'request r;
                }
            }
            for p in self.each(Phase::UpstreamRequest) {
                if let Flow::Respond(r) = p.upstream_request(&mut ctx, &mut req).await {
                    break 'request r;
                }
            }
            calls += 1;
            // The harness keeps no replay copy of the body: a retry gets
            // the head and an empty body.
            let (head, body) = req.into_parts();
            let retry_head = head.clone();
            match upstream(&ctx, http::Request::from_parts(head, body)) {
                Ok(r) => r,
                Err(kind) => {
                    let failure = UpstreamFailure {
                        kind,
                        service: ctx.service.clone().unwrap_or_else(|| Arc::from("test")),
                        replayable: true,
                    };
                    let mut out = None;
                    for p in self.each(Phase::UpstreamError) {
                        match p.upstream_error(&mut ctx, &failure).await {
                            ErrorFlow::Default => {}
                            ErrorFlow::Respond(r) => {
                                out = Some(r);
                                break;
                            }
                            ErrorFlow::Retry(c) => {
                                choice = Some(c);
                                calls += 1;
                                let again = http::Request::from_parts(
                                    retry_head.clone(),
                                    crate::body::empty(),
                                );
                                if let Ok(r) = upstream(&ctx, again) {
                                    out = Some(r);
                                    break;
                                }
                            }
                        }
                    }
                    out.unwrap_or_else(|| Problem::new(kind).into_response(Some(&ctx.request_id)))
                }
            }
        };
        let (mut parts, mut body) = answered.into_parts();
        for p in self.each(Phase::ResponseHeaders) {
            p.response_headers(&mut ctx, &mut parts).await;
        }
        for p in self.each(Phase::ResponseBody) {
            body = p.response_body(&ctx, body);
        }
        let record = LogRecord {
            status: parts.status.as_u16(),
            bytes_sent: 0,
            duration: Duration::ZERO,
            completed: true,
        };
        for p in self.each(Phase::Log) {
            p.log(&ctx, &record);
        }
        Outcome {
            response: http::Response::from_parts(parts, body),
            ctx,
            upstream_calls: calls,
            choice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    use crate::plugin::Phases;

    /// Tags the response with its name; rejects when told to.
    struct Tag(&'static str, bool);

    #[async_trait]
    impl Plugin for Tag {
        fn name(&self) -> &'static str {
            self.0
        }
        fn phases(&self) -> Phases {
            Phases::of(&[Phase::Access, Phase::ResponseHeaders])
        }
        async fn access(&self, ctx: &mut Ctx, _req: &mut Request) -> Flow {
            if self.1 {
                ctx.reject(Problem::new(ProblemType::Forbidden))
            } else {
                Flow::Continue
            }
        }
        async fn response_headers(&self, _ctx: &mut Ctx, resp: &mut http::response::Parts) {
            resp.headers
                .append("x-order", http::HeaderValue::from_static(self.0));
        }
    }

    fn ctx() -> Ctx {
        Ctx::new(Arc::from("rid"), ([127, 0, 0, 1], 1).into())
    }

    fn req() -> Request {
        http::Request::new(crate::body::empty())
    }

    fn ok(_: &Ctx, _: Request) -> UpstreamResult {
        Ok(http::Response::new(crate::body::full("up")))
    }

    #[tokio::test]
    async fn runs_by_priority_then_name_and_a_rejection_skips_the_upstream() {
        let mut h = Harness::new();
        h.add_plugin(1, Arc::new(Tag("b", false)))
            .add_plugin(5, Arc::new(Tag("z", false)))
            .add_plugin(1, Arc::new(Tag("a", false)));
        let out = h.run(ctx(), req(), ok).await;
        let order: Vec<_> = out
            .response
            .headers()
            .get_all("x-order")
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        assert_eq!(order, ["z", "a", "b"]);
        assert_eq!(out.upstream_calls, 1);

        let mut h = Harness::new();
        h.add_plugin(1, Arc::new(Tag("deny", true)));
        let out = h.run(ctx(), req(), ok).await;
        assert_eq!(out.response.status(), 403);
        assert_eq!(out.upstream_calls, 0);
        // Response phases still ran on the rejection.
        assert!(out.response.headers().contains_key("x-order"));
    }

    #[tokio::test]
    async fn an_upstream_failure_becomes_its_problem() {
        let h = Harness::new();
        let out = h
            .run(ctx(), req(), |_, _| Err(ProblemType::UpstreamTimeout))
            .await;
        assert_eq!(out.response.status(), 504);
    }
}
