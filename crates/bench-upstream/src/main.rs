//! `bench-upstream`: a tiny HTTP/1.1 keep-alive server that answers every request with 200 and a fixed body
//! (`GET /big`: a 1 MiB body, built once at start-up).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"hello from upstream\n";
/// The path answered with [`BIG_LEN`] bytes instead of [`BODY`].
const BIG_PATH: &str = "/big";
const BIG_LEN: usize = 1 << 20;
const USAGE: &str = "usage: bench-upstream [--listen ADDR] [--threads N]\n  \
     --listen ADDR  socket address to bind (default 127.0.0.1:9000)\n  \
     --threads N    tokio worker threads (default 1)\n\
     Answers 200 `hello from upstream` to every request, and 1 MiB of it to GET /big.";

struct Args {
    listen: SocketAddr,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 9000).into();
    let mut threads = 1usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--threads" => {
                let v = value("--threads")?;
                threads = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
                if threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args { listen, threads })
}

/// The 1 MiB body of `GET /big`: lines of `hello from upstream\n` cut to [`BIG_LEN`] bytes.
/// Built once; each response clones the `Bytes` (a reference count), so every
/// answer sends the same bytes without copying them.
fn big_body() -> Bytes {
    BODY.iter()
        .copied()
        .cycle()
        .take(BIG_LEN)
        .collect::<Vec<u8>>()
        .into()
}

async fn handle(req: Request<Incoming>, big: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = if req.uri().path() == BIG_PATH {
        big
    } else {
        Bytes::from_static(BODY)
    };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let big = big_body();
    let mut http = http1::Builder::new();
    http.keep_alive(true);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // Transient accept errors (e.g. EMFILE) must not kill the server.
            Err(e) => {
                eprintln!("bench-upstream: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let big = big.clone();
        let service = service_fn(move |req| handle(req, big.clone()));
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            // Client resets at the end of a load run are expected; stay quiet.
            let _ = conn.await;
        });
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("bench-upstream: {msg}");
            }
            eprintln!("{USAGE}");
            return if msg.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    // One thread: a current-thread runtime avoids the work-stealing scheduler's overhead.
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-upstream: building runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = TcpListener::bind(args.listen).await?;
        eprintln!("bench-upstream: listening on {}", listener.local_addr()?);
        serve(listener).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}
