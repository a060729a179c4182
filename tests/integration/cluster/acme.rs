//! Issue 21: three instances share one ACME account and certificate through a real
//! `redis-server`, against a real ACME CA (pebble). pebble's HTTP-01 validations go through a
//! small TCP balancer in the test that never picks the instance holding the order lock, so
//! every validation is answered by an instance that did not order (HTTP-01 to their HTTP
//! listeners, TLS-ALPN-01 to their HTTPS listeners).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Redis, keygen};
use crate::support::client;
use crate::support::free_port;
use crate::support::pebble::{Options, Pebble};
use crate::support::server::Candado;
use crate::support::tcp::wait_until;

const SITE: &str = "site.test";
/// The Redis key of the order lock for `SITE` (`PREFIX:lock:acme:NAME`).
const LOCK: &str = "candado:lock:acme:site.test";

/// One instance: its name, its own ACME folder (kept across restarts) and the process.
struct Instance {
    name: String,
    storage: TempDir,
    server: Option<Candado>,
}

impl Instance {
    fn server(&self) -> &Candado {
        self.server.as_ref().expect("instance running")
    }

    fn log(&self) -> String {
        self.server.as_ref().map_or_else(String::new, Candado::log)
    }

    fn orders(&self) -> usize {
        self.log().matches("ACME order: ").count()
    }

    fn serving(&self) -> bool {
        let log = self.log();
        log.contains("ACME certificate obtained and now served")
            || log.contains("ACME certificate from the store now served")
    }
}

/// A cluster of instances in front of one pebble and one Redis.
struct Cluster {
    pebble: Pebble,
    redis: Redis,
    key: String,
    instances: Vec<Instance>,
    balancer: Balancer,
    /// `acme.challenge` of every instance: `http-01` or `tls-alpn-01`.
    challenge: &'static str,
    trust: Option<PathBuf>,
}

impl Cluster {
    fn start(names: &[&str], validity_secs: Option<u64>, challenge: &'static str) -> Cluster {
        let redis = Redis::start();
        let balancer = Balancer::start(redis.port);
        // pebble validates through the balancer for the challenge in use only.
        let mut options = match challenge {
            "http-01" => Options::ports(balancer.port, free_port()),
            _ => Options::ports(free_port(), balancer.port),
        };
        options.validity_secs = validity_secs;
        let pebble = Pebble::start(options);
        let mut cluster = Cluster {
            pebble,
            redis,
            key: keygen(),
            instances: Vec::new(),
            balancer,
            challenge,
            trust: None,
        };
        for name in names {
            cluster.instances.push(Instance {
                name: (*name).to_owned(),
                storage: tempfile::tempdir().unwrap(),
                server: None,
            });
        }
        for i in 0..cluster.instances.len() {
            cluster.run(i);
        }
        cluster
    }

    /// Starts (or starts again) instance `i` on its own ports and ACME folder.
    fn run(&mut self, i: usize) {
        let inst = &self.instances[i];
        let www = inst.storage.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(
            www.join("index.html"),
            format!("hello from {}\n", inst.name),
        )
        .unwrap();
        let yaml = format!(
            "cluster: {{redis: '{}', instance: {}}}\nadmin: 127.0.0.1:0\nacme:\n  directory: {}\n  ca: {}\n  email: admin@example.com\n  storage: {}\n  challenge: {}\nsites:\n  - names: [{SITE}]\n    listen: 127.0.0.1:0\n    http_redirect: 127.0.0.1:0\n    certificate: acme\n    root: {}\n",
            self.redis.url(),
            inst.name,
            self.pebble.directory,
            self.pebble.api_ca().display(),
            inst.storage.path().join("acme").display(),
            self.challenge,
            www.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("candado.yaml");
        std::fs::write(&config, yaml).unwrap();
        let cwd = dir.path().to_owned();
        let server = Candado::with_args_env(
            &["serve", "-c", config.to_str().unwrap()],
            &[("CANDADO_CLUSTER_KEY", &self.key)],
            &cwd,
            dir,
            true,
        );
        let to = match self.challenge {
            "http-01" => server.http.unwrap(),
            _ => server.https,
        };
        let entry = (inst.name.clone(), to, server.pid());
        self.balancer.set(i, entry);
        self.instances[i].server = Some(server);
    }

    fn logs(&self) -> String {
        self.instances
            .iter()
            .map(|i| format!("--- {}:\n{}", i.name, i.log()))
            .collect()
    }

    fn orders(&self) -> usize {
        self.instances.iter().map(Instance::orders).sum()
    }

    /// Waits until every running instance serves an ACME certificate.
    fn wait_all_serving(&self, timeout: Duration) {
        let running = || self.instances.iter().filter(|i| i.server.is_some());
        assert!(
            wait_until(timeout, || running().all(Instance::serving)),
            "not every instance serves a certificate:\n{}",
            self.logs()
        );
    }

    fn trust(&mut self) -> PathBuf {
        self.trust
            .get_or_insert_with(|| self.pebble.trust_file())
            .clone()
    }

    /// The serial (hex) of the certificate instance `i` serves, verified against pebble's
    /// roots; `None` when the handshake fails.
    fn serial(&mut self, i: usize) -> Option<String> {
        let pem = std::fs::read_to_string(self.trust()).unwrap();
        let addr = self.instances[i].server().https;
        let tls = client::connect(addr, SITE, client::client_config(&pem, &[b"http/1.1"])).ok()?;
        let leaf = tls.conn.peer_certificates()?[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
        Some(cert.serial.to_str_radix(16))
    }

    fn running(&self) -> Vec<usize> {
        (0..self.instances.len())
            .filter(|i| self.instances[*i].server.is_some())
            .collect()
    }

    /// Waits until every running instance serves the same certificate; returns its serial.
    fn wait_same_serial(&mut self, timeout: Duration) -> String {
        let mut last = Vec::new();
        let agreed = wait_until(timeout, || {
            last = self.running().iter().map(|i| self.serial(*i)).collect();
            last.iter().all(|s| s.is_some() && *s == last[0])
        });
        assert!(agreed, "serials {last:?}:\n{}", self.logs());
        last[0].clone().unwrap()
    }

    /// The local copy of the certificate's private key in instance `i`'s ACME folder.
    fn stored_key(&self, i: usize) -> String {
        let dir_key = self
            .pebble
            .directory
            .trim_start_matches("https://")
            .replace([':', '/'], "-");
        let path = self.instances[i]
            .storage
            .path()
            .join("acme")
            .join(dir_key)
            .join("certificates")
            .join(SITE)
            .join("key.pem");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.logs()))
    }
}

/// pebble's validation port: each connection goes to a running instance that does not hold the
/// order lock (read from Redis as the CA connects), round-robin. With `kill_holder` armed,
/// the first validation first kills the holder with SIGKILL, mid-order.
struct Balancer {
    port: u16,
    state: Arc<Mutex<BalancerState>>,
}

#[derive(Default)]
struct BalancerState {
    /// (name, address answering the challenge, pid) per instance slot.
    backends: Vec<Option<(String, SocketAddr, u32)>>,
    next: usize,
    /// The instance each validation went to, and the lock holder at that moment.
    routed: Vec<(String, String)>,
    kill_holder: bool,
    killed: Option<(String, Instant)>,
}

impl Balancer {
    fn start(redis_port: u16) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(BalancerState::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let holder = lock_holder(redis_port);
                let Some(to) = pick(&shared, &holder) else {
                    continue;
                };
                if let Ok(upstream) = TcpStream::connect(to) {
                    std::thread::spawn(move || pipe(client, upstream));
                }
            }
        });
        Balancer { port, state }
    }

    fn set(&self, slot: usize, backend: (String, SocketAddr, u32)) {
        let mut s = self.state.lock().unwrap();
        if s.backends.len() <= slot {
            s.backends.resize(slot + 1, None);
        }
        s.backends[slot] = Some(backend);
    }

    fn routed(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().routed.clone()
    }

    fn arm_kill(&self) {
        self.state.lock().unwrap().kill_holder = true;
    }

    fn killed(&self) -> Option<(String, Instant)> {
        self.state.lock().unwrap().killed.clone()
    }
}

/// Who holds `LOCK` now (the instance name before the token), or "".
fn lock_holder(redis_port: u16) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "GET", LOCK])
        .output()
        .unwrap();
    let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    value.split(' ').next().unwrap_or_default().to_owned()
}

fn pick(state: &Mutex<BalancerState>, holder: &str) -> Option<SocketAddr> {
    let mut s = state.lock().unwrap();
    if s.kill_holder && !holder.is_empty() {
        s.kill_holder = false;
        let pid = s
            .backends
            .iter()
            .flatten()
            .find(|(name, _, _)| name == holder)
            .map(|b| b.2);
        if let Some(pid) = pid {
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
            s.killed = Some((holder.to_owned(), Instant::now()));
        }
    }
    let dead = s.killed.as_ref().map(|k| k.0.clone());
    let others: Vec<(String, SocketAddr)> = s
        .backends
        .iter()
        .flatten()
        .filter(|(name, _, _)| name != holder && Some(name) != dead.as_ref())
        .map(|(name, addr, _)| (name.clone(), *addr))
        .collect();
    if others.is_empty() {
        return None;
    }
    let (name, addr) = others[s.next % others.len()].clone();
    s.next += 1;
    s.routed.push((name, holder.to_owned()));
    Some(addr)
}

fn pipe(client: TcpStream, upstream: TcpStream) {
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    };
    let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up = std::thread::spawn(move || copy(client, upstream));
    copy(u2, c2);
    let _ = up.join();
}

/// How many orders pebble created, from its own log ("Added order … to the db"): the
/// independent witness.
fn pebble_orders(pebble: &Pebble) -> usize {
    pebble.log().matches("Added order ").count()
}

#[test]
fn one_order_for_three_instances_validated_by_another_and_served_by_all() {
    let mut c = Cluster::start(&["a", "b", "c"], None, "http-01");
    c.wait_all_serving(Duration::from_secs(90));
    let serial = c.wait_same_serial(Duration::from_secs(10));
    assert_eq!(c.orders(), 1, "one order in all:\n{}", c.logs());
    assert_eq!(pebble_orders(&c.pebble), 1, "{}", c.pebble.log());
    let orderer = c.instances.iter().find(|i| i.orders() == 1).unwrap();
    let routed = c.balancer.routed();
    assert!(!routed.is_empty(), "pebble never validated");
    for (to, holder) in &routed {
        assert_eq!(holder, &orderer.name, "validation while the lock was free");
        assert_ne!(to, holder);
    }
    let answered_by = routed[0].0.clone();
    let answerer = c.instances.iter().find(|i| i.name == answered_by).unwrap();
    assert!(
        answerer.log().contains("path=/.well-known/acme-challenge/"),
        "{}",
        c.logs()
    );
    // Every instance holds the same key, locally.
    let key = c.stored_key(0);
    for i in 1..3 {
        assert_eq!(c.stored_key(i), key);
    }

    // A dump of Redis holds no private key in clear.
    let dump = c.redis.dump();
    let secret: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!secret.is_empty());
    for needle in [
        "PRIVATE KEY",
        "BEGIN CERTIFICATE",
        secret[0],
        secret[secret.len() - 1],
    ] {
        assert!(
            !dump.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{needle}` in the Redis dump"
        );
    }
    assert!(
        c.redis
            .cli(&["HLEN", "candado:acme"])
            .parse::<u32>()
            .unwrap()
            >= 2,
        "the account and the certificate are in Redis"
    );

    // candado status shows the cluster: the instances seen and the ticket generation.
    let status = super::status_text(c.instances[1].server());
    assert!(
        status.contains("cluster: this is instance b (Redis up)"),
        "{status}"
    );
    assert!(status.contains("instances seen: a, b, c"), "{status}");

    // Redis restarted empty: the instances publish what they hold instead of ordering again.
    let port = c.redis.port;
    c.redis.stop();
    c.redis = Redis::start_on(port);
    assert!(
        wait_until(Duration::from_secs(20), || {
            c.redis.cli(&["HLEN", "candado:acme"]) == "2"
        }),
        "nothing published again:\n{}",
        c.logs()
    );
    assert!(c.logs().contains("Redis had lost"), "{}", c.logs());
    assert_eq!(c.orders(), 1, "{}", c.logs());
    assert_eq!(c.redis.port, port);

    // Redis down: an instance started again serves its copy at once, without Redis.
    c.redis.stop();
    c.instances[2].server = None;
    c.run(2);
    assert_eq!(
        c.serial(2).as_deref(),
        Some(serial.as_str()),
        "{}",
        c.logs()
    );
    assert_eq!(c.orders(), 1, "{}", c.logs());
}

#[test]
fn when_the_lock_holder_dies_mid_order_another_instance_finishes_within_the_lease() {
    let mut c = Cluster::start(&["a", "b", "c"], None, "http-01");
    c.balancer.arm_kill();
    assert!(
        wait_until(Duration::from_secs(60), || c.balancer.killed().is_some()),
        "no validation reached the balancer:\n{}",
        c.logs()
    );
    let (dead, at) = c.balancer.killed().unwrap();
    let dead_slot = c.instances.iter().position(|i| i.name == dead).unwrap();
    assert_eq!(c.instances[dead_slot].orders(), 1, "{}", c.logs());
    // Its process is gone; keep its log but stop counting it as running.
    let mut gone = c.instances[dead_slot].server.take().unwrap();
    assert!(gone.wait_exit(Duration::from_secs(5)).is_some());
    // Until its lease runs out, `candado status` elsewhere names the dead holder.
    let survivor = c.running()[0];
    let holding = format!("ordering a certificate for site.test: instance {dead}");
    let mut status = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            status = super::status_text(c.instances[survivor].server());
            status.contains(&holding)
        }),
        "{status}"
    );
    // The lease is 30 s; the order after it takes seconds.
    c.wait_all_serving(Duration::from_secs(60));
    let waited = at.elapsed();
    assert!(waited < Duration::from_secs(55), "took {waited:?}");
    c.wait_same_serial(Duration::from_secs(10));
    let finished: Vec<&Instance> = c
        .instances
        .iter()
        .filter(|i| i.log().contains("ACME certificate obtained and now served"))
        .collect();
    assert_eq!(finished.len(), 1, "{}", c.logs());
    assert_ne!(finished[0].name, dead);
    assert!(gone.log().contains("ACME order: "));
    // One account for the cluster: the dead holder's, published as soon as it registered.
    assert!(gone.log().contains("ACME account: registered"));
    assert!(
        finished[0]
            .log()
            .contains("ACME account: using the stored account"),
        "{}",
        c.logs()
    );
}

#[test]
fn a_renewal_by_one_instance_reaches_the_others_without_a_restart() {
    // 30-second certificates: renewed when a third of their life is left. TLS-ALPN-01 this
    // time: the instance the CA reaches makes its own validation certificate.
    let mut c = Cluster::start(&["a", "b", "c"], Some(30), "tls-alpn-01");
    c.wait_all_serving(Duration::from_secs(90));
    let first = c.wait_same_serial(Duration::from_secs(10));
    let pids: Vec<u32> = c.instances.iter().map(|i| i.server().pid()).collect();
    let renewed = wait_until(Duration::from_secs(60), || {
        c.running()
            .iter()
            .any(|i| c.serial(*i).is_some_and(|s| s != first))
    });
    assert!(renewed, "no renewal:\n{}", c.logs());
    let second = c.wait_same_serial(Duration::from_secs(10));
    assert_ne!(second, first);
    let now: Vec<u32> = c.instances.iter().map(|i| i.server().pid()).collect();
    assert_eq!(pids, now, "no instance restarted");
    // One order per certificate, whichever instance ran it.
    let renewals = c.orders();
    assert!(renewals >= 2, "{}", c.logs());
    assert_eq!(renewals, pebble_orders(&c.pebble), "{}", c.pebble.log());
    assert!(
        c.logs()
            .contains("ACME certificate from the store now served"),
        "{}",
        c.logs()
    );
    let routed = c.balancer.routed();
    assert!(!routed.is_empty(), "pebble never validated");
    assert!(routed.iter().all(|(to, holder)| to != holder), "{routed:?}");
    assert!(
        c.logs()
            .contains("challenge: tls-alpn-01 for site.test is ready")
    );
}
