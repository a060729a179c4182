//! The Prometheus text exposition of the registry, through prometheus-client's collector API:
//! our own atomics are read at scrape time and encoded by the crate (names, escaping, `_total`,
//! histogram buckets), never formatted by hand.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::registry::Registry;

use super::{
    HandshakeFailure, Handshakes, Latency, MethodClass, Metrics, Protocol, STATUS_CLASSES,
    UpstreamError, metrics, unix_seconds,
};

/// The whole exposition, in the Prometheus text format (version 0.0.4).
pub(crate) fn exposition() -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape));
    registry.register_collector(Box::new(super::process::Process));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct Scrape;

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = metrics();
        requests(m, &mut e)?;
        connections(m, &mut e)?;
        handshakes(&m.handshakes, &mut e)?;
        upstreams(m, &mut e)?;
        certificates(m, &mut e)?;
        cluster(m, &mut e)?;
        reloads(m, &mut e)
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn counter(f: &mut MetricEncoder, labels: &Labels, v: u64) -> Result<(), std::fmt::Error> {
    f.encode_family(labels)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    f: &mut MetricEncoder,
    labels: &Labels,
    v: V,
) -> Result<(), std::fmt::Error> {
    f.encode_family(labels)?.encode_gauge(&v)
}

fn histogram(f: &mut MetricEncoder, labels: &Labels, l: &Latency) -> Result<(), std::fmt::Error> {
    let (sum, count, buckets) = l.snapshot();
    f.encode_family(labels)?.encode_histogram::<NoLabelSet>(
        sum,
        count,
        &buckets,
        None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
    )
}

fn describe<'a>(
    e: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    t: MetricType,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    e.encode_descriptor(name, help, None, t)
}

fn requests(m: &Metrics, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let routes = super::lock(&m.routes).clone();
    let mut f = describe(
        e,
        "candado_http_requests",
        "HTTP requests answered, by site, route (prefix, static or -), method class and status class.",
        MetricType::Counter,
    )?;
    for r in &routes {
        for (mi, method) in MethodClass::ALL.iter().enumerate() {
            for (si, status) in STATUS_CLASSES.iter().enumerate() {
                let v = r.counts[mi][si].load(Ordering::Relaxed);
                if v == 0 {
                    continue;
                }
                let labels = vec![
                    ("site", r.site.as_str()),
                    ("route", r.route.as_str()),
                    ("method", *method),
                    ("status", *status),
                ];
                counter(&mut f, &labels, v)?;
            }
        }
    }
    let mut f = describe(
        e,
        "candado_proxy_redirects_upgraded",
        "http:// redirects on the site's own address that the proxy turned into https://, by site and route: the app does not know it is behind HTTPS (see `candado doctor`).",
        MetricType::Counter,
    )?;
    for r in &routes {
        let v = r.redirects_upgraded.load(Ordering::Relaxed);
        if v > 0 {
            let labels = vec![("site", r.site.as_str()), ("route", r.route.as_str())];
            counter(&mut f, &labels, v)?;
        }
    }
    let sites = super::lock(&m.sites).clone();
    let mut f = describe(
        e,
        "candado_http_request_duration_seconds",
        "Time from a request's head to its response head, per site.",
        MetricType::Histogram,
    )?;
    for s in &sites {
        histogram(&mut f, &vec![("site", s.site.as_str())], &s.latency)?;
    }
    for (name, help, pick) in [
        (
            "candado_http_request_body_bytes",
            "Request body bytes declared by Content-Length, per site.",
            0,
        ),
        (
            "candado_http_response_body_bytes",
            "Response body bytes sent, per site (streamed bodies as they are sent).",
            1,
        ),
    ] {
        let mut f = describe(e, name, help, MetricType::Counter)?;
        for s in &sites {
            let v = match pick {
                0 => s.bytes_in.load(Ordering::Relaxed),
                _ => s.bytes_out.load(Ordering::Relaxed),
            };
            counter(&mut f, &vec![("site", s.site.as_str())], v)?;
        }
    }
    Ok(())
}

fn connections(m: &Metrics, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let listeners = super::lock(&m.listeners).clone();
    let mut f = describe(
        e,
        "candado_open_connections",
        "Connections open now, by listener and protocol.",
        MetricType::Gauge,
    )?;
    for l in &listeners {
        for (i, p) in Protocol::ALL.iter().enumerate() {
            let labels = vec![("listener", l.listener.as_str()), ("protocol", *p)];
            gauge(&mut f, &labels, l.open[i].load(Ordering::Relaxed))?;
        }
    }
    let mut f = describe(
        e,
        "candado_waiting_connections",
        "HTTP/1.1 keep-alive connections idle between requests, holding no buffers (nginx's Waiting), by listener.",
        MetricType::Gauge,
    )?;
    for l in &listeners {
        let v = l.waiting.load(Ordering::Relaxed);
        gauge(&mut f, &vec![("listener", l.listener.as_str())], v)?;
    }
    let mut f = describe(
        e,
        "candado_connections_accepted",
        "Connections accepted (past the TLS handshake for HTTPS), by listener.",
        MetricType::Counter,
    )?;
    for l in &listeners {
        let v = l.accepted.load(Ordering::Relaxed);
        counter(&mut f, &vec![("listener", l.listener.as_str())], v)?;
    }
    Ok(())
}

fn handshakes(h: &Handshakes, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let mut f = describe(
        e,
        "candado_tls_handshakes",
        "Finished TLS handshakes, by version, ALPN and whether the session was resumed.",
        MetricType::Counter,
    )?;
    for (vi, version) in Handshakes::VERSIONS.iter().enumerate() {
        for (ai, alpn) in Handshakes::ALPN.iter().enumerate() {
            for (ri, resumed) in ["full", "resumed"].iter().enumerate() {
                let v = h.done[vi][ai][ri].load(Ordering::Relaxed);
                if v == 0 {
                    continue;
                }
                let labels = vec![
                    ("version", *version),
                    ("alpn", *alpn),
                    ("session", *resumed),
                ];
                counter(&mut f, &labels, v)?;
            }
        }
    }
    let mut f = describe(
        e,
        "candado_tls_handshake_failures",
        "Failed TLS handshakes, by reason.",
        MetricType::Counter,
    )?;
    for (i, reason) in HandshakeFailure::ALL.iter().enumerate() {
        let v = h.failed[i].load(Ordering::Relaxed);
        counter(&mut f, &vec![("reason", *reason)], v)?;
    }
    Ok(())
}

fn upstreams(m: &Metrics, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let ups = m.upstream_list();
    let labels = |u: &super::UpstreamMetrics| -> Vec<(&'static str, String)> {
        vec![
            ("site", u.site.clone()),
            ("route", u.route.clone()),
            ("upstream", u.origin.clone()),
        ]
    };
    let mut f = describe(
        e,
        "candado_upstream_requests",
        "Requests sent to an upstream (answered or failed).",
        MetricType::Counter,
    )?;
    for u in &ups {
        let v = u.requests.load(Ordering::Relaxed);
        f.encode_family(&labels(u))?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    let mut f = describe(
        e,
        "candado_upstream_errors",
        "Upstream requests that failed, by kind (connect, timeout, reset, other).",
        MetricType::Counter,
    )?;
    for u in &ups {
        for (i, kind) in UpstreamError::ALL.iter().enumerate() {
            let mut l = labels(u);
            l.push(("kind", (*kind).to_owned()));
            let v = u.errors[i].load(Ordering::Relaxed);
            f.encode_family(&l)?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
    }
    let mut f = describe(
        e,
        "candado_upstream_response_seconds",
        "Time until an upstream's response head, per upstream.",
        MetricType::Histogram,
    )?;
    for u in &ups {
        let (sum, count, buckets) = u.latency.snapshot();
        f.encode_family(&labels(u))?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    let mut f = describe(
        e,
        "candado_upstream_up",
        "1 when the upstream is in rotation, 0 when it is out (refused connections, failed health checks).",
        MetricType::Gauge,
    )?;
    for u in &ups {
        f.encode_family(&labels(u))?
            .encode_gauge(&i64::from(u.is_up()))?;
    }
    Ok(())
}

fn certificates(m: &Metrics, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let certs = m.certificates();
    let now = unix_seconds(SystemTime::now());
    let label_sets: Vec<(Vec<(&'static str, String)>, i64)> = certs
        .iter()
        .map(|c| {
            let labels = vec![
                ("site", c.site.clone()),
                ("names", c.names.join(",")),
                ("source", c.source.as_str().to_owned()),
            ];
            (labels, unix_seconds(c.not_after))
        })
        .collect();
    let mut f = describe(
        e,
        "candado_certificate_expiry_seconds",
        "Seconds until a served certificate expires (negative once expired).",
        MetricType::Gauge,
    )?;
    for (labels, not_after) in &label_sets {
        f.encode_family(labels)?.encode_gauge(&(not_after - now))?;
    }
    let mut f = describe(
        e,
        "candado_certificate_not_after_timestamp_seconds",
        "When a served certificate expires, as a Unix time.",
        MetricType::Gauge,
    )?;
    for (labels, not_after) in &label_sets {
        f.encode_family(labels)?.encode_gauge(not_after)?;
    }
    let acme = super::lock(&m.acme).clone();
    for (name, help, kind) in [
        (
            "candado_acme_renewal_attempts",
            "ACME orders started, per certificate.",
            MetricType::Counter,
        ),
        (
            "candado_acme_renewal_failures",
            "ACME orders that failed, per certificate.",
            MetricType::Counter,
        ),
        (
            "candado_acme_next_renewal_timestamp_seconds",
            "When the next ACME renewal check is due, as a Unix time.",
            MetricType::Gauge,
        ),
    ] {
        let mut f = describe(e, name, help, kind)?;
        for a in &acme {
            let labels = vec![("names", a.names.as_str())];
            match kind {
                MetricType::Gauge => {
                    gauge(&mut f, &labels, a.next_renewal.load(Ordering::Relaxed))?
                }
                _ if name.ends_with("attempts") => {
                    counter(&mut f, &labels, a.attempts.load(Ordering::Relaxed))?
                }
                _ => counter(&mut f, &labels, a.failures.load(Ordering::Relaxed))?,
            }
        }
    }
    Ok(())
}

/// Only with `cluster:`: whether Redis answers, the ticket-key generation held, and how many
/// instances (this one included) checked in lately.
fn cluster(m: &Metrics, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let c = &m.cluster;
    if !c.enabled.load(Ordering::Relaxed) {
        return Ok(());
    }
    let up = i64::from(c.redis_up.load(Ordering::Relaxed));
    let gauges = [
        (
            "candado_cluster_redis_up",
            "1 when the cluster's Redis answered the last poll, 0 when it did not.",
            up,
        ),
        (
            "candado_cluster_ticket_key_generation",
            "The generation of the shared session-ticket key this instance uses (0: its own, Redis not reached yet).",
            i64::try_from(c.ticket_generation.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        ),
        (
            "candado_cluster_instances",
            "Instances of the cluster (this one included) that checked in to Redis lately.",
            i64::try_from(super::lock(&c.instances).len()).unwrap_or(i64::MAX),
        ),
    ];
    for (name, help, v) in gauges {
        describe(e, name, help, MetricType::Gauge)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn reloads(m: &Metrics, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let mut f = describe(
        e,
        "candado_reloads",
        "Reloads of the configuration and certificates, by result (taken or refused).",
        MetricType::Counter,
    )?;
    for (i, result) in ["taken", "refused"].iter().enumerate() {
        let v = m.reloads[i].load(Ordering::Relaxed);
        counter(&mut f, &vec![("result", *result)], v)?;
    }
    let mut f = describe(
        e,
        "candado_last_reload_timestamp_seconds",
        "When the last reload finished, as a Unix time (0: none yet).",
        MetricType::Gauge,
    )?;
    f.encode_gauge(&m.last_reload.load(Ordering::Relaxed))
}
