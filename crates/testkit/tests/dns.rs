//! The test DNS server over UDP and TCP: answers, NXDOMAIN, empty answers,
//! silence and SERVFAIL; and upstreams bound to other loopback addresses.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use gatehouse_testkit::dns::{Mode, Srv};
use gatehouse_testkit::{DnsServer, Upstream};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

async fn udp(server: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query(name, rtype), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(Message::from_vec(&buf[..n]).unwrap())
}

async fn tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
    let q = query(name, rtype);
    stream.write_u16(q.len() as u16).await.unwrap();
    stream.write_all(&q).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

#[tokio::test]
async fn answers_records_over_udp_and_tcp() {
    let dns = DnsServer::start().await;
    dns.set_a("api.test", &[Ipv4Addr::new(127, 0, 0, 2)], 7);
    dns.set_aaaa("api.test", &[Ipv6Addr::LOCALHOST], 7);
    dns.set_srv(
        "_http._tcp.api.test",
        &[Srv::new(10, 5, 8080, "api.test")],
        30,
    );

    let m = udp(dns.addr(), "API.test.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].ttl, 7);
    assert_eq!(
        m.answers[0].data,
        RData::A(Ipv4Addr::new(127, 0, 0, 2).into())
    );

    let m = tcp(dns.addr(), "api.test.", RecordType::AAAA).await;
    assert_eq!(m.answers[0].data, RData::AAAA(Ipv6Addr::LOCALHOST.into()));

    let m = tcp(dns.addr(), "_http._tcp.api.test.", RecordType::SRV).await;
    let RData::SRV(srv) = &m.answers[0].data else {
        panic!("{m:?}");
    };
    assert_eq!((srv.priority, srv.weight, srv.port), (10, 5, 8080));
    assert_eq!(srv.target.to_ascii(), "api.test.");
    assert_eq!(dns.queries(), 3);
    assert_eq!(dns.queries_for("api.test"), 2);
}

#[tokio::test]
async fn unknown_names_are_nxdomain_and_missing_types_empty() {
    let dns = DnsServer::start().await;
    dns.set_a("api.test", &[Ipv4Addr::LOCALHOST], 1);
    let m = udp(dns.addr(), "nope.test.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = udp(dns.addr(), "api.test.", RecordType::AAAA)
        .await
        .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    dns.remove("api.test");
    let m = udp(dns.addr(), "api.test.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn modes_silence_or_fail_every_query() {
    let dns = DnsServer::start().await;
    dns.set_a("api.test", &[Ipv4Addr::LOCALHOST], 1);
    dns.set_mode(Mode::Drop);
    assert!(udp(dns.addr(), "api.test.", RecordType::A).await.is_none());
    assert_eq!(dns.queries(), 1, "a dropped query still counts");
    dns.set_mode(Mode::ServFail);
    let m = udp(dns.addr(), "api.test.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    dns.set_mode(Mode::NxDomain);
    let m = tcp(dns.addr(), "api.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    dns.set_mode(Mode::Answer);
    let m = udp(dns.addr(), "api.test.", RecordType::A).await.unwrap();
    assert_eq!(m.answers.len(), 1);
}

#[tokio::test]
async fn upstreams_bind_other_loopback_addresses() {
    let a = Upstream::builder().name("a").start().await;
    let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), a.addr().port()));
    let b = Upstream::builder().name("b").bind(addr).start().await;
    assert_eq!(b.addr(), addr);
    assert_eq!(b.url(), format!("http://{addr}"));
    let resp = gatehouse_testkit::http1_client()
        .get(b.uri("/x"))
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-upstream"], "b");
    assert_eq!((a.hits(), b.hits(), b.connections()), (0, 1, 1));
    // The same address twice is an error, not a panic.
    assert!(Upstream::builder().bind(addr).try_start().await.is_err());
}
