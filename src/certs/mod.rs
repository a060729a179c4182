//! Certificates: loading PEM files into what rustls serves, and choosing one per SNI name.

pub mod expiry;
pub mod files;
pub mod inspect;
pub mod load;
pub mod names;
pub mod store;
pub mod watch;

pub use load::{CertError, LoadedCert, load_files, load_pem};
pub use names::NameTable;
pub use store::{ManagedCert, SniResolver};
