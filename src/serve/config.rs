//! `callguard serve` configuration: built-in defaults, then `--config FILE`
//! (TOML, every key documented in README.md), then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    /// Days alerts and caller counts are kept.
    pub retention_days: u32,
    pub limits: Limits,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest fragment text, bytes.
    pub max_text_bytes: usize,
    /// Calls open at once, across all streams.
    pub max_active_calls: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
    /// Largest gRPC message, bytes.
    pub max_message_bytes: usize,
    /// Live alerts buffered for subscribers before a slow one is served
    /// from the store instead.
    pub subscriber_buffer: usize,
    /// Ended calls kept for ListCalls / GetCall, and for how long (seconds).
    pub recent_ended_calls: usize,
    pub recent_ended_seconds: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:50051".parse().expect("valid address"),
            http: "127.0.0.1:9090".parse().expect("valid address"),
            data_dir: PathBuf::from("callguard-data"),
            lexicons: None,
            policy: None,
            retention_days: 30,
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_bytes: crate::event::DEFAULT_MAX_TEXT_BYTES,
            max_active_calls: 50_000,
            max_streams_per_connection: 1_024,
            max_message_bytes: 64 * 1024,
            subscriber_buffer: 4_096,
            recent_ended_calls: 1_000,
            recent_ended_seconds: 600,
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
        ServeConfig::parse(&text, &path.display().to_string())
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
        if l.max_streams_per_connection == 0 {
            return Err(bad(
                "limits.max_streams_per_connection",
                "must be at least 1",
            ));
        }
        if l.subscriber_buffer < 16 {
            return Err(bad("limits.subscriber_buffer", "must be at least 16"));
        }
        if config.retention_days == 0 {
            return Err(bad("retention_days", "must be at least 1"));
        }
        Ok(config)
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
        let c = ServeConfig::parse(
            "retention_days = 7\n[limits]\nmax_active_calls = 10\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!((c.retention_days, c.limits.max_active_calls), (7, 10));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("listen = \"nowhere\"\n", "c.toml:1"),
            (
                "[limits]\nmax_active_calls = 0\n",
                "limits.max_active_calls: must be at least 1",
            ),
            ("retension_days = 3\n", "unknown field `retension_days`"),
        ];
        for (text, want) in cases {
            let e = ServeConfig::parse(text, "c.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
