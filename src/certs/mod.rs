//! Certificates: loading PEM files into what rustls serves, and choosing one per SNI name.

pub mod challenges;
pub mod expiry;
pub mod files;
pub mod inspect;
pub mod load;
pub mod managed;
pub mod names;
pub mod watch;

pub use challenges::{Challenges, HTTP01_PREFIX};
pub use load::{CertError, LoadedCert, load_files, load_pem};
pub use managed::ManagedCert;
pub use names::NameTable;
