//! Client certificates on tunnels: the seeds' chat with required certificates, refusals with
//! their reasons, allow lists, SPKI pins, CRLs, the `candado tunnel` command line, and Python
//! `ssl` clients.

use std::process::Command;
use std::time::Duration;

use crate::support::pki::{Leaf, TestPki};
use crate::support::server::Candado;
use crate::support::tcp::{Chat, Echo, exchange, refused, reply_to, tls_config};
use crate::support::tunnels::*;

/// Alice and Bob, each with a certificate, chat through the tunnel with openssl s_client: a
/// line typed by one shows up at the other.
#[test]
fn two_chat_clients_with_certificates_talk_through_a_tunnel_that_requires_them() {
    let t = ChatTunnel::start();
    let mut alice = t.join(Some(&t.alice));
    let mut bob = t.join(Some(&t.bob));
    t.wait_joined(2);
    alice.say("hello bob, this is alice");
    assert!(
        bob.hears("hello bob, this is alice", Duration::from_secs(10)),
        "bob did not get alice's line; bob's openssl: {}\n{}",
        bob.stderr(),
        t.server.log()
    );
    bob.say("hi alice");
    assert!(
        alice.hears("hi alice", Duration::from_secs(10)),
        "alice did not get bob's line; alice's openssl: {}",
        alice.stderr()
    );
}

/// While alice is in the chat, an intruder's s_client with `cert` is refused: it is
/// disconnected, its line reaches nobody, the chat accepts no new connection and candado's
/// log says why.
/// `intruder_cert` gets the tunnel and an unrelated CA.
fn assert_intruder_refused(
    intruder_cert: impl FnOnce(&ChatTunnel, &TestPki) -> Option<Leaf>,
    reason: &str,
) {
    let t = ChatTunnel::start();
    let alice = t.join(Some(&t.alice));
    t.wait_joined(1);
    let stranger = TestPki::named("another test root");
    let cert = intruder_cert(&t, &stranger);
    let mut intruder = t.join(cert.as_ref());
    intruder.say("intruder was here");
    assert!(
        intruder.exits_within(Duration::from_secs(15)),
        "the intruder's s_client is still connected: {}",
        intruder.stderr()
    );
    assert_alert(&intruder.stderr());
    assert_refusal_logged(&t.server, "chat", reason);
    assert!(
        !alice.hears("intruder was here", Duration::from_millis(500)),
        "the intruder's line reached alice"
    );
    assert!(
        !t.chat.lines().iter().any(|l| l.contains("intruder")),
        "the intruder's line reached the chat: {:?}",
        t.chat.lines()
    );
    assert_eq!(
        t.chat.accepted(),
        1,
        "the chat server was contacted for the intruder"
    );
    assert!(
        intruder.heard_so_far().is_empty(),
        "the intruder read chat data"
    );
}

/// No certificate, while the tunnel requires one.
#[test]
fn a_chat_client_without_a_certificate_is_refused_and_the_log_says_why() {
    assert_intruder_refused(|_, _| None, "no client certificate");
}

/// A certificate from a CA the tunnel does not trust.
#[test]
fn a_chat_client_with_a_certificate_from_another_ca_is_refused_and_the_log_says_why() {
    assert_intruder_refused(
        |_, stranger| Some(stranger.client_leaf("mallory", "mallory", &["mallory.test"])),
        "unknown CA",
    );
}

/// A certificate from the right CA that expired yesterday.
#[test]
fn a_chat_client_with_an_expired_certificate_is_refused_and_the_log_says_why() {
    assert_intruder_refused(
        |t, _| Some(t.pki.expired_client_leaf("old", "alice")),
        "expired",
    );
}

/// A certificate from a different CA that happens to bear the trusted CA's name (two test or
/// development CAs made the same way, with different keys) is refused as from an unknown CA.
#[test]
fn a_certificate_from_a_different_ca_with_the_same_name_is_refused_as_from_an_unknown_ca() {
    let pki = TestPki::new();
    let twin = TestPki::new();
    let leaf = pki.leaf("twin", &["twin.test"]);
    let mallory = twin.client_leaf("mallory", "mallory", &["mallory.test"]);
    let echo = Echo::start();
    let server = start(&[entry("twin", echo.addr, &leaf, &required(&pki.ca_path, ""))]);
    assert_alert(&refused(
        server.tunnel("twin"),
        "twin.test",
        tls_config(&pki.ca_pem, Some(&mallory), &[]),
    ));
    assert_refusal_logged(&server, "twin", "unknown CA");
    assert_eq!(echo.accepted(), 0, "the upstream was contacted");
}

/// `allow: {cn: [alice]}`: alice's certificate passes, bob's (same CA) is refused with an
/// alert and the log says he is not in the allow list.
#[test]
fn a_certificate_whose_cn_is_not_in_the_allow_list_is_refused_and_a_listed_one_passes() {
    let pki = TestPki::new();
    let leaf = pki.leaf("gate", &["gate.test"]);
    let alice = pki.client_leaf("alice", "alice", &["alice.test"]);
    let bob = pki.client_leaf("bob", "bob", &["bob.test"]);
    let echo = Echo::start();
    let server = start(&[entry(
        "gate",
        echo.addr,
        &leaf,
        &required(&pki.ca_path, "      allow: {cn: [alice]}\n"),
    )]);
    let lets_in = LetsIn {
        server: &server,
        tunnel: "gate",
        pki: &pki,
        echo: &echo,
    };
    lets_in.only(&alice, &bob, "not in the allow list");
}

/// `allow: {spki_sha256: [...]}` pins one key: carol (whose CN is listed nowhere) passes,
/// dave is refused.
#[test]
fn a_pinned_public_key_passes_and_any_other_key_is_refused() {
    let pki = TestPki::new();
    let leaf = pki.leaf("pin", &["pin.test"]);
    let carol = pki.client_leaf("carol", "carol", &[]);
    let dave = pki.client_leaf("dave", "dave", &[]);
    let echo = Echo::start();
    let server = start(&[entry(
        "pin",
        echo.addr,
        &leaf,
        &required(
            &pki.ca_path,
            &format!(
                "      allow: {{spki_sha256: ['{}']}}\n",
                spki_sha256(&carol)
            ),
        ),
    )]);
    let lets_in = LetsIn {
        server: &server,
        tunnel: "pin",
        pki: &pki,
        echo: &echo,
    };
    lets_in.only(&carol, &dave, "not in the allow list");
}

/// With a CRL that revokes eve's serial number, eve is refused and the log says `revoked`;
/// frank, from the same CA and not on the list, passes.
#[test]
fn a_certificate_revoked_by_the_crl_is_refused_and_the_log_says_revoked() {
    let pki = TestPki::new();
    let leaf = pki.leaf("crl", &["crl.test"]);
    let eve = pki.client_leaf_with_serial("eve", "eve", 0x5eed);
    let frank = pki.client_leaf_with_serial("frank", "frank", 0x600d);
    let crl = pki.crl("revoked", &[0x5eed]);
    let echo = Echo::start();
    let server = start(&[entry(
        "crl",
        echo.addr,
        &leaf,
        &required(&pki.ca_path, &format!("      crl: [{}]\n", crl.display())),
    )]);
    let lets_in = LetsIn {
        server: &server,
        tunnel: "crl",
        pki: &pki,
        echo: &echo,
    };
    lets_in.only(&frank, &eve, "revoked");
}

/// A new CRL is picked up without a signal or a restart, like a renewed certificate: frank
/// passes until the CRL file that revokes him replaces the empty one.
#[test]
fn a_rewritten_crl_file_revokes_without_a_restart() {
    let pki = TestPki::new();
    let leaf = pki.leaf("crl", &["crl.test"]);
    let frank = pki.client_leaf_with_serial("frank", "frank", 0x600d);
    let crl = pki.crl("list", &[]);
    let echo = Echo::start();
    let server = start(&[entry(
        "crl",
        echo.addr,
        &leaf,
        &required(&pki.ca_path, &format!("      crl: [{}]\n", crl.display())),
    )]);
    let addr = server.tunnel("crl");
    let config = || tls_config(&pki.ca_pem, Some(&frank), &[]);
    let got = exchange(addr, "crl.test", config(), b"frank").unwrap();
    assert_eq!(got.reply, reply_to(b"frank"));
    assert_eq!(pki.crl("list", &[0x600d]), crl);
    assert!(
        server.wait_log(
            "a certificate, key, CA or CRL file changed: reloaded",
            Duration::from_secs(10)
        ),
        "{}",
        server.log()
    );
    assert_alert(&refused(addr, "crl.test", config()));
    assert_refusal_logged(&server, "crl", "revoked");
}

/// `candado tunnel --listen --to --name --cert --key --client-ca --client-auth required`:
/// no config file, alice's certificate passes, no certificate is refused.
#[test]
fn the_tunnel_command_runs_a_server_mode_tunnel_that_requires_client_certificates() {
    let pki = TestPki::new();
    let leaf = pki.leaf("cli", &["cli.test"]);
    let alice = pki.client_leaf("alice", "alice", &["alice.test"]);
    let echo = Echo::start();
    let to = echo.addr.to_string();
    let server = Candado::tunnels_with_args(
        &[
            "tunnel",
            "--listen",
            "127.0.0.1:0",
            "--to",
            &to,
            "--name",
            "cli.test",
            "--cert",
            leaf.cert.to_str().unwrap(),
            "--key",
            leaf.key.to_str().unwrap(),
            "--client-ca",
            pki.ca_path.to_str().unwrap(),
            "--client-auth",
            "required",
        ],
        1,
    );
    let addr = server.tunnels[0].1;
    let got = exchange(
        addr,
        "cli.test",
        tls_config(&pki.ca_pem, Some(&alice), &[]),
        b"from the command line",
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(got.peer, leaf.der());
    assert_eq!(got.reply, reply_to(b"from the command line"));
    assert_alert(&refused(
        addr,
        "cli.test",
        tls_config(&pki.ca_pem, None, &[]),
    ));
    assert!(
        server.wait_log_line(
            &["client certificate refused", "no client certificate"],
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
    assert_eq!(echo.accepted(), 1);
}

/// The seed's own scenario in its own language: Python clients written like the seed's chat
/// client (the `ssl` module, verifying the server, each with a certificate that `candado cert
/// issue --client` made) talk through a tunnel that checks them against the development CA.
#[test]
fn python_ssl_clients_with_issued_certificates_chat_through_a_tunnel() {
    let chat = Chat::start();
    let yaml = format!(
        "tunnels:\n  - name: chat\n    listen: 127.0.0.1:0\n    to: {}\n    names: [chat.test]\n    client_auth: {{ca: local}}\n",
        chat.addr
    );
    let server = Candado::tunnels_from_yaml(&yaml, 1);
    let data = server.data_dir();
    let issue = |name: &str| {
        let out = Command::new(crate::support::server::BIN)
            .args(["cert", "issue", "--client", name, "--out"])
            .arg(server.dir.path())
            .env("CANDADO_DATA_DIR", &data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            crate::support::output_text(&out)
        );
        let cert = server.dir.path().join(format!("{name}.crt"));
        (cert.clone(), cert.with_extension("key"))
    };
    let (alice, bob) = (issue("alice"), issue("bob"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/chat_clients.py");
    let out = Command::new("timeout")
        .args(["20", "python3", script])
        .arg(server.tunnel("chat").port().to_string())
        .arg("chat.test")
        .arg(data.join("ca/ca.crt"))
        .args([&alice.0, &alice.1, &bob.0, &bob.1])
        .output()
        .unwrap();
    let text = crate::support::output_text(&out);
    assert!(out.status.success(), "{text}\n{}", server.log());
    assert!(text.starts_with("hola desde python\nTLSv1.3"), "{text}");
    assert_eq!(chat.lines(), ["hola desde python"]);
}
