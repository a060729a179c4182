//! A throwaway CA and leaves, generated at test time. Nothing here is committed.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

pub struct TestPki {
    pub dir: TempDir,
    pub ca_path: PathBuf,
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> Self {
        TestPki::named("candado test root")
    }

    /// A CA with its own subject CN: an unrelated CA whose name differs from `new()`'s.
    pub fn named(cn: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let params = ca_params(cn, BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, cert.pem()).unwrap();
        TestPki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            ca_path,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A P-256 leaf for `names`, valid from an hour ago for 90 days.
    pub fn leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        self.leaf_with(stem, names, KeyPair::generate().unwrap(), |_| {})
    }

    /// A leaf with a given key and any change to its parameters (validity, ...).
    pub fn leaf_with(
        &self,
        stem: &str,
        names: &[&str],
        key: KeyPair,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let mut params = leaf_params(names);
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        self.write(stem, &cert.pem(), &key.serialize_pem())
    }

    /// A leaf signed by an intermediate; the cert file holds leaf + intermediate.
    pub fn leaf_via_intermediate(&self, stem: &str, names: &[&str]) -> Leaf {
        let ikey = KeyPair::generate().unwrap();
        let iparams = ca_params(
            "candado test intermediate",
            BasicConstraints::Constrained(0),
        );
        let icert = iparams.signed_by(&ikey, &self.issuer).unwrap();
        let inter = Issuer::new(iparams, ikey);
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names).signed_by(&key, &inter).unwrap();
        self.write(
            stem,
            &format!("{}{}", cert.pem(), icert.pem()),
            &key.serialize_pem(),
        )
    }

    pub fn write(&self, stem: &str, cert_pem: &str, key_pem: &str) -> Leaf {
        let cert = self.path(&format!("{stem}.crt"));
        let key = self.path(&format!("{stem}.key"));
        std::fs::write(&cert, cert_pem).unwrap();
        write_key(&key, key_pem);
        Leaf {
            cert,
            key,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        }
    }
}

impl Leaf {
    /// The DER of the first certificate in the file (the leaf itself).
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}

/// Client certificates (extendedKeyUsage clientAuth) and CRLs. `TestPki::named("...")` is an
/// unrelated CA; another `TestPki::new()` is a different CA with the same name.
impl TestPki {
    /// A P-256 client certificate with subject CN=`cn` and the given SANs (a URI when the
    /// name contains `://`, a DNS name otherwise), valid from an hour ago for 90 days.
    pub fn client_leaf(&self, stem: &str, cn: &str, sans: &[&str]) -> Leaf {
        self.client_leaf_with(stem, cn, sans, |_| {})
    }

    /// A client certificate with any change to its parameters (validity, serial, ...).
    pub fn client_leaf_with(
        &self,
        stem: &str,
        cn: &str,
        sans: &[&str],
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = client_params(cn, sans);
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        self.write(stem, &cert.pem(), &key.serialize_pem())
    }

    /// A client certificate for `cn` that expired yesterday (valid for 30 days before that).
    pub fn expired_client_leaf(&self, stem: &str, cn: &str) -> Leaf {
        self.client_leaf_with(stem, cn, &[], |p| {
            p.not_before = OffsetDateTime::now_utc() - Duration::days(31);
            p.not_after = OffsetDateTime::now_utc() - Duration::days(1);
        })
    }

    /// A client certificate for `cn` with the given serial number (to revoke it in a CRL).
    pub fn client_leaf_with_serial(&self, stem: &str, cn: &str, serial: u64) -> Leaf {
        self.client_leaf_with(stem, cn, &[], |p| {
            p.serial_number = Some(SerialNumber::from(serial));
        })
    }

    /// A PEM CRL from this CA revoking `serials`, valid from an hour ago for a week, written to
    /// `<stem>.crl`.
    pub fn crl(&self, stem: &str, serials: &[u64]) -> PathBuf {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update: now + Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&s| RevokedCertParams {
                    serial_number: SerialNumber::from(s),
                    revocation_time: now - Duration::minutes(30),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).unwrap();
        let path = self.path(&format!("{stem}.crl"));
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }
}

fn client_params(cn: &str, sans: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans
        .iter()
        .map(|s| {
            let name = s.to_string().try_into().unwrap();
            if s.contains("://") {
                SanType::URI(name)
            } else {
                SanType::DnsName(name)
            }
        })
        .collect();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    p.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(90);
    p
}

pub fn write_key(path: &Path, pem: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, pem).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn ca_params(cn: &str, constraint: BasicConstraints) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(constraint);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(365);
    p
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, names[0]);
    p.is_ca = IsCa::ExplicitNoCa;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    p.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(90);
    p
}

/// A key of the given algorithm (P-256, P-384, Ed25519 or RSA via openssl, which rcgen cannot make).
pub fn key_of(kind: &str) -> KeyPair {
    let alg: &SignatureAlgorithm = match kind {
        "p256" => &rcgen::PKCS_ECDSA_P256_SHA256,
        "p384" => &rcgen::PKCS_ECDSA_P384_SHA384,
        "ed25519" => &rcgen::PKCS_ED25519,
        "rsa" => {
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .output()
                .unwrap();
            assert!(out.status.success());
            return KeyPair::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap();
        }
        other => panic!("unknown key kind {other}"),
    };
    KeyPair::generate_for(alg).unwrap()
}

/// Converts a PKCS#8 key to its traditional form (PKCS#1 for RSA, SEC1 for EC) with openssl.
pub fn traditional_key(pkcs8_pem: &str, kind: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pem");
    std::fs::write(&input, pkcs8_pem).unwrap();
    // `openssl ec` writes SEC1 by default; `openssl rsa` needs -traditional for PKCS#1.
    let args: &[&str] = if kind == "rsa" {
        &["rsa", "-traditional"]
    } else {
        &["ec"]
    };
    let out = std::process::Command::new("openssl")
        .args(args)
        .args(["-in", input.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
