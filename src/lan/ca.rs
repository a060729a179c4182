//! The LAN CA: the one a phone installs to trust `--lan`. Unlike the development CA it carries
//! name constraints (RFC 5280 §4.2.1.10, marked critical): it can sign only for private
//! addresses, `.local`, `home.arpa`, this machine's name and the names the user lists, so a
//! stolen key or a careless install cannot vouch for `bank.com`. Its key stays in the data
//! folder (0600 in a 0700 folder); `candado ca lan --rotate` replaces it. Leaves are issued in
//! memory at every start and address change, and never written.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::time::{Duration, OffsetDateTime};
use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::devca::{self, LEAF_DAYS};

/// Five years: shorter than the development CA's ten, since it sits on phones.
const LAN_CA_DAYS: i64 = 1826;

/// The address ranges every LAN CA permits: RFC 1918, loopback, IPv6 unique-local,
/// link-local and loopback.
const PERMITTED_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
];

/// The DNS names every LAN CA permits (each with its subdomains): mDNS names, the
/// residential domain of RFC 8375, and localhost.
const PERMITTED_DOMAINS: &[&str] = &["local", "home.arpa", "localhost"];

pub(crate) struct LanCa {
    dir: PathBuf,
    cert_pem: String,
    cert_der: Vec<u8>,
    key: KeyPair,
}

/// Where the LAN CA of `data_dir` lives.
pub(crate) fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("lan-ca")
}

impl LanCa {
    /// Loads the LAN CA, creating it on first use with `names` (and this machine's name)
    /// permitted. Returns whether it was created.
    pub(crate) fn load_or_create(data_dir: &Path, names: &[String]) -> Result<(LanCa, bool)> {
        let dir = dir(data_dir);
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        if !(cert_path.exists() && key_path.exists()) {
            return Ok((Self::create(&dir, names)?, true));
        }
        let (cert_pem, key_pem) = devca::read_pair(&cert_path, &key_path)?;
        let key = KeyPair::from_pem(&key_pem).with_context(|| {
            format!(
                "the LAN CA key {} is unreadable; run `candado ca lan --rotate` for a new one",
                key_path.display()
            )
        })?;
        let cert_der = pem_to_der(&cert_pem)
            .with_context(|| format!("{} is not a certificate", cert_path.display()))?;
        Ok((
            LanCa {
                dir,
                cert_pem,
                cert_der,
                key,
            },
            false,
        ))
    }

    /// A new key and certificate in place of the old ones: phones must install it again.
    pub(crate) fn rotate(data_dir: &Path, names: &[String]) -> Result<LanCa> {
        Self::create(&dir(data_dir), names)
    }

    fn create(dir: &Path, names: &[String]) -> Result<LanCa> {
        devca::make_private_dir(dir)?;
        let key = KeyPair::generate().context("generating the LAN CA key")?;
        let cert = ca_params(&permitted_names(names)?)?
            .self_signed(&key)
            .context("creating the LAN CA")?;
        devca::write_pair_in(dir, "ca", &cert.pem(), &key.serialize_pem())?;
        Ok(LanCa {
            dir: dir.to_owned(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key,
        })
    }

    /// The certificate phones install.
    pub(crate) fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub(crate) fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 of the certificate, as phones and `openssl x509 -fingerprint -sha256` show it.
    pub(crate) fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// The DNS names the constraints permit (the IP ranges are fixed).
    pub(crate) fn permitted_names(&self) -> Vec<String> {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&self.cert_der) else {
            return Vec::new();
        };
        let Ok(Some(nc)) = cert.name_constraints() else {
            return Vec::new();
        };
        nc.value
            .permitted_subtrees
            .iter()
            .flatten()
            .filter_map(|s| match &s.base {
                x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Whether the constraints permit the DNS name `name`.
    pub(crate) fn permits(&self, name: &str) -> bool {
        self.permitted_names()
            .iter()
            .any(|p| name == p || name.ends_with(&format!(".{p}")))
    }

    /// A server leaf for this machine's `host` name (as `host` and `host.local`) and `ips`,
    /// plus the `extra` names the constraints permit, ready to serve.
    pub(crate) fn leaf(
        &self,
        host: &str,
        ips: &[IpAddr],
        extra: &[String],
        provider: &CryptoProvider,
    ) -> Result<Arc<CertifiedKey>> {
        let (cert, key) = self.issue(&leaf_names(host, ips, extra, self))?;
        let chain = vec![cert];
        let key = provider
            .key_provider
            .load_private_key(key)
            .context("loading the LAN certificate's key")?;
        Ok(Arc::new(CertifiedKey::new(chain, key)))
    }

    /// Signs a server certificate for `names` (DNS names or IP addresses) whatever the
    /// constraints say: verifiers must refuse what they forbid (the tests forge such leaves).
    pub(crate) fn issue(
        &self,
        names: &[String],
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        let issuer =
            Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).context("reading the LAN CA")?;
        let mut params = CertificateParams::new(names.to_vec()).context("invalid name")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "candado LAN certificate");
        if let Some(n) = names.first() {
            dn.push(DnType::CommonName, n.as_str());
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = params.not_before + Duration::days(LEAF_DAYS);
        let key = KeyPair::generate().context("generating a key")?;
        let cert = params
            .signed_by(&key, &issuer)
            .context("signing the LAN certificate")?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key_der))
    }
}

/// `host.local`, `host`, the allowed extra names, then the addresses.
fn leaf_names(host: &str, ips: &[IpAddr], extra: &[String], ca: &LanCa) -> Vec<String> {
    let mut names = vec![format!("{host}.local")];
    if ca.permits(host) {
        names.push(host.to_owned());
    }
    for n in extra {
        if ca.permits(n) && !names.contains(n) {
            names.push(n.clone());
        }
    }
    names.extend(ips.iter().map(IpAddr::to_string));
    names
}

/// The CA's permitted DNS names: the fixed domains, this machine's name and `extra`.
fn permitted_names(extra: &[String]) -> Result<Vec<String>> {
    let mut names: Vec<String> = PERMITTED_DOMAINS.iter().map(|d| d.to_string()).collect();
    for n in std::iter::once(super::host_name()).chain(extra.iter().cloned()) {
        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
        if n.starts_with("*.") || n.parse::<IpAddr>().is_ok() {
            bail!(
                "--name {n}: name a host or a domain (its subdomains are included), not a wildcard or an address"
            );
        }
        crate::config::parse_site_name(&n).map_err(|e| anyhow::anyhow!("--name {n}: {e}"))?;
        if !names.contains(&n) {
            names.push(n);
        }
    }
    Ok(names)
}

fn ca_params(names: &[String]) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let host = super::host_name();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "candado LAN CA");
    // The creation time tells a rotated CA from the one before it.
    dn.push(
        DnType::CommonName,
        format!(
            "candado LAN CA {host} {}",
            OffsetDateTime::now_utc().unix_timestamp()
        ),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut permitted: Vec<GeneralSubtree> = PERMITTED_RANGES
        .iter()
        .map(|r| {
            r.parse::<CidrSubnet>()
                .map(GeneralSubtree::IpAddress)
                .map_err(|_| anyhow::anyhow!("internal: bad range {r}"))
        })
        .collect::<Result<_>>()?;
    permitted.extend(names.iter().cloned().map(GeneralSubtree::DnsName));
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(LAN_CA_DAYS);
    Ok(params)
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not PEM: {e}"))?;
    Ok(pem.contents)
}

/// `AB:CD:…`, upper-case hex of the SHA-256 of `der`.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::{ServerName, UnixTime};

    fn verify(ca: &LanCa, leaf: &CertificateDer<'_>, name: &str) -> Result<(), webpki::Error> {
        let ca_der = CertificateDer::from(ca.cert_der());
        let anchors = [webpki::anchor_from_trusted_cert(&ca_der)?];
        let cert = webpki::EndEntityCert::try_from(leaf)?;
        let provider = crate::tls::provider();
        cert.verify_for_usage(
            provider.signature_verification_algorithms.all,
            &anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )?;
        let name = ServerName::try_from(name).map_err(|_| webpki::Error::BadDer)?;
        cert.verify_is_valid_for_subject_name(&name)
    }

    #[test]
    fn the_lan_ca_signs_for_the_lan_but_webpki_refuses_its_signature_on_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, created) = LanCa::load_or_create(dir.path(), &["nas.example".into()]).unwrap();
        assert!(created);
        let (ok, _) = ca
            .issue(&["studio.local".into(), "192.168.1.20".into()])
            .unwrap();
        verify(&ca, &ok, "studio.local").unwrap();
        verify(&ca, &ok, "192.168.1.20").unwrap();
        let (listed, _) = ca.issue(&["box.nas.example".into()]).unwrap();
        verify(&ca, &listed, "box.nas.example").unwrap();
        for forged in ["bank.com", "8.8.8.8", "nas.example.evil.com"] {
            let (leaf, _) = ca.issue(&[forged.into()]).unwrap();
            let e = verify(&ca, &leaf, forged).unwrap_err();
            assert_eq!(e, webpki::Error::NameConstraintViolation, "{forged}");
        }
    }

    #[test]
    fn the_constraints_are_critical_and_rotation_makes_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = LanCa::load_or_create(dir.path(), &[]).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        let nc = cert.name_constraints().unwrap().unwrap();
        assert!(nc.critical);
        assert!(ca.permits("anything.local") && !ca.permits("bank.com"));
        let (again, created) = LanCa::load_or_create(dir.path(), &[]).unwrap();
        assert!(!created);
        assert_eq!(again.fingerprint(), ca.fingerprint());
        let rotated = LanCa::rotate(dir.path(), &[]).unwrap();
        assert_ne!(rotated.fingerprint(), ca.fingerprint());
        let key = dir.path().join("lan-ca").join("ca.key");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the LAN CA key is private");
    }
}
