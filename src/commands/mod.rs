//! Carries out the command line: each verb is a plain async function over the store.
mod admin;
mod audit;
mod disclose;
mod serve;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::store::Store;
use std::process::ExitCode;

/// Runs one command; errors go to stderr with their cause chain and exit code 1.
pub fn run(cli: Cli) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A worker thread per CPU this process may use; with only one (a container's quota,
/// `taskset`), a single-threaded runtime, where a multi-thread one would only add queues and
/// wake-ups between its one worker and the I/O driver (3.6% of the gateway's CPU per request in
/// paired runs, docs/BENCHMARKS.md).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::MockProvider { listen } => serve::mock_provider(&listen).await,
        Command::Serve => serve::serve(Config::load(&cli.config)?).await,
        Command::Check { files } => admin::check(&cli.config, &files),
        Command::Provider(c) => admin::provider(&open(&cli.config).await?, c, json).await,
        Command::Contract(c) => admin::contract(&open(&cli.config).await?, c, json).await,
        Command::Staff(c) => admin::staff(&open(&cli.config).await?, c, json).await,
        Command::Key(c) => admin::key(&open(&cli.config).await?, c, json).await,
        Command::Disclose(a) => {
            let config = Config::load(&cli.config)?;
            recover_stopped(&config).await;
            disclose::disclose(&config, a, json).await
        }
        Command::Form(a) => {
            let config = Config::load(&cli.config)?;
            recover_stopped(&config).await;
            disclose::form(&config, a, json).await
        }
        Command::Scan { contract, files } => {
            let config = Config::load(&cli.config)?;
            recover_stopped(&config).await;
            disclose::scan(&config, &contract, &files, json).await
        }
        Command::Audit(c) => {
            let config = Config::load(&cli.config)?;
            recover_stopped(&config).await;
            audit::run(&config, c, json).await
        }
        Command::Log(c) => {
            let config = Config::load(&cli.config)?;
            recover_stopped(&config).await;
            admin::log(
                &Store::connect(&config.database_url).await?,
                &config,
                c,
                json,
            )
            .await
        }
    }
}

async fn open(config: &std::path::Path) -> anyhow::Result<Store> {
    let c = Config::load(config)?;
    Store::connect(&c.database_url).await
}

/// Before a command reads the log: stores what a stopped gateway left in its journal (answers it
/// delivered in its last milliseconds). Never a reason for the command to fail.
async fn recover_stopped(config: &Config) {
    let recovered = match Store::connect(&config.database_url).await {
        Ok(store) => {
            crate::audit::recover_stopped(&store, &config.audit.journal_dir, &config.database_url)
                .await
        }
        Err(e) => Err(e),
    };
    match recovered {
        Ok((0, 0)) => {}
        Ok((stored, interrupted)) => eprintln!(
            "mamori: stored {stored} record(s) and {interrupted} interrupted request(s) a stopped gateway left in its journal"
        ),
        Err(e) => eprintln!(
            "mamori: warning: could not store what a stopped gateway left in its journal {}: {e:#}",
            config.audit.journal_dir.display()
        ),
    }
}
