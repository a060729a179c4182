//! `--lan` (issue 20): a phone on the same network scans, installs the profile and opens the
//! site. The "phone" is a client in its own network namespace, joined to this machine by a
//! veth pair with private addresses (a test network of our own: the host's real interfaces are
//! never used, since `CANDADO_LAN_INTERFACES` names the veth). It trusts nothing but the CA it
//! downloads from the onboarding page. Where namespaces are unavailable (not root), the tests
//! say SKIPPED and pass.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::server::{BIN, Candado};
use crate::support::{free_port, judges, output_text, upstream};

/// A network namespace joined to this one by a veth pair: 10.X.N.1 here, 10.X.N.2 there.
/// Deleted when dropped (the veth pair goes with it).
struct PhoneNet {
    ns: String,
    host_if: String,
    peer_if: String,
    prefix: String,
}

static NEXT_NET: AtomicU32 = AtomicU32::new(1);

impl PhoneNet {
    /// `None` (after saying SKIPPED) where namespaces cannot be made.
    fn create(test: &str) -> Option<PhoneNet> {
        let (pid, n) = (std::process::id(), NEXT_NET.fetch_add(1, Ordering::Relaxed));
        let net = PhoneNet {
            ns: format!("candado-lan-{pid}-{n}"),
            host_if: format!("cl{}h{n}", pid % 100_000),
            peer_if: format!("cl{}p{n}", pid % 100_000),
            prefix: format!("10.{}.{n}", 100 + pid % 100),
        };
        let peer_if = net.peer_if.clone();
        if let Err(e) = ip(&["netns", "add", &net.ns]) {
            eprintln!("SKIPPED {test}: network namespaces are unavailable here ({e})");
            return None;
        }
        let (host, peer) = (net.host_ip(1), format!("{}/24", net.host_ip(2)));
        for step in [
            vec![
                "link",
                "add",
                &net.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer_if,
            ],
            vec!["link", "set", &peer_if, "netns", &net.ns],
            vec!["addr", "add", &format!("{host}/24"), "dev", &net.host_if],
            vec!["link", "set", &net.host_if, "up"],
            vec!["-n", &net.ns, "addr", "add", &peer, "dev", &peer_if],
            vec!["-n", &net.ns, "link", "set", &peer_if, "up"],
            vec!["-n", &net.ns, "link", "set", "lo", "up"],
        ] {
            ip(&step).unwrap_or_else(|e| panic!("ip {}: {e}", step.join(" ")));
        }
        net.settle();
        Some(net)
    }

    /// Waits (at most 5 s) until neither end has an IPv6 address still in duplicate address
    /// detection: its end is a network change, and Chromium aborts a page load it overlaps
    /// with `ERR_NETWORK_CHANGED`.
    fn settle(&self) {
        let tentative = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            !String::from_utf8_lossy(&out.stdout).trim().is_empty()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && (tentative(&["-n", &self.ns, "-6", "addr", "show", "tentative"])
                || tentative(&["-6", "addr", "show", "dev", &self.host_if, "tentative"]))
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn host_ip(&self, last: u8) -> String {
        format!("{}.{last}", self.prefix)
    }

    /// Moves both ends to another /24 (as joining another Wi-Fi does); returns this side's
    /// new address.
    fn renumber(&mut self) -> String {
        let (old_host, old_peer) = (self.host_ip(1), self.host_ip(2));
        let mut octets: Vec<u32> = self.prefix.split('.').map(|o| o.parse().unwrap()).collect();
        octets[2] += 128;
        self.prefix = format!("{}.{}.{}", octets[0], octets[1], octets[2]);
        let (host, peer) = (self.host_ip(1), self.host_ip(2));
        for step in [
            vec!["addr", "add", &format!("{host}/24"), "dev", &self.host_if],
            vec![
                "addr",
                "del",
                &format!("{old_host}/24"),
                "dev",
                &self.host_if,
            ],
            vec![
                "-n",
                &self.ns,
                "addr",
                "add",
                &format!("{peer}/24"),
                "dev",
                &self.peer_if,
            ],
            vec![
                "-n",
                &self.ns,
                "addr",
                "del",
                &format!("{old_peer}/24"),
                "dev",
                &self.peer_if,
            ],
        ] {
            ip(&step).unwrap_or_else(|e| panic!("ip {}: {e}", step.join(" ")));
        }
        host
    }

    /// Runs `args` inside the namespace (the phone), bounded to 60 s.
    fn phone(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["60", "ip", "netns", "exec", &self.ns])
            .args(args)
            .output()
            .unwrap()
    }

    /// `curl` on the phone, trusting only `ca`: (status code, body).
    fn curl(&self, ca: &Path, url: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            ca.to_str().unwrap(),
            "-w",
            "\n%{http_code}",
        ];
        args.extend_from_slice(extra);
        args.push(url);
        let out = self.phone(&args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            code.to_owned(),
            format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// Downloads `url` on the phone with no trust at all (plain HTTP) into `to`.
    fn download(&self, url: &str, to: &Path) {
        let out = self.phone(&[
            "curl",
            "-sSf",
            "--max-time",
            "10",
            "-o",
            to.to_str().unwrap(),
            url,
        ]);
        assert!(out.status.success(), "{url}: {}", output_text(&out));
    }
}

impl Drop for PhoneNet {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(()),
        false => Err(output_text(&out).trim().to_owned()),
    }
}

fn python() -> PathBuf {
    crate::python_apps::python()
}

fn app_script(name: &str) -> String {
    format!("{}/tests/apps/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `candado proxy --to APP --lan` exposed on the veth only, with the HTTPS and onboarding
/// ports chosen here: (server, HTTPS port, onboarding port).
fn proxy_on_lan(net: &PhoneNet, extra: &[&str]) -> (Candado, u16, u16) {
    let app = upstream::start();
    let (https, page) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_owned();
    let mut args = vec![
        "proxy".to_owned(),
        "--to".into(),
        app.addr.to_string(),
        "--from".into(),
        format!("localhost:{https}"),
        "--http-port".into(),
        "0".into(),
        "--lan".into(),
        "--lan-http-port".into(),
        page.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Candado::with_args_env(
        &args,
        &[("CANDADO_LAN_INTERFACES", &net.host_if)],
        &cwd,
        dir,
        false,
    );
    assert!(
        server.wait_log("--lan exposes the site on", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    (server, https, page)
}

/// The host name candado announces (from its log line "announcing NAME.local").
fn announced_host(server: &Candado) -> String {
    assert!(
        server.wait_log("over mDNS", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let line = server
        .log_line(&["announcing", ".local over mDNS"])
        .unwrap();
    let after = line.split("announcing ").nth(1).unwrap();
    after.split(".local").next().unwrap().to_owned()
}

#[test]
fn a_phone_on_the_lan_installs_the_ca_from_the_onboarding_page_and_opens_the_site_by_address_and_by_local_name()
 {
    let Some(net) = PhoneNet::create("lan onboarding") else {
        return;
    };
    let (server, https, page) = proxy_on_lan(&net, &[]);
    let ip = net.host_ip(1);
    // Exactly the veth is exposed, and the log says so.
    let exposed = (server.log().lines())
        .filter(|l| l.contains("--lan exposes"))
        .count();
    assert_eq!(exposed, 1, "{}", server.log());
    assert!(
        server
            .log_line(&["--lan exposes the site on", &net.host_if, &ip])
            .is_some()
    );

    // Step 1: the onboarding page, on plain HTTP, with the fingerprint the terminal shows.
    let phone = tempfile::tempdir().unwrap();
    let html = phone.path().join("page.html");
    net.download(&format!("http://{ip}:{page}/"), &html);
    let html = std::fs::read_to_string(html).unwrap();
    let fingerprint = server
        .log_line(&["SHA-256 fingerprint is"])
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(html.contains(&fingerprint), "{html}");
    assert!(html.contains(&format!("https://{ip}:{https}/")), "{html}");
    let ca = phone.path().join("candado-lan-ca.crt");
    net.download(&format!("http://{ip}:{page}/candado-lan-ca.crt"), &ca);
    let cer = phone.path().join("candado-lan-ca.cer");
    net.download(&format!("http://{ip}:{page}/candado-lan-ca.cer"), &cer);
    let profile = phone.path().join("candado.mobileconfig");
    net.download(
        &format!("http://{ip}:{page}/candado-lan-ca.mobileconfig"),
        &profile,
    );
    // What was downloaded is what the terminal's fingerprint names.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        output_text(&out).contains(&fingerprint),
        "{}",
        output_text(&out)
    );

    // The iOS profile: a well-formed plist whose root payload carries the same certificate.
    let check = r#"import plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
c = p["PayloadContent"][0]
assert p["PayloadType"] == "Configuration", p
assert c["PayloadType"] == "com.apple.security.root", c
assert c["PayloadContent"] == open(sys.argv[2], "rb").read()
print("profile ok", p["PayloadDisplayName"])"#;
    let out = Command::new(python())
        .args(["-c", check])
        .arg(&profile)
        .arg(&cer)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));

    // Step 3: the site by address, trusting only the downloaded CA, with curl and Python.
    let (code, body) = net.curl(&ca, &format!("https://{ip}:{https}/from-the-phone"), &[]);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("/from-the-phone"), "{body}");
    let fetch = r#"import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
with urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10) as r:
    print(r.status, r.read().decode())"#;
    let url = format!("https://{ip}:{https}/python");
    let py = python();
    let out = net.phone(&[
        py.to_str().unwrap(),
        "-c",
        fetch,
        &url,
        ca.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).starts_with("200"),
        "{}",
        output_text(&out)
    );

    // By name: HOST.local found over mDNS from the phone's network, then opened by name.
    let host = announced_host(&server);
    let out = net.phone(&[py.to_str().unwrap(), &app_script("lan_mdns.py"), &host, "5"]);
    assert!(out.status.success(), "mDNS: {}", output_text(&out));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["addresses"][0], ip, "{answer}");
    assert_eq!(answer["service"]["port"], https, "{answer}");
    let name = format!("{host}.local");
    let (code, body) = net.curl(
        &ca,
        &format!("https://{name}:{https}/by-name"),
        &["--resolve", &format!("{name}:{https}:{ip}")],
    );
    assert_eq!(code, "200", "{body}");

    // The onboarding page is read-only, and serves nothing but the CA and its steps.
    let (code, _) = net.curl(&ca, &format!("http://{ip}:{page}/"), &["-X", "POST"]);
    assert_eq!(code, "405");
    let (code, _) = net.curl(&ca, &format!("http://{ip}:{page}/from-the-phone"), &[]);
    assert_eq!(code, "404");
    // The CA's key never leaves the machine.
    for path in ["/ca.key", "/lan-ca/ca.key", "/candado-lan-ca.key"] {
        let (code, _) = net.curl(&ca, &format!("http://{ip}:{page}{path}"), &[]);
        assert_eq!(code, "404", "{path}");
    }
    for file in [&ca, &cer, &profile] {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("PRIVATE KEY"),
            "{}",
            file.display()
        );
    }
    // And the app is not on plain HTTP anywhere on the LAN.
    let (code, _) = net.curl(&ca, &format!("http://{ip}:{https}/"), &[]);
    assert_ne!(code, "200");
}

#[test]
fn an_address_change_on_the_lan_brings_a_fresh_certificate_without_a_restart() {
    let Some(mut net) = PhoneNet::create("lan address change") else {
        return;
    };
    let (server, https, page) = proxy_on_lan(&net, &["--no-mdns"]);
    let old = net.host_ip(1);
    let phone = tempfile::tempdir().unwrap();
    let ca = phone.path().join("ca.crt");
    net.download(&format!("http://{old}:{page}/candado-lan-ca.crt"), &ca);
    let (code, body) = net.curl(&ca, &format!("https://{old}:{https}/"), &[]);
    assert_eq!(code, "200", "{body}");

    // Another network: a new address on the interface, the old one gone.
    let new = net.renumber();
    assert!(
        server.wait_log_line(
            &["--lan exposes the site on", &new],
            Duration::from_secs(20)
        ),
        "{}",
        server.log()
    );
    let pid = server.pid();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, body) = loop {
        let (code, body) = net.curl(&ca, &format!("https://{new}:{https}/after"), &[]);
        if code == "200" || Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(code, "200", "the new address is covered: {body}");
    assert_eq!(server.pid(), pid, "no restart");
    // The served certificate names the new address and no longer the old one.
    let out = net.phone(&[
        "sh",
        "-c",
        &format!(
            "openssl s_client -connect {new}:{https} -CAfile {} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName",
            ca.display()
        ),
    ]);
    let san = output_text(&out);
    assert!(san.contains(&format!("IP Address:{new}")), "{san}");
    assert!(!san.contains(&format!("IP Address:{old}")), "{san}");
    assert!(
        server.wait_log("the addresses changed", Duration::from_secs(3)),
        "{}",
        server.log()
    );
}

/// Reads the QR codes candado draws on a terminal (under `script`, which gives it a pty) back
/// into module grids and decodes them.
#[test]
fn the_terminal_shows_qr_codes_that_decode_to_the_onboarding_and_https_urls() {
    let Some(net) = PhoneNet::create("lan QR codes") else {
        return;
    };
    let app = upstream::start();
    let (https, page) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "timeout 30 {BIN} proxy --to {} --from localhost:{https} --http-port 0 --lan --no-mdns --lan-http-port {page} 2>/dev/null",
        app.addr
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("CANDADO_DATA_DIR", dir.path().join("data"))
        .env("CANDADO_LAN_INTERFACES", &net.host_if)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) is installed");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while !text.contains("compare on the phone:\r\n") || !text.ends_with('\n') {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(t) => text = t,
            Err(_) => assert!(Instant::now() < deadline, "no QR codes printed:\n{text}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let ip = net.host_ip(1);
    let decoded = decode_terminal_qr_codes(&text.replace('\r', ""));
    assert_eq!(
        decoded,
        [
            format!("http://{ip}:{page}/"),
            format!("https://{ip}:{https}/")
        ],
        "{text}"
    );
}

/// Every block of lines drawn black on white (`ESC[30;47m … ESC[0m`), decoded as a QR code.
fn decode_terminal_qr_codes(text: &str) -> Vec<String> {
    let (on, off) = ("\x1b[30;47m", "\x1b[0m");
    let mut blocks: Vec<Vec<Vec<char>>> = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        match line.strip_prefix(on).and_then(|l| l.strip_suffix(off)) {
            Some(cells) => {
                if !in_block {
                    blocks.push(Vec::new());
                }
                blocks.last_mut().unwrap().push(cells.chars().collect());
                in_block = true;
            }
            None => in_block = false,
        }
    }
    blocks
        .iter()
        .map(|lines| {
            // Two module rows per line; the quiet zone (2 modules) is cut off.
            let mut rows: Vec<Vec<bool>> = Vec::new();
            for cells in lines {
                rows.push(cells.iter().map(|c| matches!(c, '█' | '▀')).collect());
                rows.push(cells.iter().map(|c| matches!(c, '█' | '▄')).collect());
            }
            let width = lines[0].len();
            let size = width - 4;
            let grid = rqrr::SimpleGrid::from_func(size, |x, y| rows[y + 2][x + 2]);
            let (_, content) = rqrr::Grid::new(grid).decode().expect("a readable QR code");
            content
        })
        .collect()
}

/// A certificate for a public name, forged with the LAN CA's own key, is refused by OpenSSL
/// and Chromium (webpki's refusal is `lan::ca`'s unit test); one for a `home.arpa` name from
/// the same CA is accepted, so the refusal is the constraints' doing.
#[test]
fn a_certificate_forged_outside_the_lan_ca_constraints_is_refused_by_openssl_and_chromium() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["ca", "lan"])
        .env("CANDADO_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("SHA-256 fingerprint"),
        "{}",
        output_text(&out)
    );
    let ca_dir = data.path().join("lan-ca");
    let ca_cert = ca_dir.join("ca.crt");
    let work = tempfile::tempdir().unwrap();
    let forged = forge(&ca_dir, work.path(), "bank.com");
    let allowed = forge(&ca_dir, work.path(), "printer.home.arpa");

    let verify = |leaf: &Path| {
        let out = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&ca_cert)
            .arg(leaf)
            .output()
            .unwrap();
        (out.status.success(), output_text(&out))
    };
    let (ok, text) = verify(&allowed.0);
    assert!(ok, "{text}");
    let (ok, text) = verify(&forged.0);
    assert!(!ok, "{text}");
    assert!(text.contains("subtree violation"), "{text}");

    // Chromium, trusting the LAN CA through its NSS database as a phone trusts it.
    let home = tempfile::tempdir().unwrap();
    let nssdb = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec![
            "-A",
            "-d",
            &db,
            "-t",
            "C,,",
            "-n",
            "candado-lan",
            "-i",
            ca_cert.to_str().unwrap(),
        ],
    ] {
        let out = Command::new("certutil").args(&args).output().unwrap();
        assert!(out.status.success(), "certutil: {}", output_text(&out));
    }
    let allowed_server = judges::openssl_server(&allowed.0, &allowed.1, &[]);
    let (dom, err) = chromium(
        home.path(),
        &format!("https://printer.home.arpa:{}/", allowed_server.port),
    );
    assert!(
        dom.contains("s_server"),
        "the allowed name loads: {dom}\n{err}"
    );
    let forged_server = judges::openssl_server(&forged.0, &forged.1, &[]);
    let (dom, err) = chromium(
        home.path(),
        &format!("https://bank.com:{}/", forged_server.port),
    );
    assert!(
        !dom.contains("s_server"),
        "the forged certificate was accepted: {dom}"
    );
    assert!(err.contains("ERR_CERT"), "{err}");
}

/// A leaf for `name` signed with the LAN CA's key: (cert file, key file).
fn forge(ca_dir: &Path, out: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (c, k) = (
        out.join(format!("{name}.crt")),
        out.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// Headless Chromium on `url` with `HOME=home`, every name mapped to 127.0.0.1: (DOM, stderr).
fn chromium(home: &Path, url: &str) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["60", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--host-resolver-rules=MAP * 127.0.0.1",
            "--dump-dom",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .arg(url)
        .env("HOME", home)
        .output()
        .expect("chromium is installed by scripts/test");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `lan: true` in a config file, with basic auth: the LAN gets the same credential check as
/// loopback, and a reload that drops it applies on the LAN too, without a restart.
#[test]
fn basic_auth_guards_the_lan_site_and_a_reload_applies_there_too() {
    let Some(net) = PhoneNet::create("lan basic auth") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), "private notes\n").unwrap();
    let hash = crate::auth::hash("s3cret");
    let yaml = |auth: &str| {
        format!(
            "sites:\n  - names: [localhost]\n    listen: 127.0.0.1:0\n    certificate: local\n    root: {}\n    lan: true\n{auth}",
            root.display()
        )
    };
    let config = dir.path().join("candado.yaml");
    let guarded =
        format!("    basic_auth:\n      - path: /\n        users:\n          alice: '{hash}'\n");
    std::fs::write(&config, yaml(&guarded)).unwrap();
    let page = free_port();
    let cwd = dir.path().to_owned();
    let server = Candado::with_args_env(
        &[
            "serve",
            "-c",
            config.to_str().unwrap(),
            "--no-mdns",
            "--lan-http-port",
            &page.to_string(),
        ],
        &[("CANDADO_LAN_INTERFACES", &net.host_if)],
        &cwd,
        tempfile::tempdir().unwrap(),
        false,
    );
    assert!(
        server.wait_log("--lan exposes the site on", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let (ip, https) = (net.host_ip(1), server.https.port());
    let phone = tempfile::tempdir().unwrap();
    let ca = phone.path().join("ca.crt");
    net.download(&format!("http://{ip}:{page}/candado-lan-ca.crt"), &ca);
    let url = format!("https://{ip}:{https}/");
    let (code, body) = net.curl(&ca, &url, &[]);
    assert_eq!(code, "401", "{body}");
    let (code, body) = net.curl(&ca, &url, &["-u", "alice:s3cret"]);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("private notes"), "{body}");

    std::fs::write(&config, yaml("")).unwrap();
    server.signal("HUP");
    assert!(
        server.wait_log("reloaded the configuration", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let (code, body) = loop {
        let (code, body) = net.curl(&ca, &url, &[]);
        if code == "200" || Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, "200", "{body}\n{}", server.log());
}

/// What the issue is for: a real browser on the phone's network, trusting only the LAN CA
/// (installed into its NSS database from the onboarding page's download), opens the site by
/// address and by `.local` name with no warning, as a secure context where the microphone API
/// (`navigator.mediaDevices.getUserMedia`) exists.
#[test]
fn chromium_on_the_lan_gets_a_secure_context_with_the_microphone_api_after_installing_the_ca() {
    let Some(net) = PhoneNet::create("lan chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>mic</title><body><script>document.body.textContent = 'secure-context=' + window.isSecureContext + ' mic-api=' + typeof (navigator.mediaDevices && navigator.mediaDevices.getUserMedia);</script></body>\n",
    )
    .unwrap();
    let (https, page) = (free_port(), free_port());
    let cwd = dir.path().to_owned();
    let server = Candado::with_args_env(
        &[
            "serve",
            "-s",
            root.to_str().unwrap(),
            "-p",
            &https.to_string(),
            "--http-port",
            "0",
            "--lan",
            "--no-mdns",
            "--lan-http-port",
            &page.to_string(),
        ],
        &[("CANDADO_LAN_INTERFACES", &net.host_if)],
        &cwd,
        tempfile::tempdir().unwrap(),
        false,
    );
    assert!(
        server.wait_log("--lan exposes the site on", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let ip = net.host_ip(1);
    let phone = tempfile::tempdir().unwrap();
    let ca = phone.path().join("candado-lan-ca.crt");
    net.download(&format!("http://{ip}:{page}/candado-lan-ca.crt"), &ca);
    let nssdb = phone.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    let out = Command::new("certutil")
        .args(["-N", "-d", &db, "--empty-password"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    // Before the CA is installed: a certificate error, as on a phone that skipped step 1.
    let url = format!("https://{ip}:{https}/");
    let before = chromium_on_phone(&net, phone.path(), &url, None);
    assert!(!before.contains("secure-context=true"), "{before}");
    assert!(before.contains("ERR_CERT"), "{before}");
    let out = Command::new("certutil")
        .args(["-A", "-d", &db, "-t", "C,,", "-n", "candado-lan", "-i"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let by_ip = chromium_on_phone(&net, phone.path(), &url, None);
    assert!(
        by_ip.contains("secure-context=true mic-api=function"),
        "{by_ip}"
    );
    // The name the onboarding page links to, resolved as mDNS would.
    let html = phone.path().join("page.html");
    net.download(&format!("http://{ip}:{page}/"), &html);
    let html = std::fs::read_to_string(html).unwrap();
    let host = html
        .split("https://")
        .find_map(|rest| rest.split_once(".local:").map(|(h, _)| h.to_owned()))
        .filter(|h| !h.contains(['/', '"', '<']))
        .unwrap_or_else(|| panic!("no .local link: {html}"));
    let by_name = chromium_on_phone(
        &net,
        phone.path(),
        &format!("https://{host}.local:{https}/"),
        Some(&format!("MAP {host}.local {ip}")),
    );
    assert!(
        by_name.contains("secure-context=true mic-api=function"),
        "{by_name}"
    );
}

/// Headless Chromium inside the phone's namespace with `HOME=home` (its NSS database):
/// the DOM, then what it printed on stderr.
fn chromium_on_phone(net: &PhoneNet, home: &Path, url: &str, resolve: Option<&str>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let home = format!("HOME={}", home.display());
    let data = format!("--user-data-dir={}", profile.path().display());
    let rules = resolve.map(|r| format!("--host-resolver-rules={r}"));
    let mut args = vec![
        "env",
        &home,
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--dump-dom",
        &data,
    ];
    if let Some(r) = &rules {
        args.push(r);
    }
    args.push(url);
    // A network change mid-load (an address leaving DAD on some interface) is the host's
    // event, not the site's answer: load again, a bounded number of times.
    let mut out = output_text(&net.phone(&args));
    for _ in 0..2 {
        if !out.contains("ERR_NETWORK_CHANGED") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        out = output_text(&net.phone(&args));
    }
    out
}

/// IPv6 unique-local addresses are LAN addresses too; public ones (here from the documentation
/// ranges, on the test's own veth) are never bound, even on a named interface.
#[test]
fn an_ipv6_unique_local_address_is_served_and_a_public_address_never() {
    let Some(net) = PhoneNet::create("lan IPv6 and public addresses") else {
        return;
    };
    let n = net.prefix.split('.').nth(2).unwrap().to_owned();
    let x = net.prefix.split('.').nth(1).unwrap().to_owned();
    let (ula_host, ula_phone) = (format!("fd00:{x}:{n}::1"), format!("fd00:{x}:{n}::2"));
    let public_v4 = format!("203.0.113.{n}");
    let public_v6 = format!("2001:db8:{x}:{n}::1");
    for step in [
        vec![
            "addr",
            "add",
            &format!("{ula_host}/64"),
            "dev",
            &net.host_if,
            "nodad",
        ],
        vec![
            "addr",
            "add",
            &format!("{public_v4}/32"),
            "dev",
            &net.host_if,
        ],
        vec![
            "addr",
            "add",
            &format!("{public_v6}/128"),
            "dev",
            &net.host_if,
            "nodad",
        ],
        vec![
            "-n",
            &net.ns,
            "addr",
            "add",
            &format!("{ula_phone}/64"),
            "dev",
            &net.peer_if,
            "nodad",
        ],
    ] {
        ip(&step).unwrap_or_else(|e| panic!("ip {}: {e}", step.join(" ")));
    }
    let (server, https, page) = proxy_on_lan(&net, &["--no-mdns"]);
    assert!(
        server.wait_log_line(
            &["--lan exposes the site on", &ula_host],
            Duration::from_secs(10)
        ),
        "{}",
        server.log()
    );
    let log = server.log();
    assert!(
        !log.contains(&public_v4) && !log.contains(&public_v6),
        "{log}"
    );
    let phone = tempfile::tempdir().unwrap();
    let ca = phone.path().join("ca.crt");
    net.download(
        &format!("http://[{ula_host}]:{page}/candado-lan-ca.crt"),
        &ca,
    );
    let (code, body) = net.curl(&ca, &format!("https://[{ula_host}]:{https}/v6"), &["-g"]);
    assert_eq!(code, "200", "{body}");
    // Nothing listens on the public addresses (connection refused, not a TLS error).
    let refused = std::net::TcpStream::connect((public_v4.as_str(), https));
    assert!(refused.is_err(), "the public address {public_v4} is bound");

    // The onboarding page's per-client limit: 60 requests a minute, then 429.
    let url = format!("http://{}:{page}/", net.host_ip(1));
    let mut args = vec!["curl", "-s", "-w", "%{http_code}\\n"];
    for _ in 0..61 {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    let out = net.phone(&args);
    let codes: Vec<String> = output_text(&out).lines().map(str::to_owned).collect();
    assert_eq!(codes.len(), 61, "{codes:?}");
    assert!(codes[..58].iter().all(|c| c == "200"), "{codes:?}");
    assert_eq!(codes.last().map(String::as_str), Some("429"), "{codes:?}");
}
