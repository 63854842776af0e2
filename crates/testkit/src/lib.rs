//! Test support for gatehouse: small real upstream servers and raw clients.
//!
//! Everything here binds `127.0.0.1:0` (upstreams may bind a chosen
//! loopback address with [`UpstreamBuilder::bind`]), is ready when `start().await`
//! returns (the listener is bound before it returns) and stops when its guard
//! is dropped. Nothing here is used on the gateway's request path.
//!
//! - [`Upstream`]: an HTTP/1.1 + h2c server whose behaviour is picked by
//!   [`UpstreamBuilder`] (echo, fixed response, delay, reset mid-body, hang,
//!   SSE, large body, gRPC-like trailers, WebSocket echo, custom handler).
//! - [`RefusingAddr`], [`BlackholeServer`], [`AcceptThenCloseServer`]: TCP
//!   peers that refuse, never answer, or close at once.
//! - [`raw`]: a byte-exact TCP client with a lenient HTTP/1 response parser,
//!   for smuggling and malformed-request tests.
//! - [`http1_client`], [`h2c_client`]: hyper clients with a boxed request body.
//! - [`StreamingBody`]: a request body that generates bytes without holding them.
//! - [`rss`]: resident-memory readings for flat-memory assertions.
//! - [`layering`]: the module-cycle check each crate runs on its own sources.
//! - [`DnsServer`]: an authoritative DNS server (UDP and TCP) whose A, AAAA
//!   and SRV records tests change at runtime, or that stops answering or
//!   answers NXDOMAIN/SERVFAIL.
//! - [`tls`]: a test CA issuing server and client certificates (rcgen),
//!   server configs for a TLS [`Upstream`] ([`UpstreamBuilder::tls`]) and
//!   an HTTPS client that reports the negotiated session.

// This is test-support code: a builder given an invalid header or status, or a
// loopback listener that cannot bind, is a bug in the test or its machine, and
// panicking with a message is the most useful thing to do about it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod body;
pub mod client;
pub mod dns;
pub mod layering;
pub mod normalize;
pub mod pg;
pub mod raw;
pub mod rss;
mod server;
pub mod tcp;
pub mod tls;
pub mod upstream;

pub use body::{BoxBody, BoxError, StreamingBody};
pub use client::{Client, h2c_client, http1_client};
pub use dns::DnsServer;
pub use rss::{current_peak_rss_kb, current_rss_kb, rss_kb};
pub use tcp::{AcceptThenCloseServer, BlackholeServer, RefusingAddr};
pub use tokio_tungstenite;
pub use upstream::{Protocol, RecordedRequest, Upstream, UpstreamBuilder};
