//! The local development CA (like mkcert): created once in the user's data folder, then used
//! to issue leaf certificates for local names. Keys are written 0600 in 0700 folders.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ::time::{Duration, OffsetDateTime};
use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::certs::files::{self, Member};

/// The CA lives ten years. Leaves live 365 days: browsers accept up to 397, but Mozilla's
/// "intermediate" profile (what sslyze and graders check) allows no more than 366. `serve`
/// reissues its own leaves once a third of their life is left.
const CA_DAYS: i64 = 3650;
pub(crate) const LEAF_DAYS: i64 = 365;
/// The longest leaf lifetime browsers accept (CA/Browser Forum baseline requirements).
pub(crate) const BROWSER_MAX_DAYS: i64 = 397;
/// The longest Mozilla's "intermediate" profile accepts (`maximum_certificate_lifespan`).
pub(crate) const GRADER_MAX_DAYS: i64 = 366;
/// Client certificates from `cert issue --client` (no browser limit applies to them).
pub(crate) const CLIENT_DAYS: i64 = 365;

/// Where the CA certificate of the development CA in `data_dir` is (or will be).
pub(crate) fn ca_cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ca").join("ca.crt")
}

pub(crate) struct DevCa {
    dir: PathBuf,
    cert_pem: String,
    key: KeyPair,
}

impl DevCa {
    /// Loads the CA from `data_dir/ca`, creating it on first use. Returns whether it was created.
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<(DevCa, bool)> {
        let dir = data_dir.join("ca");
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        // Both appear at once (one swap, see certs::files): one without the other is an
        // interrupted first creation, and starts over.
        if cert_path.exists() && key_path.exists() {
            let (cert_pem, key_pem) = read_pair(&cert_path, &key_path)?;
            let key = KeyPair::from_pem(&key_pem).with_context(|| {
                format!(
                    "the development CA key {} is unreadable; delete {} to create a new CA",
                    key_path.display(),
                    dir.display()
                )
            })?;
            return Ok((DevCa { dir, cert_pem, key }, false));
        }
        make_private_dir(&dir)?;
        let key = KeyPair::generate().context("generating the development CA key")?;
        let cert = ca_params()
            .self_signed(&key)
            .context("creating the development CA")?;
        write_pair_in(&dir, "ca", &cert.pem(), &key.serialize_pem())?;
        Ok((
            DevCa {
                dir,
                cert_pem: cert.pem(),
                key,
            },
            true,
        ))
    }

    /// The CA certificate a browser or client must trust.
    pub(crate) fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    #[cfg(test)]
    fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Returns the cert and key files of a leaf for `names`, reusing the stored one when it
    /// was issued by this CA, covers every name and is not close to expiry.
    pub(crate) fn leaf_for(&self, names: &[String]) -> Result<(PathBuf, PathBuf)> {
        // One writer at a time in this process (the start-up load and a renewal task, or two
        // renewal tasks across a reload, may ask together).
        static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _writing = crate::locks::lock(&WRITING);
        let (cert_path, key_path) = self.leaf_paths(names);
        if key_path.exists() && self.leaf_is_current(&cert_path, names) {
            return Ok((cert_path, key_path));
        }
        let certs = self.leaves_dir();
        make_private_dir(&certs)?;
        let (cert_pem, key_pem) = self.issue(names)?;
        write_pair_in(&certs, &file_stem(names), &cert_pem, &key_pem)
    }

    /// Whether the stored leaf for `names` must be reissued (missing, from another CA, not
    /// covering every name, or with a third of its life or less left).
    pub(crate) fn leaf_is_due(&self, names: &[String]) -> bool {
        let (cert_path, key_path) = self.leaf_paths(names);
        !key_path.exists() || !self.leaf_is_current(&cert_path, names)
    }

    fn leaves_dir(&self) -> PathBuf {
        self.dir.parent().unwrap_or(&self.dir).join("certs")
    }

    fn leaf_paths(&self, names: &[String]) -> (PathBuf, PathBuf) {
        let (certs, stem) = (self.leaves_dir(), file_stem(names));
        (
            certs.join(format!("{stem}.crt")),
            certs.join(format!("{stem}.key")),
        )
    }

    /// Issues a P-256 leaf for `names` (DNS names, wildcards or IP addresses):
    /// (cert PEM, key PEM).
    pub(crate) fn issue(&self, names: &[String]) -> Result<(String, String)> {
        self.issue_with(names, LEAF_DAYS, KeyKind::Ecdsa)
    }

    /// Issues a leaf with a chosen lifetime and key type.
    pub(crate) fn issue_with(
        &self,
        names: &[String],
        days: i64,
        kind: KeyKind,
    ) -> Result<(String, String)> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .context("reading the development CA")?;
        let params = leaf_params(names, days, "candado development certificate")?;
        let key = kind.generate()?;
        let cert = params
            .signed_by(&key, &issuer)
            .context("signing the certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues a client certificate (clientAuth) for `name`: subject CN=name, and a SAN that
    /// allow lists can match: URI for `scheme://…` (SPIFFE IDs), email for `user@host`, DNS
    /// for a host name. (cert PEM, key PEM).
    pub(crate) fn issue_client(
        &self,
        name: &str,
        days: i64,
        kind: KeyKind,
    ) -> Result<(String, String)> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .context("reading the development CA")?;
        let san = if name.contains("://") {
            Some(rcgen::SanType::URI(name.try_into().context("invalid URI")?))
        } else if name.contains('@') {
            Some(rcgen::SanType::Rfc822Name(
                name.try_into().context("invalid email address")?,
            ))
        } else {
            crate::config::parse_site_name(name)
                .ok()
                .filter(|n| !n.starts_with("*."))
                .and_then(|n| n.try_into().ok())
                .map(rcgen::SanType::DnsName)
        };
        let mut params = CertificateParams::default();
        params.subject_alt_names = san.into_iter().collect();
        params.distinguished_name.push(
            DnType::OrganizationName,
            "candado development client certificate",
        );
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(days);
        let key = kind.generate()?;
        let cert = params
            .signed_by(&key, &issuer)
            .context("signing the certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    fn leaf_is_current(&self, cert_path: &Path, names: &[String]) -> bool {
        let Ok(pem) = std::fs::read(cert_path) else {
            return false;
        };
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
            return false;
        };
        let Ok(leaf) = pem.parse_x509() else {
            return false;
        };
        let Ok((_, ca_pem)) = x509_parser::pem::parse_x509_pem(self.cert_pem.as_bytes()) else {
            return false;
        };
        let Ok(ca) = ca_pem.parse_x509() else {
            return false;
        };
        let covered = crate::certs::load::san_names(&leaf);
        leaf.issuer().as_raw() == ca.subject().as_raw()
            && has_a_third_left(leaf.validity(), OffsetDateTime::now_utc())
            && names.iter().all(|n| covered.contains(n))
    }
}

/// Whether more than a third of a certificate's life is left at `now` (Let's Encrypt's
/// clients renew at the same point): a leaf reissued then never comes near its expiry.
fn has_a_third_left(validity: &x509_parser::certificate::Validity, now: OffsetDateTime) -> bool {
    let (start, end) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let left = end - now.unix_timestamp();
    left > 0 && left * 3 > end - start
}

/// A self-signed certificate for `names`, the one-command replacement for
/// `openssl req -x509 -newkey rsa:4096 -nodes ...`: (cert PEM, key PEM).
pub(crate) fn self_signed(names: &[String], days: i64, kind: KeyKind) -> Result<(String, String)> {
    let mut params = leaf_params(names, days, "candado self-signed certificate")?;
    params.use_authority_key_identifier_extension = false;
    let key = kind.generate()?;
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The key types `cert issue` and `cert self-signed` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// ECDSA P-256: small, fast, accepted everywhere.
    Ecdsa,
    Rsa2048,
    Rsa4096,
    Ed25519,
}

impl KeyKind {
    fn generate(self) -> Result<KeyPair> {
        let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
        let key = match self {
            KeyKind::Ecdsa => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyKind::Rsa2048 => rsa(rcgen::RsaKeySize::_2048),
            KeyKind::Rsa4096 => rsa(rcgen::RsaKeySize::_4096),
            KeyKind::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        };
        key.context("generating a key")
    }
}

fn leaf_params(names: &[String], days: i64, org: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(names.to_vec()).context("invalid certificate name")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    if let Some(n) = names.first() {
        dn.push(DnType::CommonName, n.as_str());
    }
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    // An hour back for clocks a little behind; the lifetime counts from there, so that
    // `days` is the whole validity period graders measure.
    params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    params.not_after = params.not_before + Duration::days(days);
    Ok(params)
}

/// Writes a certificate (0644) and its key (0600) as `DIR/STEM.crt` and `DIR/STEM.key`,
/// replacing both at once (see `certs::files`: a crash leaves the old pair or the new one).
pub(crate) fn write_pair(
    dir: &Path,
    stem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_pair_in(dir, stem, cert_pem, key_pem)
}

/// `write_pair` into a folder that exists; the versions live in `DIR/.candado/STEM`.
pub(crate) fn write_pair_in(
    dir: &Path,
    stem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (format!("{stem}.crt"), format!("{stem}.key"));
    let members = [
        Member {
            name: &cert,
            data: cert_pem.as_bytes(),
            private: false,
        },
        Member {
            name: &key,
            data: key_pem.as_bytes(),
            private: true,
        },
    ];
    files::write_together(dir, &format!(".candado/{stem}"), &members)
        .with_context(|| format!("cannot write {} and {}", dir.join(&cert).display(), key))?;
    Ok((dir.join(cert), dir.join(key)))
}

/// A file name for a certificate's names: the first one, `*` and `:` spelled out.
pub(crate) fn file_stem(names: &[String]) -> String {
    names
        .first()
        .map(|n| n.replace('*', "_wildcard").replace(':', "_"))
        .unwrap_or_else(|| "localhost".into())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let owner = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "user".into()),
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into())
    );
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "candado development CA");
    dn.push(DnType::OrganizationalUnitName, owner.clone());
    // The creation time makes each CA's name unique, so a leaf from an older CA is recognised.
    dn.push(
        DnType::CommonName,
        format!(
            "candado development CA {owner} {}",
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
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    params
}

/// A certificate and key written together, read from the same version.
pub(crate) fn read_pair(cert: &Path, key: &Path) -> Result<(String, String)> {
    let mut read = files::read_together(&[cert, key]).into_iter();
    let mut next = |path: &Path| -> Result<String> {
        let bytes = read
            .next()
            .unwrap_or_else(|| Err(std::io::ErrorKind::NotFound.into()))
            .with_context(|| format!("cannot read {}", path.display()))?;
        String::from_utf8(bytes).with_context(|| format!("{} is not PEM text", path.display()))
    };
    Ok((next(cert)?, next(key)?))
}

pub(crate) fn make_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ca_is_created_once_with_private_key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, created) = DevCa::load_or_create(dir.path()).expect("create");
        assert!(created);
        let mode = std::fs::metadata(dir.path().join("ca/ca.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = DevCa::load_or_create(dir.path()).expect("load");
        assert!(!created);
        assert_eq!(ca.cert_pem(), again.cert_pem());
    }

    #[test]
    fn a_leaf_is_reused_until_the_names_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, _) = DevCa::load_or_create(dir.path()).expect("create");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let (c1, _) = ca.leaf_for(&names).expect("issue");
        let first = std::fs::read(&c1).expect("read");
        let (c2, _) = ca.leaf_for(&names).expect("reuse");
        assert_eq!(first, std::fs::read(&c2).expect("read"));
        let more = vec!["localhost".to_owned(), "::1".to_owned()];
        let (c3, _) = ca.leaf_for(&more).expect("reissue");
        assert_ne!(first, std::fs::read(&c3).expect("read"));
    }
}
