//! Certificates: loading PEM files into what rustls serves, and choosing one per SNI name.

pub(crate) mod challenges;
pub(crate) mod expiry;
pub(crate) mod files;
pub(crate) mod inspect;
pub(crate) mod load;
pub(crate) mod managed;
pub(crate) mod names;
pub(crate) mod watch;

pub(crate) use challenges::Challenges;
pub(crate) use load::{CertError, LoadedCert, load_files, load_pem};
pub(crate) use managed::ManagedCert;
pub(crate) use names::NameTable;
