//! h3load: a small HTTP/3 load generator (quinn + h3, the stack candado serves with), since
//! Debian packages none (h2load is built without HTTP/3 there). Like `h2load -n N -c C -m M`:
//! C QUIC connections, each keeping M requests in flight, N requests in all (or for a time).
//!
//! ```sh
//! cargo build --release --example h3load
//! target/release/examples/h3load --url https://test.example:8443/index.html \
//!     --connect 127.0.0.1 --ca ca.crt -n 20000 -c 10 -m 10
//! ```
//!
//! Prints requests per second, status counts, errors and latency percentiles. Pin it to a core
//! of its own (`taskset -c 1`) as scripts/bench does for h2load, and compare with
//! `h2load -n 20000 -c 10 -m 10` against the same URL: the server's CPU time per request is
//! what the two have in common.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Buf;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

struct Args {
    url: http::Uri,
    connect: Option<std::net::IpAddr>,
    ca: std::path::PathBuf,
    requests: usize,
    connections: usize,
    streams: usize,
    duration: Option<Duration>,
}

fn args() -> Result<Args> {
    let mut a = std::env::args().skip(1);
    let (mut url, mut connect, mut ca) = (None, None, None);
    let (mut requests, mut connections, mut streams, mut duration) = (1000, 1, 1, None);
    while let Some(flag) = a.next() {
        let mut value = || a.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?.parse()?),
            "--connect" => connect = Some(value()?.parse()?),
            "--ca" => ca = Some(value()?.into()),
            "-n" => requests = value()?.parse()?,
            "-c" => connections = value()?.parse()?,
            "-m" => streams = value()?.parse()?,
            "-D" => duration = Some(Duration::from_secs(value()?.parse()?)),
            other => bail!(
                "unknown argument {other}; usage: --url URL --ca FILE [--connect IP] [-n N] [-c C] [-m M] [-D SECONDS]"
            ),
        }
    }
    Ok(Args {
        url: url.context("--url https://HOST:PORT/PATH is required")?,
        connect,
        ca: ca.context("--ca FILE (the server's CA) is required")?,
        requests,
        connections: connections.max(1),
        streams: streams.max(1),
        duration,
    })
}

#[derive(Default)]
struct Tally {
    statuses: std::collections::BTreeMap<u16, usize>,
    errors: usize,
    bytes: usize,
    latencies: Vec<Duration>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(args()?);
    let host = args.url.host().context("the URL has no host")?.to_owned();
    let port = args.url.port_u16().unwrap_or(443);
    let addr = match args.connect {
        Some(ip) => SocketAddr::new(ip, port),
        None => tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .context("no address")?,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let config = quinn::ClientConfig::new(Arc::new(quic));
    let endpoint = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))?;

    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let left = Arc::new(std::sync::atomic::AtomicIsize::new(args.requests as isize));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let conn = endpoint.connect_with(config.clone(), addr, &host)?.await?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
        for _ in 0..args.streams {
            let (mut send, args, left) = (send.clone(), args.clone(), left.clone());
            tasks.spawn(async move {
                let mut tally = Tally::default();
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d)
                        || (deadline.is_none()
                            && left.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) <= 0)
                    {
                        return tally;
                    }
                    let t = Instant::now();
                    match request(&mut send, &args.url).await {
                        Ok((status, bytes)) => {
                            *tally.statuses.entry(status).or_default() += 1;
                            tally.bytes += bytes;
                            tally.latencies.push(t.elapsed());
                        }
                        Err(_) => tally.errors += 1,
                    }
                }
            });
        }
    }
    let mut all = Tally::default();
    while let Some(t) = tasks.join_next().await {
        let t = t?;
        for (s, n) in t.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
        all.errors += t.errors;
        all.bytes += t.bytes;
        all.latencies.extend(t.latencies);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies.sort();
    let pct = |p: f64| {
        let i =
            ((all.latencies.len() as f64 * p) as usize).min(all.latencies.len().saturating_sub(1));
        all.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let done: usize = all.statuses.values().sum();
    println!(
        "{done} requests in {elapsed:.2} s: {:.0} req/s, {:.1} MB/s; statuses {:?}; errors {}",
        done as f64 / elapsed,
        all.bytes as f64 / elapsed / 1e6,
        all.statuses,
        all.errors
    );
    println!(
        "latency ms: p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    endpoint.close(0u32.into(), b"");
    Ok(())
}

/// One GET, its body read to the end: (status, body bytes).
async fn request(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>,
    url: &http::Uri,
) -> Result<(u16, usize)> {
    let mut stream = send
        .send_request(http::Request::get(url.clone()).body(())?)
        .await?;
    stream.finish().await?;
    let res = stream.recv_response().await?;
    let mut bytes = 0;
    while let Some(chunk) = stream.recv_data().await? {
        bytes += chunk.remaining();
    }
    Ok((res.status().as_u16(), bytes))
}
