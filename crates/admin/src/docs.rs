//! The interactive docs page at `GET /docs`: HTML, JS and CSS from
//! `crates/admin/assets/`, embedded in the binary. The page reads
//! `/openapi.json` and sends requests with the token the user types in.
//! No token is needed to load it; no inline script or style, so the
//! Content-Security-Policy can be `'self'` only.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const HTML: &str = include_str!("../assets/docs.html");
const JS: &str = include_str!("../assets/app.js");
const CSS: &str = include_str!("../assets/app.css");

/// The Content-Security-Policy of the docs page and its files. `data:`
/// images only for the empty favicon.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `GET /docs`
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", HTML)
}

/// `GET /docs/app.js`
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// `GET /docs/app.css`
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", CSS)
}
