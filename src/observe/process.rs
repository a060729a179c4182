//! The usual `process_*` metrics (as the Go and Python clients name them), read from
//! `/proc/self` at scrape time: CPU, resident memory, open and maximum file descriptors, start
//! time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Clock ticks per second of `/proc/PID/stat` times (USER_HZ, 100 on every Linux build).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub(super) struct Process;

impl Collector for Process {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stat) = Stat::read() else {
            return Ok(());
        };
        let mut f = e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?;
        f.encode_counter::<NoLabelSet, _, u64>(&stat.cpu_seconds, None)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stat.rss_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.vsize_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                open_fds(),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max_fds(),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                stat.start_time,
            ),
        ];
        for (name, help, v) in gauges {
            let mut f = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            f.encode_gauge(&v)?;
        }
        Ok(())
    }
}

struct Stat {
    cpu_seconds: f64,
    vsize_bytes: f64,
    rss_bytes: f64,
    start_time: f64,
}

impl Stat {
    fn read() -> Option<Stat> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the parenthesised command name (which may hold spaces): the
        // state is field 3; utime 14, stime 15, starttime 22, vsize 23.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        Some(Stat {
            cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
            vsize_bytes: field(23)?,
            rss_bytes: resident_kib()? * 1024.0,
            start_time: boot_time()? + field(22)? / TICKS_PER_SECOND,
        })
    }
}

/// VmRSS of `/proc/self/status`, in KiB (the page size need not be known).
fn resident_kib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn open_fds() -> f64 {
    std::fs::read_dir("/proc/self/fd").map_or(0.0, |d| d.count() as f64)
}

fn max_fds() -> f64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0.0, |(soft, _)| soft as f64)
}
