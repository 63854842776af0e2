//! [`DnsServer`]: a small authoritative DNS server on `127.0.0.1` (UDP and
//! TCP on one port) whose A, AAAA and SRV records a test changes while it
//! runs, and which can be told to stop answering or to answer NXDOMAIN or
//! SERVFAIL. Built on hickory-proto's message types.
//!
//! Names are matched case-insensitively, without the trailing dot. A name
//! with no records at all is NXDOMAIN; a name with records of other types
//! gets an empty NOERROR answer.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// How the server treats every query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answer from the records (the default).
    #[default]
    Answer,
    /// Read queries and never answer (a dead or unreachable server).
    Drop,
    /// Answer NXDOMAIN for every name.
    NxDomain,
    /// Answer SERVFAIL for every name.
    ServFail,
}

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is preferred.
    pub priority: u16,
    /// Relative weight within a priority.
    pub weight: u16,
    /// Port of the service on `target`.
    pub port: u16,
    /// Host name of the target.
    pub target: String,
}

impl Srv {
    /// An SRV record.
    pub fn new(priority: u16, weight: u16, port: u16, target: &str) -> Self {
        Self {
            priority,
            weight,
            port,
            target: target.to_string(),
        }
    }
}

#[derive(Default)]
struct Zone {
    records: HashMap<(String, RecordType), (u32, Vec<RData>)>,
    mode: Mode,
}

#[derive(Default)]
struct State {
    zone: Mutex<Zone>,
    queries: AtomicUsize,
    by_name: Mutex<HashMap<String, usize>>,
}

impl State {
    fn zone(&self) -> std::sync::MutexGuard<'_, Zone> {
        self.zone.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A running test DNS server; dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on one free port of `127.0.0.1` and starts
    /// answering. Must run inside a tokio runtime.
    ///
    /// # Panics
    /// If no port can be bound for both protocols.
    pub async fn start() -> Self {
        let (udp, tcp) = bind_pair().await.expect("bind a UDP+TCP port on 127.0.0.1");
        let addr = udp.local_addr().expect("local_addr of a bound socket");
        let state = Arc::new(State::default());
        let tasks = vec![
            tokio::spawn(serve_udp(udp, state.clone())),
            tokio::spawn(serve_tcp(tcp, state.clone())),
        ];
        Self { addr, state, tasks }
    }

    /// `127.0.0.1:PORT`, for `server.dns.nameservers`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the A records of `name`.
    pub fn set_a(&self, name: &str, ips: &[Ipv4Addr], ttl: u32) {
        let data = ips.iter().map(|ip| RData::A(A(*ip))).collect();
        self.set(name, RecordType::A, ttl, data);
    }

    /// Replaces the AAAA records of `name`.
    pub fn set_aaaa(&self, name: &str, ips: &[Ipv6Addr], ttl: u32) {
        let data = ips.iter().map(|ip| RData::AAAA(AAAA(*ip))).collect();
        self.set(name, RecordType::AAAA, ttl, data);
    }

    /// Replaces the SRV records of `name`.
    ///
    /// # Panics
    /// If a target is not a valid DNS name.
    pub fn set_srv(&self, name: &str, records: &[Srv], ttl: u32) {
        let data = records
            .iter()
            .map(|r| {
                let target = Name::from_ascii(&r.target).expect("SRV target must be a DNS name");
                RData::SRV(SRV::new(r.priority, r.weight, r.port, target))
            })
            .collect();
        self.set(name, RecordType::SRV, ttl, data);
    }

    fn set(&self, name: &str, rtype: RecordType, ttl: u32, data: Vec<RData>) {
        let mut zone = self.state.zone();
        if data.is_empty() {
            zone.records.remove(&(key(name), rtype));
        } else {
            zone.records.insert((key(name), rtype), (ttl, data));
        }
    }

    /// Removes every record of `name`: it becomes NXDOMAIN.
    pub fn remove(&self, name: &str) {
        let name = key(name);
        self.state.zone().records.retain(|(n, _), _| *n != name);
    }

    /// How the server treats queries from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.state.zone().mode = mode;
    }

    /// Queries received so far (answered or not).
    pub fn queries(&self) -> usize {
        self.state.queries.load(Ordering::SeqCst)
    }

    /// Queries received so far for `name` (any type).
    pub fn queries_for(&self, name: &str) -> usize {
        let by_name = self
            .state
            .by_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        by_name.get(&key(name)).copied().unwrap_or(0)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// A UDP socket and a TCP listener on the same `127.0.0.1` port.
async fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}

async fn serve_udp(socket: UdpSocket, state: Arc<State>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&state, &buf[..n]) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<State>) {
    // Connection tasks live in the set, so they end with this task.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    conns.spawn(serve_tcp_conn(stream, state.clone()));
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, state: Arc<State>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut buf = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let Some(reply) = answer(&state, &buf) else {
            continue;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// The encoded reply to one query, or `None` to stay silent.
fn answer(state: &State, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    state.queries.fetch_add(1, Ordering::SeqCst);
    if let Some(q) = request.queries.first() {
        let mut by_name = state.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        *by_name.entry(key(&q.name().to_ascii())).or_default() += 1;
    }
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.authoritative = true;
    reply.add_queries(request.queries.iter().cloned());
    let zone = state.zone();
    match zone.mode {
        Mode::Drop => return None,
        Mode::NxDomain => reply.metadata.response_code = ResponseCode::NXDomain,
        Mode::ServFail => reply.metadata.response_code = ResponseCode::ServFail,
        Mode::Answer => {
            for q in &request.queries {
                let name = key(&q.name().to_ascii());
                match zone.records.get(&(name.clone(), q.query_type())) {
                    Some((ttl, data)) => {
                        reply.add_answers(
                            data.iter()
                                .map(|d| Record::from_rdata(q.name().clone(), *ttl, d.clone())),
                        );
                    }
                    None if zone.records.keys().any(|(n, _)| *n == name) => {}
                    None => reply.metadata.response_code = ResponseCode::NXDomain,
                }
            }
        }
    }
    drop(zone);
    reply.to_vec().ok()
}
