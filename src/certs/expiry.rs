//! Expiry watch: each served certificate's remaining lifetime is logged as it crosses 30, 7
//! and 1 days, and written for monitoring as a Prometheus textfile (one `metrics-<instance>.prom`
//! per running instance in the data folder, ready for node_exporter's textfile collector, which
//! reads every `*.prom` file there).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Days left at which a warning is logged (once per certificate and threshold).
const THRESHOLDS: [u64; 3] = [30, 7, 1];

/// One served certificate: which site, and when it expires.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub site: String,
    pub not_after: SystemTime,
}

pub(crate) struct ExpiryWatch {
    certs: Vec<(Served, Option<u64>)>,
    metrics: PathBuf,
}

impl ExpiryWatch {
    /// Thresholds already crossed count as warned: loading the certificate said so already.
    pub(crate) fn new(certs: Vec<Served>, metrics: &Path, now: SystemTime) -> Self {
        let certs = certs
            .into_iter()
            .map(|c| {
                let days = c
                    .not_after
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
                    .as_secs()
                    / 86_400;
                let warned = crossed(days, None);
                (c, warned)
            })
            .collect();
        ExpiryWatch {
            certs,
            metrics: metrics.to_owned(),
        }
    }

    /// Logs newly crossed thresholds and rewrites the metrics file.
    pub(crate) fn check(&mut self, now: SystemTime) {
        for (cert, warned) in &mut self.certs {
            let left = cert.not_after.duration_since(now).unwrap_or(Duration::ZERO);
            let days = left.as_secs() / 86_400;
            if let Some(t) = crossed(days, *warned) {
                let date = humantime::format_rfc3339_seconds(cert.not_after);
                tracing::warn!(site = %cert.site, days_left = days, "the certificate of {} expires on {date} (within {t} day{})", cert.site, if t == 1 { "" } else { "s" });
                *warned = Some(t);
            }
        }
        if let Err(e) = self.write_metrics(now) {
            tracing::debug!("cannot write {}: {e}", self.metrics.display());
        }
    }

    fn write_metrics(&self, now: SystemTime) -> std::io::Result<()> {
        let mut text = String::from(
            "# HELP candado_certificate_expiry_seconds Seconds until a served certificate expires.\n# TYPE candado_certificate_expiry_seconds gauge\n",
        );
        for (cert, _) in &self.certs {
            let left = match cert.not_after.duration_since(now) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            };
            let site = cert.site.replace(['\\', '"', '\n'], "_");
            text.push_str(&format!(
                "candado_certificate_expiry_seconds{{site=\"{site}\"}} {left}\n"
            ));
        }
        // Written aside then renamed, so a collector never reads half a file.
        let tmp = self.metrics.with_extension("prom.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, &self.metrics)
    }
}

/// The smallest threshold at or above `days` that has not been warned about yet.
fn crossed(days: u64, warned: Option<u64>) -> Option<u64> {
    THRESHOLDS
        .iter()
        .copied()
        .filter(|&t| days < t)
        .min()
        .filter(|&t| warned.is_none_or(|w| t < w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_threshold_is_warned_about_once() {
        assert_eq!(crossed(40, None), None);
        assert_eq!(crossed(29, None), Some(30));
        assert_eq!(crossed(20, Some(30)), None);
        assert_eq!(crossed(6, Some(30)), Some(7));
        assert_eq!(crossed(0, Some(7)), Some(1));
        assert_eq!(crossed(0, Some(1)), None);
        assert_eq!(
            crossed(3, None),
            Some(7),
            "starting late warns at the nearest threshold"
        );
    }

    #[test]
    fn the_metrics_file_has_one_gauge_per_site() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let certs = vec![
            Served {
                site: "a.test".into(),
                not_after: now + Duration::from_secs(86_400 * 5),
            },
            Served {
                site: "b.test".into(),
                not_after: now - Duration::from_secs(10),
            },
        ];
        let mut w = ExpiryWatch::new(certs, &dir.path().join("metrics.prom"), now);
        w.check(now);
        let text = std::fs::read_to_string(dir.path().join("metrics.prom")).unwrap();
        assert!(
            text.contains("candado_certificate_expiry_seconds{site=\"a.test\"} 432000\n"),
            "{text}"
        );
        assert!(
            text.contains("candado_certificate_expiry_seconds{site=\"b.test\"} -10\n"),
            "{text}"
        );
    }
}
