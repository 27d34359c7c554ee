//! `wap-relay`: see `relay_server::cli`.

use clap::Parser;

/// mimalloc instead of the system allocator: the relay allocates per request and per attempt, and
/// glibc's malloc was about a sixth of its CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = relay_server::cli::Cli::parse();
    match relay_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
