use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
