//! The `mamori` binary: parse the command line, hand over to the library.
use clap::Parser;

fn main() -> std::process::ExitCode {
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`mamori log list | head`), instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    mamori::memory::keep_large_buffers();
    let cli = mamori::cli::Cli::parse();
    mamori::commands::run(cli)
}
