//! A real ACME CA for the tests: Debian's pebble, with pebble-challtestsrv as its DNS server
//! so that every name resolves to 127.0.0.1. Each test starts its own pair on free ports,
//! pointed at the ports where candado will answer the challenges.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::pki::TestPki;

pub struct Pebble {
    /// The CA of pebble's own HTTPS API (give it to candado as `acme.ca`).
    pub api: TestPki,
    pub directory: String,
    management: u16,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Where pebble's validator connects for HTTP-01 and TLS-ALPN-01.
    pub http_port: u16,
    pub tls_port: u16,
    /// Lifetime of issued certificates (pebble's default: 5 years).
    pub validity_secs: Option<u64>,
    /// External Account Binding keys required: (kid, base64url HMAC key).
    pub eab: Option<(String, String)>,
    /// Keep pebble's own defaults: 5% of nonces rejected, random validation delays (capped
    /// at this many seconds), to prove retries and polling.
    pub unreliable: Option<u32>,
}

impl Options {
    pub fn ports(http_port: u16, tls_port: u16) -> Options {
        Options {
            http_port,
            tls_port,
            validity_secs: None,
            eab: None,
            unreliable: None,
        }
    }
}

impl Pebble {
    pub fn start(o: Options) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let api = TestPki::new();
        let leaf = api.leaf("pebble-api", &["localhost", "127.0.0.1"]);
        let (listen, management, dns) = (free_port(), free_port(), free_port());
        let mut config = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": leaf.cert,
            "privateKey": leaf.key,
            "httpPort": o.http_port,
            "tlsPort": o.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": o.eab.is_some(),
        });
        if let Some(v) = o.validity_secs {
            config["certificateValidityPeriod"] = v.into();
        }
        if let Some((kid, key)) = &o.eab {
            config["externalAccountMACKeys"] = serde_json::json!({ kid: key });
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(
            &config_path,
            serde_json::json!({ "pebble": config }).to_string(),
        )
        .unwrap();
        let dns_addr = format!("127.0.0.1:{dns}");
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args([
                "-dns01",
                &dns_addr,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble; scripts/test installs it)");
        let mut cmd = Command::new("pebble");
        cmd.args(["-config", config_path.to_str().unwrap()])
            .args(["-dnsserver", &dns_addr, "-strict", "false"])
            .stdout(log("pebble.log"))
            .stderr(Stdio::null());
        match o.unreliable {
            Some(max_sleep) => cmd.env("PEBBLE_VA_SLEEPTIME", max_sleep.to_string()),
            None => cmd
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0"),
        };
        let pebble = cmd.spawn().expect("pebble (Debian package)");
        let p = Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            api,
            management,
            children: vec![dns_server, pebble],
            dir,
        };
        p.wait_up();
        p
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.api_get(&self.directory).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pebble did not start:\n{}", self.log());
    }

    /// GET on pebble's API (trusting its API CA), the body if the status was 2xx.
    fn api_get(&self, url: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", "--cacert"])
            .arg(&self.api.ca_path)
            .arg(url)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn management(&self, path: &str) -> String {
        let url = format!("https://127.0.0.1:{}{path}", self.management);
        self.api_get(&url)
            .unwrap_or_else(|| panic!("pebble management {path} failed"))
    }

    /// A file with pebble's issuing root and intermediate (new at every start): what a
    /// client trusts to verify issued certificates.
    pub fn trust_file(&self) -> PathBuf {
        let path = self.dir.path().join("pebble-roots.pem");
        let pem = format!(
            "{}{}",
            self.management("/roots/0"),
            self.management("/intermediates/0")
        );
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// Only the root, for `openssl verify -CAfile` with `-untrusted` intermediates.
    pub fn root_file(&self) -> PathBuf {
        let path = self.dir.path().join("pebble-root.pem");
        std::fs::write(&path, self.management("/roots/0")).unwrap();
        path
    }

    /// pebble's view of a certificate: "Valid" or "Revoked".
    pub fn cert_status(&self, serial_hex: &str) -> String {
        let body = self.management(&format!("/cert-status-by-serial/{serial_hex}"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["Status"].as_str().unwrap_or_default().to_owned()
    }

    pub fn api_ca(&self) -> &std::path::Path {
        &self.api.ca_path
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Pebble {
    /// Stops the CA (to see what candado does when its CA is gone).
    pub fn stop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}
