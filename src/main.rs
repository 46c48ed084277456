//! The `callguard` binary: thin glue over the library (see `cli`).

mod cli;

use callguard::lexicon::Lexicon;
use clap::{CommandFactory, FromArgMatches};

fn main() {
    // `--version` names the lexicons built in too: an alert's
    // `lexicon_version` can be matched to the binary that raised it.
    let version = format!(
        "{} (lexicons {})",
        env!("CARGO_PKG_VERSION"),
        Lexicon::embedded_version()
    );
    let matches = cli::Cli::command()
        .version(version.leak() as &'static str)
        .get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli::run(cli) {
        Ok(code) => std::process::exit(code),
        // Output piped into `head` or a pager that quit: what was wanted
        // has been read; stop quietly, as other Unix tools do.
        Err(e) if closed_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn closed_pipe(error: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            // JSON Lines output wraps the write's error in its own.
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                == broken
    })
}
