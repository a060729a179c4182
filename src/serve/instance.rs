//! One running candado among several that share a data folder. Its pid file and its metrics
//! file are named after what tells it apart (its config file, or without one its listen
//! addresses), so that an instance that stops removes only its own files, each instance's
//! sites stay exported, and `candado reload` can choose among them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Config;

/// The files one instance owns in the data folder; both are removed when it stops.
pub(crate) struct Instance {
    pid_file: Option<PathBuf>,
    pub(crate) metrics: PathBuf,
}

/// A pid file found in the data folder whose process is a running candado.
pub(crate) struct Running {
    pub(crate) pid: i32,
    /// `config FILE` or `listen ADDR, ADDR`, as written at start.
    pub(crate) what: String,
    pub(crate) pid_file: PathBuf,
}

/// Where the pid files are: one per instance, `candado-<key>.pid`.
fn run_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("run")
}

/// What tells this instance apart from others on the same data folder.
fn identity(config: &Config, https: &[SocketAddr]) -> String {
    if let Some(file) = &config.source {
        return config_identity(file);
    }
    let mut addrs: Vec<String> = https.iter().map(ToString::to_string).collect();
    addrs.sort();
    addrs.extend(config.tunnels.iter().map(|t| t.listen.to_string()));
    format!("listen {}", addrs.join(", "))
}

fn config_identity(file: &Path) -> String {
    format!("config {}", file.display())
}

/// A short, file-name-safe digest of the identity.
fn key(identity: &str) -> String {
    let digest = Sha256::digest(identity.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Instance {
    /// Writes this instance's pid file (`run/candado-<key>.pid`: the pid, then its identity)
    /// and names its metrics file (`metrics-<key>.prom`). `https` are the actual addresses of
    /// the HTTPS listeners (`:0` resolved), which tell apart instances without a config file.
    pub(crate) fn start(config: &Config, https: &[SocketAddr]) -> Instance {
        let data_dir = crate::config::data_dir();
        let identity = identity(config, https);
        let key = key(&identity);
        let path = run_dir(&data_dir).join(format!("candado-{key}.pid"));
        let metrics = data_dir.join(format!("metrics-{key}.prom"));
        let text = format!("{}\n{identity}\n", std::process::id());
        let pid_file = match write_private(&path, &text) {
            Ok(()) => Some(path),
            Err(e) => {
                tracing::warn!(
                    "cannot write {} ({e}): `candado reload` will not find this server; send SIGHUP instead",
                    path.display()
                );
                None
            }
        };
        Instance { pid_file, metrics }
    }

    /// Removes this instance's files, never another's.
    pub(crate) fn stop(self) {
        if let Some(p) = self.pid_file {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_file(self.metrics);
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    std::fs::write(path, text)
}

/// Every candado with a pid file in `data_dir` that is still running (a file left by a killed
/// instance, or whose pid now belongs to another program, is skipped).
pub(crate) fn running(data_dir: &Path) -> Vec<Running> {
    let Ok(entries) = std::fs::read_dir(run_dir(data_dir)) else {
        return Vec::new();
    };
    let mut found: Vec<Running> = entries
        .map_while(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .filter_map(|pid_file| {
            let text = std::fs::read_to_string(&pid_file).ok()?;
            let mut lines = text.lines();
            let pid: i32 = lines.next()?.trim().parse().ok()?;
            let what = lines.next().unwrap_or_default().to_owned();
            is_candado(pid).then_some(Running {
                pid,
                what,
                pid_file,
            })
        })
        .collect();
    found.sort_by(|a, b| a.what.cmp(&b.what));
    found
}

/// The running instance started with the config file `file`, if any.
pub(crate) fn running_with_config<'a>(running: &'a [Running], file: &Path) -> Option<&'a Running> {
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let want = config_identity(&file);
    running.iter().find(|r| r.what == want)
}

/// A pid may have been reused by another program since the file was written.
fn is_candado(pid: i32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    comm.trim() == "candado"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_told_apart_by_config_file_or_by_address() {
        let mut a = Config {
            source: Some("/etc/candado/a.yaml".into()),
            ..Config::default()
        };
        let https = [SocketAddr::from(([127, 0, 0, 1], 8443))];
        assert_eq!(identity(&a, &https), "config /etc/candado/a.yaml");
        a.source = None;
        assert_eq!(identity(&a, &https), "listen 127.0.0.1:8443");
        let other = [SocketAddr::from(([127, 0, 0, 1], 9443))];
        assert_ne!(key(&identity(&a, &https)), key(&identity(&a, &other)));
        assert_eq!(key("x").len(), 16);
    }
}
