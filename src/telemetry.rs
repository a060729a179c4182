//! Logging set-up: the only place that decides where and how events are written. Library
//! modules only emit `tracing` events.
//!
//! Events go to standard error (journald picks it up under systemd), or with `log.file` /
//! `--log-file` are appended to a file that SIGUSR1 reopens: logrotate renames the file, sends
//! the signal, and the next line lands in a new file at the same path (nginx's convention).

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG` overrides the level chosen by `-d`. Fails only
/// when the log file cannot be opened.
pub(crate) fn init(settings: &LogSettings, debug: bool) -> Result<()> {
    let default = if debug {
        "candado=debug"
    } else {
        "candado=info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let Some(path) = &settings.file else {
        let builder = builder
            .with_writer(io::stderr)
            .with_ansi(io::stderr().is_terminal());
        let _ = match settings.format {
            LogFormat::Human => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        reopen_on_usr1(None);
        return Ok(());
    };
    let file = LogFile::open(path)?;
    let builder = builder.with_writer(file.clone()).with_ansi(false);
    let _ = match settings.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    reopen_on_usr1(Some(file));
    Ok(())
}

/// The log file: its path and the open file behind a lock. Each event is formatted first and
/// written under the lock in one piece, so a reopen falls between two lines, never inside one.
#[derive(Clone)]
struct LogFile {
    path: Arc<PathBuf>,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: &Path) -> Result<LogFile> {
        Ok(LogFile {
            path: Arc::new(path.to_owned()),
            file: Arc::new(Mutex::new(open_append(path)?)),
        })
    }

    /// Opens the path again (a new file if it was renamed) and writes there from now on.
    fn reopen(&self) -> Result<()> {
        let fresh = open_append(&self.path)?;
        *self.lock() = fresh;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        // A panic while writing a line leaves a file that is still fine to write to.
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Appends, creating the file readable by its owner and group only (logs name clients).
fn open_append(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LockedFile<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LockedFile(self.lock())
    }
}

/// The log file, locked for the duration of one event.
struct LockedFile<'a>(MutexGuard<'a, File>);

impl Write for LockedFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// SIGUSR1 reopens the log file. Without one the signal is still caught, so that a stray
/// logrotate `postrotate` never kills the server (SIGUSR1's default action).
fn reopen_on_usr1(file: Option<LogFile>) {
    use tokio::signal::unix::{SignalKind, signal};
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    // Registered here, before the server says it is ready, not later inside the task.
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        return tracing::warn!("cannot listen for SIGUSR1: the log file is never reopened");
    };
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            let Some(file) = &file else {
                tracing::info!(
                    "SIGUSR1 received: the log goes to standard error, nothing to reopen"
                );
                continue;
            };
            match file.reopen() {
                Ok(()) => tracing::info!("SIGUSR1 received: reopened the log file"),
                Err(e) => tracing::error!("SIGUSR1 received: {e:#}; still writing to the old file"),
            }
        }
    });
}
