//! The `replay` subcommand past its flags: which importer and options the
//! flags choose, then either a bounded replay of the files to stdout (JSON
//! Lines or the report) or the files streamed into a running `serve`.
//! `cli.rs` parses the flags and calls these in order; what they print and
//! return is what the command prints and exits with.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::event::Event;
use crate::grpc::client::ClientConfig;
use crate::grpc::pb;
use crate::policy::{Policy, PolicyError};

use super::import::{Format, ImportOptions};
use super::{bounded, ReplayError};

/// What the flags ask for, as the library's types.
pub struct Flags<'a> {
    pub paths: &'a [PathBuf],
    /// `--format`; `None` for auto.
    pub format: Option<Format>,
    /// `--map`, unparsed.
    pub map: Option<&'a str>,
    /// `--speakers`, unparsed.
    pub speakers: Option<&'a str>,
    pub language: Option<String>,
    /// `--policy`; the built-in policy when absent.
    pub policy: Option<&'a Path>,
}

/// Why a replay could not start. The messages name the flag, as the
/// command line wrote them.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("--format map needs --map text=FIELD,...")]
    MapWithoutFields,
    #[error("--map reads JSON records; it does not go with --format {0}")]
    MapWithFormat(&'static str),
    #[error("{0}")]
    Map(String),
    #[error("--speakers: {0}")]
    Speakers(String),
    #[error(transparent)]
    Paths(#[from] ReplayError),
    #[error("--speed must be 0 (as fast as possible) or a positive number")]
    Speed,
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// The files, importer and options a replay runs with.
pub struct Prepared {
    pub paths: Vec<PathBuf>,
    pub format: Option<Format>,
    pub options: ImportOptions,
    pub policy: Policy,
}

impl Prepared {
    /// Loads the policy, chooses the importer (`--map` implies `map`),
    /// parses `--map` and `--speakers`, and lists the files, in that order.
    pub fn from_flags(flags: Flags<'_>) -> Result<Prepared, CommandError> {
        let policy = match flags.policy {
            Some(path) => Policy::load(path)?,
            None => Policy::builtin(),
        };
        let format = match (flags.format, flags.map) {
            (None | Some(Format::Map), Some(_)) => Some(Format::Map),
            (Some(Format::Map), None) => return Err(CommandError::MapWithoutFields),
            (Some(chosen), Some(_)) => return Err(CommandError::MapWithFormat(chosen.as_str())),
            (chosen, None) => chosen,
        };
        let options = ImportOptions {
            map: match flags.map {
                Some(map) => Some(map.parse().map_err(CommandError::Map)?),
                None => None,
            },
            call_id: None,
            language: flags.language,
            speakers: match flags.speakers {
                Some(map) => map.parse().map_err(CommandError::Speakers)?,
                None => Default::default(),
            },
        };
        let paths = super::collect_paths(flags.paths)?;
        Ok(Prepared {
            paths,
            format,
            options,
            policy,
        })
    }
}

/// `--output`: alerts as JSON Lines, or the readable report.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Output {
    Jsonl,
    Report,
}

/// `replay` to stdout in bounded memory ([`bounded`]): alerts are written
/// as calls finish, in output order; a progress line (fragments/s, ETA) on
/// stderr when it is a terminal. `output` `None` is the report on a
/// terminal, JSON Lines when piped. The engine is loaded by `load` while
/// the first pass reads the files. Returns the exit code: 1 when a file
/// could not be read.
pub fn to_stdout<E, L>(prepared: &Prepared, output: Option<Output>, load: L) -> std::io::Result<i32>
where
    E: std::borrow::Borrow<Engine> + Send,
    L: FnOnce() -> std::io::Result<E> + Send,
{
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let report = match output {
        Some(choice) => choice == Output::Report,
        None => terminal,
    };
    let bar = progress_bar();
    let progress = |p: bounded::Progress| {
        if p.total_bytes == 0 {
            return;
        }
        // The bar and its ETA follow the bytes read (both passes); the
        // rate a user cares about is fragments. (Message first: each call
        // may draw.)
        let seconds = bar.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{} fragments, {:.0} fragments/s",
            p.fragments,
            p.fragments as f64 / seconds
        ));
        bar.set_length(p.total_bytes);
        bar.set_position(p.bytes);
    };
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut tally = super::report::Tally::default();
    let mut kept = Vec::new();
    let inputs = bounded::Inputs {
        paths: &prepared.paths,
        format: prepared.format,
        options: &prepared.options,
    };
    let streamed = bounded::replay_bounded_loading(
        &inputs,
        load,
        &prepared.policy,
        &mut |alert| {
            tally.add(alert);
            if report {
                kept.push(alert.clone());
                Ok(())
            } else {
                serde_json::to_writer(&mut out, alert)?;
                out.write_all(b"\n")
            }
        },
        &progress,
    )?;
    bar.finish();
    if report {
        // Styles pass to a terminal; stripped when piped or under NO_COLOR.
        let colour = anstream::AutoStream::choice(&std::io::stdout());
        let mut styled = anstream::AutoStream::new(&mut out as &mut dyn Write, colour);
        styled.write_all(super::report::render(&kept, streamed.calls).as_bytes())?;
    }
    out.flush()?;
    for e in &streamed.failed {
        // One bad file does not lose the others' results.
        eprintln!("error: {e}");
    }
    for refused in &streamed.refused {
        eprintln!(
            "refused event of call {}: {}",
            refused.call_id, refused.reason
        );
    }
    let failed = streamed.failed.len();
    eprintln!(
        "replayed {} call(s), {}{}",
        streamed.calls,
        tally.counts(),
        if failed > 0 {
            format!(", {failed} file(s) unreadable")
        } else {
            String::new()
        }
    );
    Ok(if failed > 0 { 1 } else { 0 })
}

/// The progress line of a replay of files, on stderr and only when it is
/// a terminal (hidden otherwise, and by indicatif under `TERM=dumb`: a log
/// or a pipe gets no `\r` lines); never on stdout, which carries the
/// alerts. indicatif redraws at most 20 times a second and computes the
/// ETA from the position's rate.
fn progress_bar() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
        .with_style(
            indicatif::ProgressStyle::with_template("{percent:>3}% [{bar:24}] {msg}, ETA {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        )
}

/// For `replay --server`: the calls are read whole (to be streamed at
/// their audio pace; the server does the scanning). A file that cannot be
/// read is reported on stderr and counted; the others are kept.
pub fn read_for_server(prepared: &Prepared) -> (Vec<Event>, usize) {
    let bar = if std::io::stderr().is_terminal() && prepared.paths.len() > 1 {
        indicatif::ProgressBar::new(prepared.paths.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("reading {pos}/{len} files")
                .expect("a valid template"),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let files = super::read_files(
        &prepared.paths,
        prepared.format,
        &prepared.options,
        &|done| bar.set_position(done as u64),
    );
    bar.finish();
    let mut failed = 0;
    let files: Vec<Vec<Event>> = files
        .into_iter()
        .filter_map(|file| {
            file.map_err(|e| {
                // One bad file does not lose the others' results.
                eprintln!("error: {e}");
                failed += 1;
            })
            .ok()
        })
        .collect();
    (files.into_iter().flatten().collect(), failed)
}

/// `replay --server`: streams the recorded calls into a running service at
/// `speed` × real time, printing each alert received with `show` (the
/// supervisor feed's line, which lives with the `watch` tool above this
/// layer). Returns the exit code: 1 when a file (`failed`) or a call's
/// stream failed.
pub fn to_server(
    client: &ClientConfig,
    events: Vec<Event>,
    speed: f64,
    failed: usize,
    show: &dyn Fn(&pb::Alert) -> String,
) -> Result<i32, CommandError> {
    if !(speed.is_finite() && speed >= 0.0) {
        return Err(CommandError::Speed);
    }
    let server = client.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    let stats = runtime.block_on(super::stream::stream_calls(client, events, speed));
    for alert in &stats.alerts {
        // Styles pass to a terminal; stripped when piped or under NO_COLOR.
        anstream::println!("{}", show(alert));
    }
    for (call, error) in &stats.failed_calls {
        eprintln!("call {call}: {error}");
    }
    eprintln!(
        "streamed {} call(s), {} event(s) to {server}: {} acknowledged, {} rejected, {} alert(s)",
        stats.calls,
        stats.events,
        stats.acks,
        stats.rejections,
        stats.alerts.len()
    );
    Ok(if failed > 0 || !stats.failed_calls.is_empty() {
        1
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(format: Option<Format>, map: Option<&str>, speakers: Option<&str>) -> String {
        let paths = [Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")];
        match Prepared::from_flags(Flags {
            paths: &paths,
            format,
            map,
            speakers,
            language: None,
            policy: None,
        }) {
            Ok(prepared) => format!(
                "{} file(s) as {}",
                prepared.paths.len(),
                prepared.format.map_or("auto", Format::as_str)
            ),
            Err(e) => e.to_string(),
        }
    }

    /// (name, --format, --map, --speakers, what comes of them)
    type Case = (
        &'static str,
        Option<Format>,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );

    #[test]
    fn flags_choose_the_importer_or_are_refused_by_name() {
        let cases: &[Case] = &[
            ("auto", None, None, None, "6 file(s) as auto"),
            ("chosen", Some(Format::Vtt), None, None, "6 file(s) as vtt"),
            (
                "map implies map",
                None,
                Some("text=t"),
                None,
                "6 file(s) as map",
            ),
            (
                "map, said twice",
                Some(Format::Map),
                Some("text=t"),
                None,
                "6 file(s) as map",
            ),
            (
                "map without fields",
                Some(Format::Map),
                None,
                None,
                "--format map needs --map text=FIELD,...",
            ),
            (
                "map with another format",
                Some(Format::Vtt),
                Some("text=t"),
                None,
                "--map reads JSON records; it does not go with --format vtt",
            ),
            (
                "bad map",
                None,
                Some("bogus"),
                None,
                "--map: \"bogus\" is not key=FIELD",
            ),
            (
                "bad speakers",
                None,
                None,
                Some("x"),
                "--speakers: speaker map: \"x\" is not label=agent|customer",
            ),
        ];
        for (name, format, map, speakers, want) in cases {
            assert_eq!(prepare(*format, *map, *speakers), *want, "{name}");
        }
    }
}
