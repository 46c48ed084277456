//! The `loadgen` subcommand past its flags: run the traffic on a runtime of
//! its own, print the report, write the latency log, and with
//! `--echo-baseline` run the same traffic against the echo service and
//! print the ratios. `cli.rs` builds the [`LoadOptions`] from the flags.

use std::path::{Path, PathBuf};

use super::{run, run_echo_baseline, LoadError, LoadOptions, LoadReport};

/// Why the command could not run or write its results.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("creating the latency log {}", .path.display())]
    CreateLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the latency log {}", .path.display())]
    WriteLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the load and prints what it measured; the exit code is 1 when a
/// call failed.
pub fn command(
    options: &LoadOptions,
    latency_log: Option<&Path>,
    echo_baseline: bool,
) -> Result<i32, CommandError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    let report = runtime.block_on(run(options))?;
    println!("callguard\n{report}");
    if let Some(path) = latency_log {
        let file = std::fs::File::create(path).map_err(|source| CommandError::CreateLog {
            path: path.to_owned(),
            source,
        })?;
        report
            .write_timeline(std::io::BufWriter::new(file))
            .map_err(|source| CommandError::WriteLog {
                path: path.to_owned(),
                source,
            })?;
    }
    if echo_baseline {
        let echo = runtime.block_on(run_echo_baseline(options))?;
        println!("\necho baseline (tonic, same traffic)\n{echo}");
        if let Some(ratio) = report.ratio_to(&echo) {
            println!("\nevents/s callguard / echo = {ratio:.2}");
        }
        if let Some(ratio) = report.round_trip_p99_ratio(&echo) {
            let p99 = |r: &LoadReport| {
                r.round_trip_steady
                    .p99
                    .map_or(0.0, |d| d.as_secs_f64() * 1e3)
            };
            println!(
                "round trip p99 at full load callguard / echo = {ratio:.2} ({:.2} / {:.2} ms)",
                p99(&report),
                p99(&echo)
            );
        }
    }
    Ok(if report.failed_calls > 0 { 1 } else { 0 })
}
