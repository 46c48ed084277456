//! `callguard serve` configuration: built-in defaults, then `--config FILE`
//! (TOML, every key documented in README.md), then command-line flags.
//! Plain data below the live state, which keeps it and reads its limits;
//! `serve` applies the listener and HTTP/2 parts. `webhook`: the
//! `[[webhooks]]` entries and their checks.

pub mod webhook;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::{TokenEntry, Tokens};
use crate::store::StoreSync;
use webhook::WebhookEntry;

/// The largest HTTP/2 flow-control window (2^31 - 1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Everything `serve` needs. `Default` is the built-in configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// gRPC address.
    pub listen: SocketAddr,
    /// HTTP address for /metrics, /healthz, /readyz.
    pub http: SocketAddr,
    /// Directory of the embedded alert store.
    pub data_dir: PathBuf,
    /// Lexicon folder; the lexicons embedded in the binary when absent.
    pub lexicons: Option<PathBuf>,
    /// Policy file; the built-in policy when absent.
    pub policy: Option<PathBuf>,
    /// Let SIGHUP reload a lexicon set that lacks a language or category
    /// the set in force has (refused by default).
    pub lexicon_allow_removal: bool,
    /// Days alerts and caller counts are kept.
    pub retention_days: u32,
    /// When an alert is durable: before it is published (`full`), or
    /// against a crash of the process at once and against power loss at
    /// the next checkpoint, a second later (`normal`). See `store`.
    pub store_sync: StoreSync,
    /// Free bytes on the data dir's file system below which `/readyz`
    /// reports not ready (a full disk shows before commits fail).
    pub store_min_free_bytes: u64,
    /// Key of the caller-id hashes; a secret kept in the store when absent.
    pub caller_key_file: Option<PathBuf>,
    pub limits: Limits,
    /// TLS for the gRPC port; plaintext when absent.
    pub tls: Option<TlsFiles>,
    /// Serve plaintext gRPC beyond loopback (behind a TLS-terminating proxy).
    pub allow_plaintext: bool,
    /// Bearer tokens; none means the service is open (loopback only).
    pub tokens: Vec<TokenEntry>,
    /// Endpoints alerts are POSTed to (checked in [`webhook`], run by
    /// `crate::webhook`).
    pub webhooks: Vec<WebhookEntry>,
    /// Engine cache folder (`crate::engine::Engine::load`): set by the
    /// command line from the environment, not by the config file; none
    /// (the default, and in tests) compiles the lexicons every time.
    #[serde(skip)]
    pub cache_dir: Option<PathBuf>,
    /// The file this was read from (not a key): SIGHUP reads its
    /// `[[webhooks]]` again.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// PEM files for the gRPC port's TLS.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// CA that client certificates must chain to (mutual TLS); clients
    /// need no certificate when absent.
    pub client_ca: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest fragment text, bytes.
    pub max_text_bytes: usize,
    /// Calls open at once, across all streams.
    pub max_active_calls: usize,
    /// Calls one tenant may have open at once, so that one tenant cannot
    /// fill `max_active_calls` for everyone.
    pub max_active_calls_per_tenant: usize,
    /// Calls the ingest streams of one token may have opened and not yet
    /// ended, so that one gateway (or a leaked token) cannot take its
    /// tenant's whole share. Applies when `[[tokens]]` are configured.
    pub max_active_calls_per_token: usize,
    /// Seconds the calls of an ingest stream that closed without ending
    /// them stay open (another stream may take them up) before they close.
    pub stream_grace_seconds: u64,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
    /// HTTP/2 flow-control window per stream: how much a client may send
    /// ahead of the server reading it. Buffered bytes per connection are
    /// bounded by streams × this (see `serve::start`).
    pub stream_window_bytes: u32,
    /// Largest gRPC message, bytes.
    pub max_message_bytes: usize,
    /// Live alerts buffered for subscribers before a slow one is served
    /// from the store instead.
    pub subscriber_buffer: usize,
    /// Ended calls kept for ListCalls / GetCall, and for how long (seconds).
    pub recent_ended_calls: usize,
    pub recent_ended_seconds: u64,
    /// gRPC connections open at once; a new one beyond is closed at once
    /// (logged, `callguard_connections_refused_total`). Capped below the
    /// open-files limit at start.
    pub max_connections: usize,
    /// Seconds a new connection has to send its first frame (the HTTP/2
    /// preface, or the TLS hello).
    pub first_frame_timeout_seconds: u64,
    /// Seconds a connection with no open stream is kept.
    pub idle_connection_timeout_seconds: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:50051".parse().expect("valid address"),
            http: "127.0.0.1:9090".parse().expect("valid address"),
            data_dir: PathBuf::from("callguard-data"),
            lexicons: None,
            policy: None,
            lexicon_allow_removal: false,
            retention_days: 30,
            store_sync: StoreSync::Normal,
            store_min_free_bytes: 16 * 1024 * 1024,
            caller_key_file: None,
            limits: Limits::default(),
            tls: None,
            allow_plaintext: false,
            tokens: Vec::new(),
            webhooks: Vec::new(),
            cache_dir: None,
            file: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_bytes: crate::event::DEFAULT_MAX_TEXT_BYTES,
            max_active_calls: 50_000,
            max_active_calls_per_tenant: 10_000,
            max_active_calls_per_token: 5_000,
            stream_grace_seconds: 60,
            max_streams_per_connection: 1_024,
            stream_window_bytes: 16 * 1024,
            max_message_bytes: 64 * 1024,
            subscriber_buffer: 4_096,
            recent_ended_calls: 1_000,
            recent_ended_seconds: 600,
            max_connections: 10_000,
            first_frame_timeout_seconds: 10,
            idle_connection_timeout_seconds: 300,
        }
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
    #[error("config {path}: {key}: {message}")]
    BadValue {
        path: String,
        key: &'static str,
        message: String,
    },
}

impl ServeConfig {
    /// Reads a TOML file over the defaults.
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = ServeConfig::parse(&text, &path.display().to_string())?;
        config.file = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn parse(text: &str, path: &str) -> Result<ServeConfig, ConfigError> {
        let config: ServeConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            line: e
                .span()
                .map_or(1, |s| text[..s.start].matches('\n').count() + 1),
            message: e.message().trim().replace('\n', " "),
        })?;
        let bad = |key, message: &str| ConfigError::BadValue {
            path: path.to_owned(),
            key,
            message: message.to_owned(),
        };
        let l = &config.limits;
        if l.max_text_bytes == 0 || l.max_text_bytes > l.max_message_bytes {
            return Err(bad(
                "limits.max_text_bytes",
                "must be between 1 and limits.max_message_bytes",
            ));
        }
        if l.max_active_calls == 0 {
            return Err(bad("limits.max_active_calls", "must be at least 1"));
        }
        if l.max_active_calls_per_tenant == 0 {
            return Err(bad(
                "limits.max_active_calls_per_tenant",
                "must be at least 1",
            ));
        }
        if l.max_active_calls_per_token == 0 {
            return Err(bad(
                "limits.max_active_calls_per_token",
                "must be at least 1",
            ));
        }
        if l.max_streams_per_connection == 0 {
            return Err(bad(
                "limits.max_streams_per_connection",
                "must be at least 1",
            ));
        }
        if !(1024..=MAX_WINDOW).contains(&l.stream_window_bytes) {
            return Err(bad(
                "limits.stream_window_bytes",
                "must be between 1024 and 2147483647",
            ));
        }
        if l.max_connections == 0 {
            return Err(bad("limits.max_connections", "must be at least 1"));
        }
        if l.first_frame_timeout_seconds == 0 || l.idle_connection_timeout_seconds == 0 {
            return Err(bad(
                "limits.first_frame_timeout_seconds",
                "connection timeouts must be at least 1 second",
            ));
        }
        if l.subscriber_buffer < 16 {
            return Err(bad("limits.subscriber_buffer", "must be at least 16"));
        }
        if config.retention_days == 0 {
            return Err(bad("retention_days", "must be at least 1"));
        }
        Tokens::from_config(&config.tokens).map_err(|e| bad("tokens", &e.to_string()))?;
        webhook::check_entries(&config.webhooks).map_err(|e| bad("webhooks", &e.to_string()))?;
        config.check_exposure().map_err(|m| bad("listen", &m))?;
        Ok(config)
    }

    /// Refuses to expose the service unprotected: beyond loopback it needs
    /// tokens, and TLS or an explicit `allow_plaintext`.
    pub fn check_exposure(&self) -> Result<(), String> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        if self.tokens.is_empty() {
            return Err(format!(
                "{} is beyond loopback but no [[tokens]] are configured; \
                 without tokens the service runs only on loopback",
                self.listen
            ));
        }
        if self.tls.is_none() && !self.allow_plaintext {
            return Err(format!(
                "{} is beyond loopback without [tls]; configure TLS, or set \
                 allow_plaintext = true if a TLS proxy sits in front",
                self.listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = ServeConfig::parse("", "c.toml").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(c.limits.max_text_bytes, 8192);
        assert_eq!(c.limits.max_active_calls_per_token, 5_000);
        let c = ServeConfig::parse(
            "retention_days = 7\n[limits]\nmax_active_calls = 10\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!((c.retention_days, c.limits.max_active_calls), (7, 10));
        assert_eq!(c.store_sync, StoreSync::Normal);
        let c = ServeConfig::parse("store_sync = \"full\"\n", "c.toml").unwrap();
        assert_eq!(c.store_sync, StoreSync::Full);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("listen = \"nowhere\"\n", "c.toml:1"),
            (
                "[limits]\nmax_active_calls = 0\n",
                "limits.max_active_calls: must be at least 1",
            ),
            (
                "[limits]\nmax_active_calls_per_token = 0\n",
                "limits.max_active_calls_per_token: must be at least 1",
            ),
            ("retension_days = 3\n", "unknown field `retension_days`"),
            ("store_sync = \"sometimes\"\n", "unknown variant `sometimes`"),
            (
                "listen = \"0.0.0.0:50051\"\n",
                "no [[tokens]] are configured",
            ),
            (
                "[[tokens]]\nname = \"gw\"\nsha256 = \"00\"\nrole = \"ingest\"\ntenant = \"acme\"\n",
                "tokens: tokens[0] (gw): sha256 must be 64 hex digits",
            ),
            (
                "[[tokens]]\nname = \"gw\"\nsha256 = \"00\"\nrole = \"boss\"\ntenant = \"acme\"\n",
                "unknown variant `boss`",
            ),
        ];
        let hash = crate::auth::hash_token("t");
        let exposed = format!(
            "listen = \"0.0.0.0:50051\"\n[[tokens]]\nname = \"gw\"\nsha256 = \"{hash}\"\nrole = \"ingest\"\ntenant = \"acme\"\n"
        );
        let e = ServeConfig::parse(&exposed, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("without [tls]"), "{e}");
        let opted_in = format!("allow_plaintext = true\n{exposed}");
        assert!(ServeConfig::parse(&opted_in, "c.toml").is_ok());
        for (text, want) in cases {
            let e = ServeConfig::parse(text, "c.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
