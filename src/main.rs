//! The `mamori` binary: parse the command line, hand over to the library.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = mamori::cli::Cli::parse();
    mamori::commands::run(cli)
}
