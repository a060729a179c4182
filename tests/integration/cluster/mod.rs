//! Issue 21: several candado instances sharing session-ticket keys through a real
//! `redis-server` (a child process per test, on its own port, nothing saved to disk). A ticket
//! one instance issues is resumed by another, checked with `openssl s_client -sess_out` and
//! `-sess_in`; Redis going away, coming back and coming back empty; the shared key. The ACME
//! half (one account and certificate for all, against pebble) is in `acme.rs`.

mod acme;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::support::free_port;
use crate::support::pki::{Leaf, TestPki};
use crate::support::server::{BIN, Candado, run_to_exit};
use crate::support::tcp::wait_until;

/// A `redis-server` child on 127.0.0.1, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    /// How `redis-cli` reaches it (`--tls --cacert CA` for a TLS one).
    cli_args: Vec<String>,
    _dir: TempDir,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_on(free_port())
    }

    fn start_on(port: u16) -> Redis {
        Redis::start_with(port, &[], &[])
    }

    /// With extra `redis-server` arguments (e.g. `--requirepass`); `cli` then has to
    /// authenticate, so readiness is the port answering at all.
    fn start_with(port: u16, extra: &[&str], cli_args: &[&str]) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install -y redis-server)");
        let redis = Redis {
            child,
            port,
            cli_args: cli_args.iter().map(|a| a.to_string()).collect(),
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || {
                let answer = redis.cli(&["PING"]);
                answer == "PONG" || answer.starts_with("NOAUTH")
            }),
            "redis-server did not start on port {port}"
        );
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli -p PORT ARGS…`, its output trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(&self.cli_args)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Redis {
    /// Kills the server (its data goes with it: nothing is saved to disk).
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything Redis holds, as `redis-cli --rdb` writes it.
    fn dump(&self) -> Vec<u8> {
        let file = self._dir.path().join("dump-for-test.rdb");
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .arg("--rdb")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&file).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A new shared key from `candado cluster keygen`.
fn keygen() -> String {
    let out = Command::new(BIN)
        .args(["cluster", "keygen"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What every instance serves: the same site, certificate and cluster, each on its own port.
struct Site {
    pki: TestPki,
    leaf: Leaf,
    root: TempDir,
}

impl Site {
    fn new() -> Site {
        let pki = TestPki::new();
        let leaf = pki.leaf("site", &["test.example"]);
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), "hello from the cluster\n").unwrap();
        Site { pki, leaf, root }
    }

    fn yaml(&self, cluster: &str) -> String {
        format!(
            "{cluster}\nsites:\n  - names: [test.example]\n    listen: 127.0.0.1:0\n    certificate: {{cert: {}, key: {}}}\n    root: {}\n",
            self.leaf.cert.display(),
            self.leaf.key.display(),
            self.root.path().display()
        )
    }

    /// An instance in the cluster on `redis` with `key`, named `name`, with an admin
    /// listener on a free loopback port.
    fn instance(&self, redis: &str, key: &str, name: &str) -> Candado {
        let yaml = self.yaml(&format!(
            "cluster: {{redis: '{redis}', instance: {name}}}\nadmin: 127.0.0.1:0"
        ));
        start(&yaml, &[("CANDADO_CLUSTER_KEY", key)])
    }
}

fn start(yaml: &str, env: &[(&str, &str)]) -> Candado {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("candado.yaml");
    std::fs::write(&config, yaml).unwrap();
    let cwd = dir.path().to_owned();
    Candado::with_args_env(
        &["serve", "-c", config.to_str().unwrap()],
        env,
        &cwd,
        dir,
        false,
    )
}

/// A TLS 1.3 connection with `openssl s_client` that asks for `/` and saves its session to
/// `sess_out` (or offers `sess_in`); true when the handshake resumed the offered session.
fn handshake(c: &Candado, ca: &Path, sess_in: Option<&Path>, sess_out: Option<&Path>) -> bool {
    let port = c.https.port().to_string();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-servername",
            "test.example",
            "-alpn",
            "http/1.1",
            "-tls1_3",
        ])
        .args(["-verify_return_error", "-ign_eof", "-CAfile"])
        .arg(ca);
    if let Some(p) = sess_in {
        cmd.arg("-sess_in").arg(p);
    }
    if let Some(p) = sess_out {
        cmd.arg("-sess_out").arg(p);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Reading the answer to the end also reads the tickets sent after the handshake.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = wait_output(child, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hello from the cluster"),
        "no page from {port}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.contains("Reused, TLSv1.3")
}

fn wait_output(mut child: Child, timeout: Duration) -> std::process::Output {
    let done = wait_until(timeout, || child.try_wait().unwrap().is_some());
    if !done {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(done, "openssl s_client did not finish");
    out
}

/// A session from `from`, offered to `to` until it resumes there (the instances poll the key
/// ring every two seconds), for at most 15 s; a fresh session each try.
fn resumes_across(from: &Candado, to: &Candado, ca: &Path, tmp: &Path) -> bool {
    let sess: PathBuf = tmp.join("sess.pem");
    wait_until(Duration::from_secs(15), || {
        handshake(from, ca, None, Some(&sess));
        handshake(to, ca, Some(&sess), None)
    })
}

#[test]
fn a_session_ticket_from_one_instance_resumes_on_the_other_two() {
    let redis = Redis::start();
    let key = keygen();
    let site = Site::new();
    let a = site.instance(&redis.url(), &key, "a");
    let b = site.instance(&redis.url(), &key, "b");
    let c = site.instance(&redis.url(), &key, "c");
    let tmp = tempfile::tempdir().unwrap();
    let ca = &site.pki.ca_path;
    assert!(
        resumes_across(&a, &b, ca, tmp.path()),
        "b did not resume a's session:\n{}\n{}",
        a.log(),
        b.log()
    );
    // Once the ring is shared, every instance resumes every other's tickets at once.
    let sess = tmp.path().join("from-a.pem");
    assert!(!handshake(&a, ca, None, Some(&sess)));
    assert!(handshake(&b, ca, Some(&sess), None));
    assert!(handshake(&c, ca, Some(&sess), None), "c:\n{}", c.log());
    let from_c = tmp.path().join("from-c.pem");
    handshake(&c, ca, None, Some(&from_c));
    assert!(handshake(&a, ca, Some(&from_c), None));

    // An instance outside the cluster, with the same site and certificate, does not.
    let alone = start(&site.yaml(""), &[]);
    assert!(!handshake(&alone, ca, Some(&sess), None));

    // The ring in Redis is sealed: the 48 bytes of the first ring (generation, time, one key)
    // behind a 12-byte nonce and followed by a 16-byte tag; it opens only with the cluster
    // key (the next test).
    let stored = redis.cli(&["--no-raw", "STRLEN", "candado:tickets"]);
    assert_eq!(stored, "(integer) 76", "the stored ring's length");
    let logs = a.log() + &b.log() + &c.log();
    assert!(
        logs.contains("session-ticket keys now at generation 1"),
        "{logs}"
    );
    assert!(!logs.contains(&key), "the shared key was logged");

    // The log and /metrics say who is in the cluster and which key generation is in use.
    assert!(
        c.wait_log("cluster: instances seen: a, b, c", Duration::from_secs(10)),
        "{}",
        c.log()
    );
    let metrics = scrape(&c);
    for line in [
        "candado_cluster_redis_up 1",
        "candado_cluster_instances 3",
        "candado_cluster_ticket_key_generation 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }
    // Outside a cluster, /metrics has no cluster section.
    let alone = start(&format!("admin: 127.0.0.1:0\n{}", site.yaml("")), &[]);
    assert!(!scrape(&alone).contains("candado_cluster_"));
}

#[test]
fn the_ticket_key_rotates_on_schedule_and_the_instances_rotate_together() {
    let redis = Redis::start();
    let key = keygen();
    let site = Site::new();
    let ca = &site.pki.ca_path;
    let yaml = site.yaml(&format!(
        "cluster: {{redis: '{}', ticket_rotation: 3s}}",
        redis.url()
    ));
    let env = [("CANDADO_CLUSTER_KEY", key.as_str())];
    let a = start(&yaml, &env);
    let b = start(&yaml, &env);
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        resumes_across(&a, &b, ca, tmp.path()),
        "{}\n{}",
        a.log(),
        b.log()
    );
    let early = tmp.path().join("early.pem");
    handshake(&a, ca, None, Some(&early));

    // Two rotations later both have moved on together, and the early ticket is refused.
    let moved_on = |c: &Candado| c.wait_log("now at generation 4", Duration::from_secs(20));
    assert!(moved_on(&a) && moved_on(&b), "{}\n{}", a.log(), b.log());
    assert!(!handshake(&b, ca, Some(&early), None));
    assert!(
        resumes_across(&a, &b, ca, tmp.path()),
        "{}\n{}",
        a.log(),
        b.log()
    );
}

#[test]
fn an_instance_with_another_key_does_not_take_the_ring_and_says_why() {
    let redis = Redis::start();
    let site = Site::new();
    let a = site.instance(&redis.url(), &keygen(), "a");
    let stranger = site.instance(&redis.url(), &keygen(), "stranger");
    assert!(
        stranger.wait_log(
            "do not open with this instance's cluster key",
            Duration::from_secs(15)
        ),
        "{}",
        stranger.log()
    );
    let tmp = tempfile::tempdir().unwrap();
    let sess = tmp.path().join("a.pem");
    let ca = &site.pki.ca_path;
    handshake(&a, ca, None, Some(&sess));
    assert!(!handshake(&stranger, ca, Some(&sess), None));
    // Said once, not at every poll.
    std::thread::sleep(Duration::from_secs(5));
    let said = stranger.log().matches("do not open").count();
    assert_eq!(said, 1, "{}", stranger.log());
}

#[test]
fn instances_serve_through_a_redis_outage_and_share_again_when_it_is_back_even_empty() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let key = keygen();
    let site = Site::new();
    let ca = &site.pki.ca_path;
    let tmp = tempfile::tempdir().unwrap();

    // Redis down at start: the instance starts, serves, and says so once.
    let a = site.instance(&url, &key, "a");
    assert!(
        a.wait_log("Redis is unreachable", Duration::from_secs(10)),
        "{}",
        a.log()
    );
    assert!(!handshake(&a, ca, None, None));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        a.log().matches("Redis is unreachable").count(),
        1,
        "{}",
        a.log()
    );

    // Redis up: a publishes a ring and b, started now, resumes a's tickets.
    let redis = Redis::start_on(port);
    assert!(
        a.wait_log("Redis is reachable again", Duration::from_secs(10)),
        "{}",
        a.log()
    );
    let b = site.instance(&url, &key, "b");
    assert!(
        resumes_across(&a, &b, ca, tmp.path()),
        "{}\n{}",
        a.log(),
        b.log()
    );
    let before = tmp.path().join("before.pem");
    handshake(&a, ca, None, Some(&before));

    // Redis gone: both still serve, and still resume each other's tickets.
    drop(redis);
    assert!(
        b.wait_log("Redis is unreachable", Duration::from_secs(10)),
        "{}",
        b.log()
    );
    assert!(handshake(&b, ca, Some(&before), None));

    // Redis back empty: the ring held is published again rather than replaced, so a third
    // instance resumes a ticket issued before the restart.
    let redis = Redis::start_on(port);
    assert!(
        wait_until(Duration::from_secs(10), || redis
            .cli(&["EXISTS", "candado:tickets"])
            == "1"),
        "nobody re-published the ring"
    );
    let c = site.instance(&url, &key, "c");
    assert!(
        wait_until(Duration::from_secs(15), || handshake(
            &c,
            ca,
            Some(&before),
            None
        )),
        "{}",
        c.log()
    );
    let logs = a.log() + &b.log() + &c.log();
    assert!(
        !logs.contains("generation 2"),
        "the ring was rotated instead:\n{logs}"
    );
}

#[test]
fn redis_credentials_come_from_the_environment_and_the_url_from_a_flag() {
    let password = "correct-horse-battery-staple";
    let redis = Redis::start_with(free_port(), &["--requirepass", password], &[]);
    let key = keygen();
    let site = Site::new();
    let ca = &site.pki.ca_path;
    let env = [
        ("CANDADO_CLUSTER_KEY", key.as_str()),
        ("CANDADO_REDIS_PASSWORD", password),
    ];
    // The file names a Redis nobody listens on: the flag overrides it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("candado.yaml");
    std::fs::write(
        &config,
        site.yaml("cluster: {redis: 'redis://127.0.0.1:1', key_prefix: shop}"),
    )
    .unwrap();
    let with_flag = || {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().to_owned();
        let url = redis.url();
        let args = [
            "serve",
            "-c",
            config.to_str().unwrap(),
            "--cluster-redis",
            &url,
        ];
        Candado::with_args_env(&args, &env, &cwd, dir, false)
    };
    let a = with_flag();
    let b = with_flag();
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        resumes_across(&a, &b, ca, tmp.path()),
        "{}\n{}",
        a.log(),
        b.log()
    );
    let logs = a.log() + &b.log();
    assert!(
        !logs.contains(password),
        "the Redis password was logged:\n{logs}"
    );
    let prefixed = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "-a",
            password,
            "--no-auth-warning",
        ])
        .args(["EXISTS", "shop:tickets"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&prefixed.stdout).trim(), "1");

    // Without the password Redis refuses the instance, which says so and serves on alone.
    let alone = start(
        &site.yaml(&format!(
            "cluster: {{redis: '{}', instance: alone}}",
            redis.url()
        )),
        &env[..1],
    );
    assert!(
        alone.wait_log("Redis is unreachable", Duration::from_secs(10)),
        "{}",
        alone.log()
    );
    let sess = tmp.path().join("a.pem");
    handshake(&a, ca, None, Some(&sess));
    assert!(!handshake(&alone, ca, Some(&sess), None));
}

#[test]
fn without_a_shared_key_a_cluster_refuses_to_start_saying_how_to_make_one() {
    let site = Site::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("candado.yaml");
    std::fs::write(
        &config,
        site.yaml("cluster: {redis: 'redis://127.0.0.1:1'}"),
    )
    .unwrap();
    let args = ["serve", "-c", config.to_str().unwrap()];
    let (status, text, _) = run_to_exit(&args, dir.path());
    assert!(!status.success());
    assert!(text.contains("candado cluster keygen"), "{text}");
    assert!(text.contains("CANDADO_CLUSTER_KEY"), "{text}");

    // A key file others can read is refused too; at 0600 the instance starts.
    let key_file = dir.path().join("cluster.key");
    std::fs::write(&key_file, keygen()).unwrap();
    let yaml = site.yaml(&format!(
        "cluster: {{redis: 'redis://127.0.0.1:1', key_file: {}}}",
        key_file.display()
    ));
    std::fs::write(&config, &yaml).unwrap();
    set_mode(&key_file, 0o644);
    let (status, text, _) = run_to_exit(&args, dir.path());
    assert!(!status.success());
    assert!(text.contains("chmod 600"), "{text}");
    set_mode(&key_file, 0o600);
    let c = start(&yaml, &[]);
    assert!(c.wait_log("sharing session-ticket keys", Duration::from_secs(5)));
}

#[test]
fn tls_to_redis_is_verified_against_the_given_ca() {
    let redis_pki = TestPki::named("redis test root");
    let leaf = redis_pki.leaf("redis", &["127.0.0.1"]);
    let port = free_port().to_string();
    let (cert, key, ca) = (
        leaf.cert.to_str().unwrap(),
        leaf.key.to_str().unwrap(),
        redis_pki.ca_path.to_str().unwrap(),
    );
    let redis = Redis::start_with(
        port.parse().unwrap(),
        &[
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-auth-clients",
            "no",
        ],
        &["--tls", "--cacert", ca],
    );
    let url = format!("rediss://127.0.0.1:{port}");
    let key = keygen();
    let site = Site::new();
    let cluster = |ca: &Path| format!("cluster: {{redis: '{url}', ca: {}}}", ca.display());
    let env = [("CANDADO_CLUSTER_KEY", key.as_str())];
    let a = start(&site.yaml(&cluster(&redis_pki.ca_path)), &env);
    let b = start(&site.yaml(&cluster(&redis_pki.ca_path)), &env);
    let tmp = tempfile::tempdir().unwrap();
    let site_ca = &site.pki.ca_path;
    assert!(
        resumes_across(&a, &b, site_ca, tmp.path()),
        "{}\n{}",
        a.log(),
        b.log()
    );
    assert_eq!(redis.cli(&["EXISTS", "candado:tickets"]), "1");

    // Another CA: Redis's certificate is refused, so this instance never gets the ring.
    let other = TestPki::named("not redis's root");
    let c = start(&site.yaml(&cluster(&other.ca_path)), &env);
    assert!(
        c.wait_log("Redis is unreachable", Duration::from_secs(10)),
        "{}",
        c.log()
    );
    let sess = tmp.path().join("a.pem");
    handshake(&a, site_ca, None, Some(&sess));
    assert!(!handshake(&c, site_ca, Some(&sess), None));
}

#[test]
fn a_cluster_ca_is_only_for_tls_to_redis() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("candado.yaml");
    std::fs::write(
        &config,
        "cluster: {redis: 'redis://127.0.0.1:1', ca: ca.pem}\nsites:\n  - names: [a.test]\n",
    )
    .unwrap();
    let (status, text, _) = run_to_exit(&["config", "check", config.to_str().unwrap()], dir.path());
    assert!(!status.success());
    assert!(
        text.contains("cluster.ca: a CA is for TLS to Redis"),
        "{text}"
    );
}

/// The instance's admin listener (its `listening kind=admin` line).
fn admin_addr(c: &Candado) -> String {
    assert!(
        c.wait_log("listening kind=admin", Duration::from_secs(10)),
        "{}",
        c.log()
    );
    let log = c.log();
    let marker = "listening kind=admin addr=";
    let rest = &log[log.find(marker).unwrap() + marker.len()..];
    rest.split_whitespace().next().unwrap().to_owned()
}

/// What `candado status` prints for the instance.
fn status_text(c: &Candado) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg(BIN)
        .args(["status", "--admin", &admin_addr(c)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `/metrics` from the instance's admin listener.
fn scrape(c: &Candado) -> String {
    let addr = admin_addr(c);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{addr}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
