//! The letter grade, after SSL Labs' SSL Server Rating Guide and its published amendments:
//! start at A, let each finding cap it, and say which finding did. A+ needs an A with no
//! warnings and HSTS of at least six months. Where SSL Labs gives "T" (not trusted), candado
//! gives F with the reason, so that `--min-grade` has one order to compare.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::cert::CertFindings;
use super::hello::Protocol;
use super::http::{HSTS_MIN_MAX_AGE, HttpFindings, Redirect};
use super::probe::Probes;
use super::suites::Flaw;

/// Worst first, so that `min` is the worse of two grades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grade {
    F,
    E,
    D,
    C,
    B,
    AMinus,
    A,
    APlus,
}

impl Grade {
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::APlus => "A+",
            Grade::A => "A",
            Grade::AMinus => "A-",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
            Grade::E => "E",
            Grade::F => "F",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grade {
    type Err = String;
    fn from_str(s: &str) -> Result<Grade, String> {
        let all = [
            Grade::APlus,
            Grade::A,
            Grade::AMinus,
            Grade::B,
            Grade::C,
            Grade::D,
            Grade::E,
            Grade::F,
        ];
        all.into_iter()
            .find(|g| g.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("`{s}` is not a grade (A+, A, A-, B, C, D, E or F)"))
    }
}

impl Serialize for Grade {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One finding that limits the grade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cap {
    pub grade: Grade,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Grading {
    pub grade: Grade,
    /// Every finding that capped the grade, worst first.
    pub caps: Vec<Cap>,
    /// Concrete changes that would raise the grade or close a gap.
    pub fixes: Vec<String>,
}

/// Grades what the probes, the certificate check and the HTTP request found: each rule group
/// (protocols, cipher suites, the certificate, the HTTP side) caps the grade or adds a fix.
pub(crate) fn grade(probes: &Probes, cert: Option<&CertFindings>, http: &HttpFindings) -> Grading {
    let mut g = Rules::default();
    protocol_rules(&mut g, probes);
    suite_rules(&mut g, probes);
    certificate_rules(&mut g, cert);
    let hsts_ok = http_rules(&mut g, http);
    g.finish(hsts_ok)
}

fn protocol_rules(g: &mut Rules, probes: &Probes) {
    let offered = |p: Protocol| {
        probes
            .protocols
            .iter()
            .any(|f| f.protocol == p && f.offered)
    };
    let any_protocol = probes.protocols.iter().any(|f| f.offered);
    if !any_protocol {
        g.cap(
            Grade::F,
            "no protocol version was accepted",
            "enable TLS 1.2 and TLS 1.3",
        );
    }
    if offered(Protocol::Ssl3) {
        g.cap(Grade::C, "SSL 3.0 is offered (POODLE)", "disable SSL 3.0");
    }
    if offered(Protocol::Tls10) || offered(Protocol::Tls11) {
        g.cap(
            Grade::B,
            "TLS 1.0 or TLS 1.1 is offered",
            "disable TLS 1.0 and TLS 1.1",
        );
    }
    if any_protocol && !offered(Protocol::Tls12) && !offered(Protocol::Tls13) {
        g.cap(
            Grade::C,
            "neither TLS 1.2 nor TLS 1.3 is offered",
            "enable TLS 1.2 and TLS 1.3",
        );
    }
    if offered(Protocol::Tls12) && !offered(Protocol::Tls13) {
        g.warn("TLS 1.3 is not offered", "enable TLS 1.3");
    }
}

fn suite_rules(g: &mut Rules, probes: &Probes) {
    let suites_in = |p: Protocol| {
        probes
            .protocols
            .iter()
            .filter(move |f| f.protocol == p)
            .flat_map(|f| f.suites.iter())
    };
    let any_protocol = probes.protocols.iter().any(|f| f.offered);
    let all = || probes.protocols.iter().flat_map(|f| f.suites.iter());
    let has = |flaw: Flaw| all().any(|s| s.flaws.contains(&flaw));
    for (flaw, what) in [
        (Flaw::Null, "NULL (unencrypted)"),
        (Flaw::Export, "export-grade"),
        (Flaw::Anonymous, "anonymous (unauthenticated)"),
        (Flaw::Des, "single-DES"),
    ] {
        if has(flaw) {
            g.cap(
                Grade::F,
                &format!("{what} cipher suites are accepted"),
                &format!("remove {what} suites (OpenSSL: add !aNULL:!eNULL:!EXPORT:!DES)"),
            );
        }
    }
    if has(Flaw::Rc4) {
        let modern = [Protocol::Tls11, Protocol::Tls12]
            .into_iter()
            .any(|p| suites_in(p).any(|s| s.flaws.contains(&Flaw::Rc4)));
        let grade = if modern { Grade::C } else { Grade::B };
        g.cap(
            grade,
            "RC4 is accepted",
            "remove RC4 suites (OpenSSL: !RC4)",
        );
    }
    let small_block = |p: Protocol| {
        suites_in(p)
            .any(|s| s.flaws.contains(&Flaw::TripleDes) || s.flaws.contains(&Flaw::SmallBlock))
    };
    if small_block(Protocol::Tls11) || small_block(Protocol::Tls12) {
        g.cap(
            Grade::C,
            "3DES or another 64-bit block cipher is accepted with TLS 1.1 or newer (Sweet32)",
            "remove 3DES, IDEA and RC2 suites (OpenSSL: !3DES:!IDEA)",
        );
    } else if small_block(Protocol::Tls10) || small_block(Protocol::Ssl3) {
        g.warn(
            "3DES is accepted with old protocols (Sweet32)",
            "remove 3DES suites (OpenSSL: !3DES)",
        );
    }
    if any_protocol {
        let best = probes.protocols.iter().rev().find(|f| f.offered);
        let fs_anywhere = all().any(|s| s.forward_secret);
        let prefers_non_fs = best.is_some_and(|f| {
            f.server_order == Some(true) && f.suites.first().is_some_and(|s| !s.forward_secret)
        });
        if !fs_anywhere || prefers_non_fs {
            g.cap(
                Grade::B,
                "forward secrecy is not negotiated with modern clients",
                "offer ECDHE suites (and prefer them)",
            );
        } else if all().any(|s| !s.forward_secret) {
            g.fix("remove suites without forward secrecy (static RSA key exchange: OpenSSL !kRSA)");
        }
        if !all().any(|s| s.aead) {
            g.warn(
                "no AEAD suite (GCM, ChaCha20-Poly1305) is accepted",
                "offer AEAD suites",
            );
        }
        let cbc_old = [Protocol::Ssl3, Protocol::Tls10]
            .into_iter()
            .any(|p| suites_in(p).any(|s| s.flaws.contains(&Flaw::Cbc)));
        if cbc_old {
            g.fix("CBC suites with TLS 1.0 or older are open to BEAST: disable TLS 1.0");
        } else if all().any(|s| s.flaws.contains(&Flaw::Cbc)) {
            g.fix("prefer AEAD suites to CBC ones, or drop CBC (Lucky13-style padding oracles)");
        }
    }
    if probes.compression {
        g.cap(
            Grade::C,
            "TLS compression is on (CRIME)",
            "turn TLS compression off",
        );
    }
}

fn certificate_rules(g: &mut Rules, cert: Option<&CertFindings>) {
    match cert {
        None => g.cap(
            Grade::F,
            "the certificate could not be read (no TLS 1.2/1.3 handshake completed)",
            "offer TLS 1.2 or 1.3 with a certificate",
        ),
        Some(c) => {
            if c.expired {
                g.cap(
                    Grade::F,
                    &format!(
                        "not trusted: the certificate expired {} days ago",
                        -c.days_left
                    ),
                    "renew the certificate",
                );
            }
            if c.not_yet_valid {
                g.cap(
                    Grade::F,
                    "not trusted: the certificate is not valid yet",
                    "check the server clock and the certificate's notBefore",
                );
            }
            if !c.hostname_matches {
                g.cap(
                    Grade::F,
                    "not trusted: the certificate does not cover the host name",
                    "use a certificate whose names include the host name",
                );
            }
            if !c.chain_complete {
                let issuer = c.chain.missing_issuer.clone().unwrap_or_default();
                g.cap(
                    Grade::B,
                    &format!("the chain is incomplete: the certificate of {issuer} is not sent"),
                    "serve the full chain (leaf, then every intermediate: fullchain.pem)",
                );
            }
            if !c.trusted && !c.expired && !c.not_yet_valid && c.hostname_matches {
                let why = c.trust_error.as_deref().unwrap_or("unknown reason");
                g.cap(
                    Grade::F,
                    &format!("not trusted: {why}"),
                    "use a certificate from a CA clients trust (or pass --ca for a private CA)",
                );
            }
            if !c.chain.chain_in_order {
                g.warn(
                    "the chain is out of order",
                    "send the leaf first, then each issuer in turn",
                );
            }
            match c.rsa_bits {
                Some(b) if b < 1024 => g.cap(
                    Grade::F,
                    &format!("RSA key of {b} bits"),
                    "use an RSA key of 2048 bits or more, or ECDSA P-256",
                ),
                Some(b) if b < 2048 => g.cap(
                    Grade::B,
                    &format!("RSA key of {b} bits"),
                    "use an RSA key of 2048 bits or more, or ECDSA P-256",
                ),
                _ => {}
            }
            if c.weak_signature {
                g.cap(
                    Grade::F,
                    "not trusted: the certificate is signed with MD5 or SHA-1",
                    "reissue the certificate with SHA-256",
                );
            }
            if c.days_left >= 0 && c.days_left < 14 {
                g.fix(&format!(
                    "the certificate expires in {} days: renew it",
                    c.days_left
                ));
            }
        }
    }
}

/// Returns whether HSTS is long enough for an A+.
fn http_rules(g: &mut Rules, http: &HttpFindings) -> bool {
    let hsts_ok = http
        .hsts
        .as_ref()
        .is_some_and(|h| h.max_age >= HSTS_MIN_MAX_AGE);
    match &http.hsts {
        _ if http.error.is_some() => {}
        None => g.fix("send Strict-Transport-Security: max-age=31536000 (needed for A+)"),
        Some(h) if h.max_age < HSTS_MIN_MAX_AGE => g.fix(&format!(
            "raise the HSTS max-age from {} to at least 15552000 (six months; needed for A+)",
            h.max_age
        )),
        Some(_) => {}
    }
    match &http.redirect {
        Some(Redirect::NotToHttps { .. }) => g.fix(&format!(
            "redirect http:// (port {}) to https://",
            http.http_port
        )),
        Some(Redirect::NoListener) => {}
        _ => {}
    }
    if http.alpn.is_some() && http.alpn.as_deref() != Some("h2") && http.error.is_none() {
        g.fix("offer HTTP/2 (ALPN h2)");
    }
    for c in http.cookies.iter().filter(|c| !c.secure) {
        g.fix(&format!("mark the cookie `{}` Secure", c.name));
    }
    hsts_ok
}

#[derive(Default)]
struct Rules {
    caps: Vec<Cap>,
    warned: bool,
    fixes: Vec<String>,
}

impl Rules {
    fn cap(&mut self, grade: Grade, reason: &str, fix: &str) {
        self.caps.push(Cap {
            grade,
            reason: reason.to_owned(),
        });
        self.fix(fix);
    }

    /// Something SSL Labs calls a warning: A- at best.
    fn warn(&mut self, reason: &str, fix: &str) {
        self.warned = true;
        self.cap(Grade::AMinus, reason, fix);
    }

    fn fix(&mut self, fix: &str) {
        if !self.fixes.iter().any(|f| f == fix) {
            self.fixes.push(fix.to_owned());
        }
    }

    fn finish(mut self, hsts_ok: bool) -> Grading {
        self.caps.sort_by_key(|c| c.grade);
        let capped = self.caps.iter().map(|c| c.grade).min().unwrap_or(Grade::A);
        let grade = match capped {
            Grade::A if !self.warned && hsts_ok => Grade::APlus,
            g => g,
        };
        Grading {
            grade,
            caps: self.caps,
            fixes: self.fixes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::probe::ProtocolFinding;
    use super::super::suites::classify;
    use super::*;
    use crate::check::http::{Hsts, parse_hsts};

    fn protocols(list: &[(Protocol, &[u16])]) -> Probes {
        Probes {
            protocols: Protocol::ALL
                .into_iter()
                .map(|p| {
                    let suites: Vec<_> = list
                        .iter()
                        .find(|(q, _)| *q == p)
                        .map(|(_, s)| s.iter().map(|&id| classify(id)).collect())
                        .unwrap_or_default();
                    ProtocolFinding {
                        protocol: p,
                        offered: !suites.is_empty(),
                        server_order: Some(true),
                        suites,
                        answer: String::new(),
                    }
                })
                .collect(),
            groups: Vec::new(),
            compression: false,
        }
    }

    fn modern() -> Probes {
        protocols(&[
            (Protocol::Tls12, &[0xc02f, 0xc030, 0xcca8]),
            (Protocol::Tls13, &[0x1301, 0x1302, 0x1303]),
        ])
    }

    fn good_cert() -> CertFindings {
        CertFindings {
            chain: crate::certs::inspect::Report {
                source: "a.test".into(),
                certificates: Vec::new(),
                chain_in_order: true,
                ends_at_root: false,
                missing_issuer: Some("CN=root".into()),
                key_matches: None,
            },
            trusted: true,
            trust_error: None,
            hostname_matches: true,
            days_left: 80,
            expired: false,
            not_yet_valid: false,
            chain_complete: true,
            rsa_bits: None,
            weak_signature: false,
        }
    }

    fn hsts_year() -> HttpFindings {
        HttpFindings {
            alpn: Some("h2".into()),
            hsts: Some(parse_hsts("max-age=31536000")),
            http_port: 80,
            ..Default::default()
        }
    }

    fn reasons(g: &Grading) -> String {
        g.caps
            .iter()
            .map(|c| format!("{}: {}\n", c.grade, c.reason))
            .collect()
    }

    #[test]
    fn a_modern_server_with_a_year_of_hsts_gets_a_plus() {
        let g = grade(&modern(), Some(&good_cert()), &hsts_year());
        assert_eq!(g.grade, Grade::APlus, "{}", reasons(&g));
        assert!(g.caps.is_empty());
    }

    #[test]
    fn without_hsts_the_same_server_gets_a_and_is_told_to_add_it() {
        let http = HttpFindings {
            hsts: None,
            ..hsts_year()
        };
        let g = grade(&modern(), Some(&good_cert()), &http);
        assert_eq!(g.grade, Grade::A);
        assert!(
            g.fixes
                .iter()
                .any(|f| f.contains("Strict-Transport-Security"))
        );
    }

    #[test]
    fn hsts_shorter_than_six_months_does_not_earn_a_plus() {
        let http = HttpFindings {
            hsts: Some(Hsts {
                max_age: HSTS_MIN_MAX_AGE - 1,
                include_subdomains: false,
                preload: false,
            }),
            ..hsts_year()
        };
        assert_eq!(grade(&modern(), Some(&good_cert()), &http).grade, Grade::A);
    }

    #[test]
    fn missing_tls13_is_a_warning_that_caps_at_a_minus() {
        let p = protocols(&[(Protocol::Tls12, &[0xc02f])]);
        let g = grade(&p, Some(&good_cert()), &hsts_year());
        assert_eq!(g.grade, Grade::AMinus);
        assert!(reasons(&g).contains("TLS 1.3 is not offered"));
    }

    #[test]
    fn tls10_or_tls11_caps_at_b() {
        let p = protocols(&[
            (Protocol::Tls10, &[0xc013]),
            (Protocol::Tls12, &[0xc02f]),
            (Protocol::Tls13, &[0x1301]),
        ]);
        let g = grade(&p, Some(&good_cert()), &hsts_year());
        assert_eq!(g.grade, Grade::B, "{}", reasons(&g));
        assert!(g.fixes.iter().any(|f| f.contains("disable TLS 1.0")));
    }

    #[test]
    fn sslv3_caps_at_c() {
        let p = protocols(&[(Protocol::Ssl3, &[0x002f]), (Protocol::Tls12, &[0xc02f])]);
        assert_eq!(grade(&p, Some(&good_cert()), &hsts_year()).grade, Grade::C);
    }

    #[test]
    fn rc4_with_tls12_caps_at_c_but_only_with_tls10_at_b() {
        let p = protocols(&[
            (Protocol::Tls12, &[0xc02f, 0x0005]),
            (Protocol::Tls13, &[0x1301]),
        ]);
        assert_eq!(grade(&p, Some(&good_cert()), &hsts_year()).grade, Grade::C);
        let p = protocols(&[(Protocol::Tls10, &[0x0005]), (Protocol::Tls12, &[0xc02f])]);
        let g = grade(&p, Some(&good_cert()), &hsts_year());
        assert_eq!(g.grade, Grade::B);
        assert!(reasons(&g).contains("RC4"));
    }

    #[test]
    fn triple_des_with_tls12_caps_at_c() {
        let p = protocols(&[
            (Protocol::Tls12, &[0xc02f, 0x000a]),
            (Protocol::Tls13, &[0x1301]),
        ]);
        let g = grade(&p, Some(&good_cert()), &hsts_year());
        assert_eq!(g.grade, Grade::C);
        assert!(reasons(&g).contains("Sweet32"));
    }

    #[test]
    fn export_null_or_anonymous_suites_fail() {
        for id in [0x0003, 0x0002, 0x0034] {
            let p = protocols(&[(Protocol::Tls12, &[0xc02f, id])]);
            assert_eq!(
                grade(&p, Some(&good_cert()), &hsts_year()).grade,
                Grade::F,
                "{id:#x}"
            );
        }
    }

    #[test]
    fn no_forward_secrecy_caps_at_b() {
        let p = protocols(&[(Protocol::Tls12, &[0x009c, 0x009d])]);
        let g = grade(&p, Some(&good_cert()), &hsts_year());
        assert_eq!(g.grade, Grade::B);
        assert!(reasons(&g).contains("forward secrecy"));
    }

    #[test]
    fn an_expired_certificate_fails_with_not_trusted() {
        let cert = CertFindings {
            expired: true,
            trusted: false,
            days_left: -3,
            trust_error: Some("certificate expired".into()),
            ..good_cert()
        };
        let g = grade(&modern(), Some(&cert), &hsts_year());
        assert_eq!(g.grade, Grade::F);
        assert!(reasons(&g).contains("not trusted: the certificate expired 3 days ago"));
        assert_eq!(g.caps.len(), 1, "one reason, not two: {}", reasons(&g));
    }

    #[test]
    fn a_wrong_host_name_fails() {
        let cert = CertFindings {
            hostname_matches: false,
            trusted: false,
            ..good_cert()
        };
        let g = grade(&modern(), Some(&cert), &hsts_year());
        assert_eq!(g.grade, Grade::F);
        assert!(reasons(&g).contains("does not cover the host name"));
    }

    #[test]
    fn an_incomplete_chain_is_named_as_such() {
        let cert = CertFindings {
            chain_complete: false,
            trusted: false,
            trust_error: Some("invalid peer certificate: UnknownIssuer".into()),
            ..good_cert()
        };
        let g = grade(&modern(), Some(&cert), &hsts_year());
        assert_eq!(g.grade, Grade::F);
        assert!(
            reasons(&g).contains("chain is incomplete"),
            "{}",
            reasons(&g)
        );
        assert!(g.fixes.iter().any(|f| f.contains("full chain")));
    }

    #[test]
    fn small_rsa_keys_cap_at_b_and_tiny_ones_fail() {
        let cert = CertFindings {
            rsa_bits: Some(1024),
            ..good_cert()
        };
        assert_eq!(grade(&modern(), Some(&cert), &hsts_year()).grade, Grade::B);
        let cert = CertFindings {
            rsa_bits: Some(512),
            ..good_cert()
        };
        assert_eq!(grade(&modern(), Some(&cert), &hsts_year()).grade, Grade::F);
    }

    #[test]
    fn tls_compression_caps_at_c() {
        let mut p = modern();
        p.compression = true;
        assert_eq!(grade(&p, Some(&good_cert()), &hsts_year()).grade, Grade::C);
    }

    #[test]
    fn grades_parse_and_order_from_best_to_worst() {
        assert_eq!("a+".parse::<Grade>(), Ok(Grade::APlus));
        assert_eq!("A-".parse::<Grade>(), Ok(Grade::AMinus));
        assert!("Z".parse::<Grade>().is_err());
        assert!(Grade::APlus > Grade::A && Grade::A > Grade::AMinus && Grade::B > Grade::F);
    }

    #[test]
    fn cookies_without_secure_get_a_fix_but_no_cap() {
        let http = HttpFindings {
            cookies: vec![crate::check::http::parse_cookie("sid=1; HttpOnly")],
            ..hsts_year()
        };
        let g = grade(&modern(), Some(&good_cert()), &http);
        assert_eq!(g.grade, Grade::APlus);
        assert!(g.fixes.iter().any(|f| f.contains("`sid` Secure")));
    }
}
