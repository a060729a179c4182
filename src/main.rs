use std::process::ExitCode;

use clap::Parser;

/// jemalloc rather than glibc's malloc: after a burst of connections glibc kept every page
/// (154 MiB of RSS for 5000 closed connections, never returned), jemalloc's background thread
/// gives them back within seconds, and an idle connection costs less (bench/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Returns freed memory to the system on a timer, not only when a thread next allocates.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let cli = candado::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("candado: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(candado::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` is the whole chain, each cause after a colon.
            eprintln!("candado: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
