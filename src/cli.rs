//! Command-line surface (DESIGN section 5). Thin glue: parse flags, call the
//! library, print. `anyhow` lives here and in `main` only.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use callguard::category::Speaker;
use callguard::engine::Engine;

#[derive(Parser)]
#[command(
    name = "callguard",
    version,
    about = "Real-time customer-harassment detection for call centres"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Replay recorded calls (JSON Lines files or folders) through the same
    /// engine and policy as `serve`; alerts as JSON Lines on stdout.
    Replay(ReplayArgs),
    /// Replay labelled calls and report, per category and rule, what was
    /// found, missed and falsely raised (precision, recall).
    Eval(EvalArgs),
    /// Simulated calls against a running serve: events/s, ingest-to-alert
    /// latency and send-to-ack round trip (p50/p99/p99.9), server CPU and
    /// RSS; --echo-baseline compares with a minimal tonic echo service.
    Loadgen(LoadgenArgs),
    /// A supervisor's live alert feed in the terminal (reconnects and
    /// resumes by itself).
    Watch(WatchArgs),
    /// Run the service: gRPC ingest and alert streams, durable alert log,
    /// /metrics /healthz /readyz. Built-in defaults need no file.
    Serve(ServeArgs),
    /// Validate lexicons and run the examples their entries carry.
    Lexicon {
        #[command(subcommand)]
        command: LexiconCommand,
    },
    /// Scan lines of text (one utterance per line) and print the hits as
    /// JSON Lines: a quick look at what the engine sees, and the input of
    /// the corpus evaluation scripts.
    Scan(ScanArgs),
    /// Bearer tokens for `serve`'s [[tokens]] config.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a fresh random token (give it to the client) and the
    /// [[tokens]] entry holding only its hash (put it in the config).
    New {
        /// Who holds the token (shown in logs).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The tenant the token serves, or "*" for all.
        #[arg(long)]
        tenant: String,
    },
    /// Print the SHA-256 of a token read from stdin (to check a config entry).
    Hash,
}

#[derive(Subcommand)]
pub enum LexiconCommand {
    /// Check a lexicon folder: syntax, categories, duplicates, exclusions,
    /// and every `match` / `no_match` example.
    Check {
        /// The lexicon folder (holding lexicon.toml).
        dir: PathBuf,
        /// Also list terms that carry no `match` example.
        #[arg(long)]
        verbose: bool,
        /// Print every phrase a term's templates expand to (its parts and
        /// not_near phrases for a proximity term). ID is a term id, or
        /// language/id, or the rule name language/category/id.
        #[arg(long, value_name = "ID")]
        expand: Vec<String>,
        /// The folder in force (what the service runs now): fail when DIR
        /// lacks a language or category it has.
        #[arg(long, value_name = "DIR")]
        against: Option<PathBuf>,
        /// With --against: accept the removal (still listed).
        #[arg(long, requires = "against")]
        allow_removal: bool,
    },
}

#[derive(Args)]
pub struct ReplayArgs {
    /// Files or folders (searched recursively for *.jsonl / *.json).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Input format: auto (by extension and content), jsonl, aws (Transcribe
    /// batch JSON), aws-stream (captured streaming events, one per line),
    /// aws-analytics (Call Analytics / Contact Lens, post-call or streaming),
    /// azure (Speech batch or real-time results), deepgram (REST response or
    /// live messages), whisper (JSON), vtt, srt, map (JSON records, see --map).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Which field of JSON records holds what, e.g.
    /// "text=transcript,speaker=speaker_role,start_ms=start_ms,duration_ms=duration_ms";
    /// keys: text, speaker, start, end, duration (seconds), start_ms, end_ms,
    /// duration_ms, utterance, final, call, language, records. Implies --format map.
    #[arg(long, value_name = "KEY=FIELD,...")]
    pub map: Option<String>,
    /// Speaker or channel labels to roles, e.g. "spk_0=agent,spk_1=customer"
    /// or "ch_0=agent". Default: role names (agent, customer...) are used as
    /// they are; otherwise the first speaker heard is the agent, the second
    /// the customer, and unlabelled text is the customer's.
    #[arg(long)]
    pub speakers: Option<String>,
    /// Language of imported transcripts (BCP-47), when the file does not say.
    #[arg(long)]
    pub language: Option<String>,
    /// Lexicon folder; the embedded lexicons when absent.
    #[arg(long)]
    pub lexicons: Option<PathBuf>,
    /// Policy file; the built-in policy when absent.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Stream the calls into a running `serve` at this gRPC address
    /// (e.g. 127.0.0.1:50051) instead of replaying offline.
    #[arg(long)]
    pub server: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// With --server: N× real time (0 = as fast as the server answers).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// jsonl (alerts, DESIGN section 3) or report (timeline and summary).
    /// Default: report on a terminal, jsonl when piped.
    #[arg(long, value_enum)]
    pub output: Option<OutputArg>,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Labelled calls (JSON Lines files or folders of them).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Labels: {"<call_id>": {"expected": ["violence", ...], "benign": false}, ...}
    #[arg(long)]
    pub labels: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Fail (exit 1) if recall or the benign false-alarm rate is worse than
    /// this saved report (JSON).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Lexicon folder; the embedded lexicons when absent.
    #[arg(long)]
    pub lexicons: Option<PathBuf>,
    /// Policy file; the built-in policy when absent.
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

/// How a client reaches `serve`: TLS and token (the address is `--server`).
#[derive(Args, Clone, Debug, Default)]
pub struct ConnectionArgs {
    /// File holding the bearer token [env: CALLGUARD_TOKEN holds the token itself].
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// PEM CA of the server certificate; implies TLS (https).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS (with --client-key).
    #[arg(long)]
    pub client_cert: Option<PathBuf>,
    /// PEM key of --client-cert.
    #[arg(long)]
    pub client_key: Option<PathBuf>,
    /// Server name to verify the certificate against, when not the host of --server.
    #[arg(long)]
    pub tls_domain: Option<String>,
}

impl ConnectionArgs {
    /// The client configuration for `server`. The token comes from
    /// --token-file or CALLGUARD_TOKEN, never from the command line
    /// (other users can read a process's arguments).
    pub fn client(&self, server: &str) -> Result<callguard::grpc::client::ClientConfig> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading token file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("CALLGUARD_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        };
        Ok(callguard::grpc::client::ClientConfig {
            server: server.to_owned(),
            token,
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            tls_domain: self.tls_domain.clone(),
        })
    }
}

#[derive(Args)]
pub struct LoadgenArgs {
    /// The service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub server: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Concurrent calls (up to 20,000).
    #[arg(long, default_value_t = 1_000)]
    pub calls: usize,
    /// HTTP/2 connections the calls share.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Calls sharing one ingest stream, as a media gateway that multiplexes
    /// its calls would (1: a stream per call, the normal case).
    #[arg(long, default_value_t = 1)]
    pub calls_per_stream: usize,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Events per second per call (interim and final fragments).
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    /// Share of utterances that are abusive.
    #[arg(long, default_value_t = 0.01)]
    pub abusive_share: f64,
    /// The server's process id, to read its CPU and RSS from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seed of the simulated traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Spread call starts over this many seconds (0 = all at once).
    #[arg(long, default_value_t = 0)]
    pub ramp_up: u64,
    /// Also run the same traffic (same seed, streams, pace) against a
    /// minimal in-process tonic echo service, after the callguard run, and
    /// print the ratios: events/s, and round-trip p99 at full load.
    #[arg(long)]
    pub echo_baseline: bool,
    /// Write every latency sample (send time, latency) to this CSV file.
    #[arg(long)]
    pub latency_log: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct WatchArgs {
    /// The service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub server: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only these calls (repeatable).
    #[arg(long = "call")]
    pub calls: Vec<String>,
    /// Only these categories (repeatable); the server refuses an id the
    /// rules in force do not know.
    #[arg(long = "category")]
    pub categories: Vec<String>,
    /// Only this agent's calls.
    #[arg(long = "agent")]
    pub agent: Option<String>,
    /// Minimum severity.
    #[arg(long, value_enum)]
    pub min_severity: Option<SeverityArg>,
    /// Start after this event id (the stored alerts after it first);
    /// 0 (the default) is live alerts from now.
    #[arg(long, default_value_t = 0, conflicts_with = "from_start")]
    pub after: u64,
    /// Show the stored alert log from its first alert, then live.
    #[arg(long)]
    pub from_start: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    /// gRPC address [default: 127.0.0.1:50051].
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// HTTP address for metrics and health [default: 127.0.0.1:9090].
    #[arg(long)]
    pub http: Option<std::net::SocketAddr>,
    /// Directory of the alert store [default: ./callguard-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML; keys in README.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

#[derive(Args)]
pub struct ScanArgs {
    /// Files to read (one utterance per line); `-` or none for stdin.
    pub files: Vec<PathBuf>,
    /// BCP-47 language of the text (e.g. ja, en-US); all languages when absent.
    #[arg(long)]
    pub language: Option<String>,
    /// Whose speech it is.
    #[arg(long, value_enum, default_value = "customer")]
    pub speaker: SpeakerArg,
    /// Lexicon folder; the embedded lexicons when absent.
    #[arg(long)]
    pub lexicons: Option<PathBuf>,
    /// Treat consecutive lines as consecutive fragments of one speaker
    /// (phrases split across lines are found).
    #[arg(long)]
    pub stream: bool,
}

// The fixed choices of the flags above. Variants carry `//` comments, not
// doc comments: clap would print a doc comment as a per-value help list.
// Spellings are clap's kebab-case of the variant (AwsStream: aws-stream).

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Ingest,
    Supervisor,
    Admin,
}

impl RoleArg {
    fn role(self) -> callguard::auth::Role {
        use callguard::auth::Role;
        match self {
            RoleArg::Ingest => Role::Ingest,
            RoleArg::Supervisor => Role::Supervisor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    // by extension and content
    Auto,
    Jsonl,
    Aws,
    AwsStream,
    AwsAnalytics,
    Azure,
    Deepgram,
    Whisper,
    Vtt,
    Srt,
    Map,
}

impl FormatArg {
    /// The importer's format; `None` for auto.
    fn format(self) -> Option<callguard::replay::import::Format> {
        use callguard::replay::import::Format;
        Some(match self {
            FormatArg::Auto => return None,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Aws => Format::Aws,
            FormatArg::AwsStream => Format::AwsStream,
            FormatArg::AwsAnalytics => Format::AwsAnalytics,
            FormatArg::Azure => Format::Azure,
            FormatArg::Deepgram => Format::Deepgram,
            FormatArg::Whisper => Format::Whisper,
            FormatArg::Vtt => Format::Vtt,
            FormatArg::Srt => Format::Srt,
            FormatArg::Map => Format::Map,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    Jsonl,
    Report,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SeverityArg {
    Info,
    Warning,
    Critical,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SpeakerArg {
    Customer,
    Agent,
}

impl SpeakerArg {
    fn speaker(self) -> Speaker {
        match self {
            SpeakerArg::Customer => Speaker::Customer,
            SpeakerArg::Agent => Speaker::Agent,
        }
    }
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Lexicon {
            command:
                LexiconCommand::Check {
                    dir,
                    verbose,
                    expand,
                    against,
                    allow_removal,
                },
        } => Ok(callguard::tools::lexicon_check::run(
            &dir,
            verbose,
            &expand,
            against.as_deref(),
            allow_removal,
        )?),
        Command::Scan(args) => scan(args),
        Command::Serve(args) => serve(args),
        Command::Replay(args) => replay(args),
        Command::Watch(args) => watch(args),
        Command::Eval(args) => eval(args),
        Command::Loadgen(args) => loadgen(args),
        Command::Token { command } => token(command),
    }
}

fn token(command: TokenCommand) -> Result<i32> {
    use callguard::auth::{hash_token, new_token};
    match command {
        TokenCommand::New { name, role, tenant } => {
            if tenant.trim().is_empty() {
                bail!("--tenant must be a tenant id or \"*\"");
            }
            let token = new_token().context("reading the system's random source")?;
            eprintln!("token (give it to {name}; it is not stored anywhere):");
            println!("{token}");
            eprintln!("\nconfig entry (holds only the hash):");
            let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
            eprintln!(
                "[[tokens]]\nname = {}\nsha256 = \"{}\"\nrole = \"{}\"\ntenant = {}",
                quote(&name),
                hash_token(&token),
                role.role().as_str(),
                quote(&tenant)
            );
        }
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("reading the token from stdin")?;
            println!("{}", hash_token(token.trim()));
        }
    }
    Ok(0)
}

fn loadgen(args: LoadgenArgs) -> Result<i32> {
    use callguard::tools::loadgen;
    let options = loadgen::LoadOptions {
        client: args.connection.client(&args.server)?,
        calls: args.calls,
        connections: args.connections,
        calls_per_stream: args.calls_per_stream,
        duration: std::time::Duration::from_secs(args.duration),
        events_per_second_per_call: args.rate,
        abusive_share: args.abusive_share,
        server_pid: args.server_pid,
        seed: args.seed,
        ramp_up: std::time::Duration::from_secs(args.ramp_up),
    };
    Ok(loadgen::command(
        &options,
        args.latency_log.as_deref(),
        args.echo_baseline,
    )?)
}

fn eval(args: EvalArgs) -> Result<i32> {
    use callguard::tools::eval;
    let engine = load_engine(args.lexicons.as_deref())?;
    let policy = match &args.policy {
        Some(path) => callguard::policy::Policy::load(path)?,
        None => callguard::policy::Policy::builtin(),
    };
    let labels =
        eval::Labels::load_with_categories(&args.labels, &engine.lexicon().extra_categories)?;
    let report = eval::run(&args.paths, &labels, &engine, &policy)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        write!(out, "{}", report.to_json())?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    if let Some(path) = &args.baseline {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let baseline = eval::Report::from_json(&text)?;
        if let Err(problems) = eval::compare(&report, &baseline) {
            for p in problems {
                eprintln!("worse than {}: {p}", path.display());
            }
            return Ok(1);
        }
        eprintln!("no worse than {}", path.display());
    }
    Ok(0)
}

fn watch(args: WatchArgs) -> Result<i32> {
    use callguard::grpc::pb;
    let min_severity = match args.min_severity {
        Some(SeverityArg::Info) => pb::Severity::Info,
        Some(SeverityArg::Warning) => pb::Severity::Warning,
        Some(SeverityArg::Critical) => pb::Severity::Critical,
        None => pb::Severity::Unspecified,
    };
    let options = callguard::tools::watch::WatchOptions {
        client: args.connection.client(&args.server)?,
        request: pb::SubscribeRequest {
            tenant: args.tenant.unwrap_or_default(),
            call_ids: args.calls,
            categories: args.categories,
            min_severity: min_severity as i32,
            after_event_id: args.after,
            from_start: args.from_start,
            agent_id: args.agent.unwrap_or_default(),
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Styles pass to a terminal; stripped when piped or under NO_COLOR.
    let mut out = anstream::stdout();
    runtime
        .block_on(callguard::tools::watch::watch(options, &mut out))
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    Ok(0)
}

fn replay(args: ReplayArgs) -> Result<i32> {
    use callguard::replay::command::{self, Flags, Prepared};
    let prepared = Prepared::from_flags(Flags {
        paths: &args.paths,
        format: args.format.format(),
        map: args.map.as_deref(),
        speakers: args.speakers.as_deref(),
        language: args.language.clone(),
        policy: args.policy.as_deref(),
    })?;
    let Some(server) = &args.server else {
        let output = args.output.map(|choice| match choice {
            OutputArg::Jsonl => command::Output::Jsonl,
            OutputArg::Report => command::Output::Report,
        });
        // The lexicons load while the first pass reads the files.
        let lexicons = args.lexicons.as_deref();
        return Ok(command::to_stdout(&prepared, output, || {
            load_engine(lexicons).map_err(|e| std::io::Error::other(format!("{e:#}")))
        })?);
    };
    let (events, failed) = command::read_for_server(&prepared);
    let client = args.connection.client(server)?;
    Ok(command::to_server(
        &client,
        events,
        args.speed,
        failed,
        &callguard::tools::watch::format_alert,
    )?)
}

fn serve(args: ServeArgs) -> Result<i32> {
    init_logging(args.log_format);
    let mut config = match &args.config {
        Some(path) => callguard::serve::ServeConfig::load(path)?,
        None => callguard::serve::ServeConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(http) = args.http {
        config.http = http;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    config.cache_dir = callguard::engine::default_cache_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(callguard::serve::run(config))?;
    Ok(0)
}

/// Logs through `tracing`: human-readable or JSON lines, level from
/// RUST_LOG (default info). Transcript text is never logged at info.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Loads the lexicon set from `dir`, or the embedded one, with no
/// automaton compiled yet: the command compiles the languages it needs
/// ([`Engine::prepare_languages`]). Through the engine cache
/// ([`callguard::engine::default_cache_dir`]): a set compiled before is
/// read back, not parsed and compiled again.
pub fn load_engine(dir: Option<&Path>) -> Result<Engine> {
    let cache = callguard::engine::default_cache_dir();
    Engine::load(dir, cache.as_deref()).context("loading lexicons")
}

fn scan(args: ScanArgs) -> Result<i32> {
    let engine = load_engine(args.lexicons.as_deref())?;
    engine.prepare(args.language.as_deref())?;
    callguard::tools::scan::scan(
        &engine,
        &callguard::tools::scan::ScanOptions {
            files: &args.files,
            language: args.language.as_deref(),
            speaker: args.speaker.speaker(),
            stream: args.stream,
        },
    )?;
    Ok(0)
}
