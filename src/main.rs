//! The `triaged` binary: parses the command line, sets up logging, loads the config
//! and turns signals into a cancellation token. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use triaged::config::{Overrides, Settings};

/// jemalloc instead of glibc's malloc: the ingest path allocates on the HTTP workers
/// and frees on the correlation thread; glibc spent ~40 % of the daemon's CPU in
/// malloc/free under load (perf) and kept freed memory. BENCHMARKS.md has the figures.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread returns freed pages to
/// the system after a second, so RSS follows what is live rather than the peak.
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: a pointer to an immutable, 'static, NUL-terminated string.
unsafe impl Sync for MallocConf {}
use triaged::rules::Rules;

#[derive(Parser)]
#[command(
    name = "triaged",
    version,
    about = "Monitoring-to-incident daemon for ISO/IEC 20000-1 service management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Configuration file.
        #[arg(
            long,
            short,
            default_value = "config/triaged.toml",
            env = "TRIAGED_CONFIG"
        )]
        config: PathBuf,
        /// Listen address (overrides server.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory (overrides store.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check the configuration file and the rules it points to, then exit.
    CheckConfig {
        /// Configuration file.
        #[arg(
            long,
            short,
            default_value = "config/triaged.toml",
            env = "TRIAGED_CONFIG"
        )]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Serve {
            config,
            listen,
            data_dir,
        } => serve(&config, Overrides { listen, data_dir }),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let settings = match Settings::load(path, &Overrides::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Rules::load(&settings.rules.dir, &settings.rules.limits) {
        Ok(rules) => {
            println!(
                "{}: ok ({} rule script(s) in {})",
                path.display(),
                rules.script_names().len(),
                settings.rules.dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &std::path::Path, overrides: Overrides) -> ExitCode {
    let settings = match Settings::load(path, &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    triaged::telemetry::init_logging(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Installed before anything starts, so no signal can arrive unhandled.
        let term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(term, int, shutdown.clone()));
        triaged::app::run(settings, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "triaged stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM starts a graceful shutdown; a second one exits at once.
async fn signals(mut term: Signal, mut int: Signal, shutdown: CancellationToken) {
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "graceful shutdown requested");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second signal: exiting without draining");
    std::process::exit(130);
}
