//! A route's upstreams: the pooled client that reaches HTTPS and HTTP/2 ones and runs the
//! health checks (system roots or a configured CA; plain-HTTP/1.1 requests go through
//! `conns`), which one serves the next request (round robin or least connections),
//! and which are out of rotation (passive: a refused connection; active: a failed check).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::crypto::CryptoProvider;

use super::UpstreamBody;
use super::connect::TcpConnector;
use crate::config::{Balance, HealthCheck, Route, Upstream, defaults};

type Connector = hyper_rustls::HttpsConnector<TcpConnector>;
pub(super) type UpstreamHttp = Client<Connector, UpstreamBody>;

/// Builds the client for a route's settings.
pub(super) fn client(
    route: &Route,
    provider: Arc<CryptoProvider>,
) -> std::io::Result<UpstreamHttp> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(route.connect_timeout));
    let tls = match &route.ca {
        None => {
            hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider)?
        }
        Some(ca) => hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_trusting(ca, provider)?),
    };
    let tls = tls.https_or_http();
    let tcp = TcpConnector(http);
    let connector = match route.http2 {
        true => tls.enable_http2().wrap_connector(tcp),
        false => tls.enable_http1().wrap_connector(tcp),
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_max_idle_per_host(defaults::UPSTREAM_IDLE_PER_HOST);
    if route.http2 {
        builder.http2_only(true);
    }
    Ok(builder.build(connector))
}

/// Which upstreams are up and how busy each is, shared with the health checker.
pub(super) struct Pool {
    upstreams: Vec<Upstream>,
    balance: Balance,
    next: AtomicUsize,
    /// Per upstream: milliseconds after `epoch` until which it is skipped.
    down_until: Vec<AtomicU64>,
    in_flight: Vec<AtomicUsize>,
    epoch: Instant,
    /// Per upstream: its requests, errors, latency and health for the admin listener.
    metrics: Vec<Arc<crate::observe::UpstreamMetrics>>,
}

impl Pool {
    pub(super) fn new(route: &Route, site: &str) -> Arc<Pool> {
        let n = route.upstreams.len();
        let observe = crate::observe::metrics();
        Arc::new(Pool {
            metrics: route
                .upstreams
                .iter()
                .map(|u| observe.upstream(site, &route.prefix, &u.origin))
                .collect(),
            upstreams: route.upstreams.clone(),
            balance: route.balance,
            next: AtomicUsize::new(0),
            down_until: (0..n).map(|_| AtomicU64::new(0)).collect(),
            in_flight: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn is_up(&self, i: usize) -> bool {
        self.down_until[i].load(Ordering::Relaxed) <= self.now_ms()
    }

    /// The upstream for the next request, counted as busy until the guard is dropped. When
    /// every upstream is down the next one in turn is tried anyway: it may have recovered.
    pub(super) fn pick(self: &Arc<Self>) -> Picked {
        let n = self.upstreams.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let order = (0..n).map(|k| (start + k) % n);
        let i = match self.balance {
            Balance::RoundRobin => order.clone().find(|&i| self.is_up(i)),
            Balance::LeastConnections => order
                .clone()
                .filter(|&i| self.is_up(i))
                .min_by_key(|&i| self.in_flight[i].load(Ordering::Relaxed)),
        }
        .unwrap_or(start % n);
        self.in_flight[i].fetch_add(1, Ordering::Relaxed);
        Picked {
            pool: self.clone(),
            index: i,
        }
    }

    pub(super) fn mark_down(&self, i: usize, duration: Duration) {
        let until = self.now_ms() + duration.as_millis() as u64;
        self.down_until[i].store(until, Ordering::Relaxed);
        self.metrics[i].down_for(duration);
    }

    fn mark_up(&self, i: usize) {
        self.down_until[i].store(0, Ordering::Relaxed);
        self.metrics[i].back_up();
    }
}

/// One upstream chosen for one request; releases its slot when dropped (after the response
/// body has been streamed, since the guard travels with it).
pub(super) struct Picked {
    pool: Arc<Pool>,
    pub(super) index: usize,
}

impl Picked {
    pub(super) fn upstream(&self) -> &Upstream {
        &self.pool.upstreams[self.index]
    }

    pub(super) fn mark_down(&self) {
        self.pool.mark_down(self.index, defaults::UPSTREAM_DOWN_FOR);
    }

    pub(super) fn metrics(&self) -> &crate::observe::UpstreamMetrics {
        &self.pool.metrics[self.index]
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.pool.in_flight[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Checks every upstream of the pool every `check.interval` for as long as the route that
/// owns the pool exists: a reload builds new routes (and checks), and the old checks end
/// with their routes.
pub(super) fn spawn_health_checks(pool: &Arc<Pool>, client: UpstreamHttp, check: HealthCheck) {
    let weak = Arc::downgrade(pool);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(check.interval);
        loop {
            tick.tick().await;
            let Some(pool) = weak.upgrade() else {
                return;
            };
            for (i, upstream) in pool.upstreams.iter().enumerate() {
                let healthy = probe(&client, upstream, &check.path).await;
                match (healthy, pool.is_up(i)) {
                    (true, false) => {
                        tracing::info!(upstream = %upstream.origin, "upstream is healthy again")
                    }
                    (false, true) => {
                        tracing::warn!(upstream = %upstream.origin, path = %check.path, "upstream failed its health check")
                    }
                    _ => {}
                }
                match healthy {
                    true => pool.mark_up(i),
                    // Down until a later check succeeds (re-marked at every failed check).
                    false => pool.mark_down(i, check.interval * 2),
                }
            }
        }
    });
}

async fn probe(client: &UpstreamHttp, upstream: &Upstream, path: &str) -> bool {
    let Ok(uri) = format!("{}{path}", upstream.origin).parse::<Uri>() else {
        return false;
    };
    let body: UpstreamBody = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed();
    let Ok(req) = Request::get(uri)
        .header(http::header::USER_AGENT, "candado-health-check")
        .body(body)
    else {
        return false;
    };
    match tokio::time::timeout(defaults::HEALTH_CHECK_TIMEOUT, client.request(req)).await {
        Ok(Ok(res)) => res.status().is_success() || res.status().is_redirection(),
        _ => false,
    }
}
