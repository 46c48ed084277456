//! `[[webhooks]]` entries as the config file writes them, and their
//! checks: a unique name, a usable `http://` or `https://` URL (with the
//! TLS roots its `ca_file` gives), one readable HMAC key of at least 16
//! bytes, timings in range. [`ServeConfig::parse`](super::ServeConfig::parse)
//! refuses a file whose entries fail them; `crate::webhook` runs the
//! entries that pass ([`check_entries`] is the one place both read).
//!
//! What needs the live state — that a category filter names a category of
//! the rules in force — is checked by `crate::webhook` when it starts or
//! reloads them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hyper::Uri;
use serde::Deserialize;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};

use crate::category::Severity;

/// The body a webhook sends (`body = "json" | "slack" | "teams"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    /// The alert's JSON (DESIGN section 3), as `GET /api/v1/alerts` serves it.
    #[default]
    Json,
    /// `{"text": …}`: a Slack incoming webhook (and Mattermost, Rocket.Chat).
    Slack,
    /// A message with one Adaptive Card: a Teams workflow's "when a webhook
    /// request is received" trigger (the successor of Office 365 connectors).
    Teams,
}

/// One `[[webhooks]]` entry of the config, as written.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookEntry {
    /// Unique; names the offset file, the metrics' `webhook` label and the
    /// logs (letters, digits, `-`, `_`).
    pub name: String,
    /// `http://` or `https://`. Treated as a secret (chat services put a
    /// token in the path): logs show its scheme, host and port only.
    pub url: String,
    pub body: BodyKind,
    /// The HMAC key, exactly one of: inline, a file's contents (trailing
    /// newline dropped), an environment variable's value.
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    /// Filters as `Subscribe`'s: every one set must match.
    pub tenant: Option<String>,
    pub call_ids: Vec<String>,
    pub categories: Vec<String>,
    pub min_severity: Option<Severity>,
    pub agent_id: Option<String>,
    /// Connect to status line, per attempt.
    pub timeout_ms: u64,
    /// First retry delay, doubled per failed attempt up to `retry_max_ms`.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// PEM CA certificates the endpoint's TLS certificate may chain to
    /// instead of the system's roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for WebhookEntry {
    fn default() -> Self {
        WebhookEntry {
            name: String::new(),
            url: String::new(),
            body: BodyKind::Json,
            secret: None,
            secret_file: None,
            secret_env: None,
            tenant: None,
            call_ids: Vec::new(),
            categories: Vec::new(),
            min_severity: None,
            agent_id: None,
            timeout_ms: 10_000,
            retry_min_ms: 1_000,
            retry_max_ms: 300_000,
            ca_file: None,
        }
    }
}

/// Never the secret or the URL's path (the config is printed at debug).
impl std::fmt::Debug for WebhookEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEntry")
            .field("name", &self.name)
            .field("body", &self.body)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .field("secret_env", &self.secret_env)
            .finish_non_exhaustive()
    }
}

/// A `[[webhooks]]` entry that cannot be used, naming it and the key.
#[derive(Debug, thiserror::Error)]
#[error("webhooks[{index}]{}: {field}: {problem}", if name.is_empty() { String::new() } else { format!(" ({name})") })]
pub struct WebhookConfigError {
    pub index: usize,
    pub name: String,
    pub field: &'static str,
    pub problem: Problem,
}

/// What is wrong with one key of a `[[webhooks]]` entry.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("required")]
    Missing,
    #[error("{0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    BadName(String),
    #[error("also the name of webhooks[{0}]; names must be unique")]
    Duplicate(usize),
    #[error("not a usable URL: {0}")]
    BadUrl(String),
    #[error("empty; an HMAC key needs at least 16 bytes")]
    EmptySecret,
    #[error("{0} bytes; an HMAC key needs at least 16 (e.g. `openssl rand -hex 32`)")]
    ShortSecret(usize),
    #[error("give exactly one of secret, secret_file, secret_env")]
    SecretSources,
    #[error("cannot read {0}")]
    SecretFile(String),
    #[error("environment variable {0} is not set or not UTF-8")]
    SecretEnv(String),
    #[error("must be at least {0}")]
    TooSmall(u64),
    #[error("below retry_min_ms")]
    RetryOrder,
    #[error("{0}")]
    CaFile(String),
    #[error("unknown category {0:?} for the rules in force")]
    UnknownCategory(String),
}

/// Shortest HMAC key accepted, bytes.
const MIN_SECRET_BYTES: usize = 16;

/// An entry that passed every check: the entry, where it POSTs, and its
/// HMAC key as read now (from the entry, a file or the environment).
pub struct CheckedEntry {
    pub entry: WebhookEntry,
    pub endpoint: Endpoint,
    pub secret: Vec<u8>,
}

/// Checks every entry (names, URLs, secrets, timings) and reads the
/// secrets; the first problem is the error.
pub fn check_entries(entries: &[WebhookEntry]) -> Result<Vec<CheckedEntry>, WebhookConfigError> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut checked = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let fail = |field, problem| WebhookConfigError {
            index,
            name: entry.name.clone(),
            field,
            problem,
        };
        if entry.name.is_empty() {
            return Err(fail("name", Problem::Missing));
        }
        let valid_name = entry.name.len() <= 64
            && entry
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(fail("name", Problem::BadName(entry.name.clone())));
        }
        if let Some(first) = names.insert(&entry.name, index) {
            return Err(fail("name", Problem::Duplicate(first)));
        }
        if entry.url.is_empty() {
            return Err(fail("url", Problem::Missing));
        }
        let endpoint = Endpoint::parse(&entry.url, entry.ca_file.as_deref()).map_err(|p| {
            let field = if matches!(p, Problem::CaFile(_)) {
                "ca_file"
            } else {
                "url"
            };
            fail(field, p)
        })?;
        let secret = read_secret(entry).map_err(|(field, p)| fail(field, p))?;
        if entry.timeout_ms < 100 {
            return Err(fail("timeout_ms", Problem::TooSmall(100)));
        }
        if entry.retry_min_ms < 10 {
            return Err(fail("retry_min_ms", Problem::TooSmall(10)));
        }
        if entry.retry_max_ms < entry.retry_min_ms {
            return Err(fail("retry_max_ms", Problem::RetryOrder));
        }
        checked.push(CheckedEntry {
            entry: entry.clone(),
            endpoint,
            secret,
        });
    }
    Ok(checked)
}

fn read_secret(entry: &WebhookEntry) -> Result<Vec<u8>, (&'static str, Problem)> {
    let (field, value) = match (&entry.secret, &entry.secret_file, &entry.secret_env) {
        (Some(s), None, None) => ("secret", s.clone()),
        (None, Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                (
                    "secret_file",
                    Problem::SecretFile(format!("{}: {e}", path.display())),
                )
            })?;
            (
                "secret_file",
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )
        }
        (None, None, Some(var)) => {
            let value =
                std::env::var(var).map_err(|_| ("secret_env", Problem::SecretEnv(var.clone())))?;
            ("secret_env", value)
        }
        (None, None, None) => return Err(("secret", Problem::Missing)),
        _ => return Err(("secret", Problem::SecretSources)),
    };
    match value.len() {
        0 => Err((field, Problem::EmptySecret)),
        n if n < MIN_SECRET_BYTES => Err((field, Problem::ShortSecret(n))),
        _ => Ok(value.into_bytes()),
    }
}

/// Where a webhook POSTs: its URL parsed and checked once, with the TLS
/// client configuration of an `https://` one.
pub struct Endpoint {
    /// For the request line: path and query.
    pub path: String,
    /// For the `Host` header: host and port as written.
    pub authority: String,
    /// For connecting: the host without IPv6 brackets, and the port.
    pub host: String,
    pub port: u16,
    /// `https://`: the roots its certificate must chain to, and the name
    /// it must carry.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// BLAKE3 of the `ca_file` as read: a reload restarts a webhook whose
    /// CA file was replaced under the same path.
    pub ca_digest: Option<[u8; 32]>,
}

impl Endpoint {
    /// Parses an `http://` or `https://` URL with a host.
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Endpoint, Problem> {
        let bad = |reason: &str| Problem::BadUrl(reason.to_owned());
        if !url.contains("://") {
            return Err(bad("no scheme: http:// or https://"));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(bad(&format!("scheme {other:?}: http or https only"))),
            None => return Err(bad("no scheme: http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "user:password@ in the URL: not supported (sign with the secret)",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let mut ca_digest = None;
        let tls = if https {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|e| bad(&format!("host {host:?}: {e}")))?;
            let (config, digest) = tls_config(ca_file)?;
            ca_digest = digest;
            Some((config, name))
        } else {
            if ca_file.is_some() {
                return Err(Problem::CaFile(
                    "ca_file is set but the URL is http://".into(),
                ));
            }
            None
        };
        Ok(Endpoint {
            path,
            authority: authority.as_str().to_owned(),
            host: host.to_owned(),
            port,
            tls,
            ca_digest,
        })
    }

    /// `scheme://host:port`, for logs: never the path, which may hold a
    /// token.
    pub fn origin(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

/// The system's root certificates, loaded once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "webhooks: cannot load a system root certificate");
        }
        found.certs
    })
}

/// The client configuration, and the digest of the CA file it read.
fn tls_config(
    ca_file: Option<&Path>,
) -> Result<(Arc<rustls::ClientConfig>, Option<[u8; 32]>), Problem> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
    let mut digest = None;
    if let Some(path) = ca_file {
        let bytes =
            std::fs::read(path).map_err(|e| Problem::CaFile(format!("{}: {e}", path.display())))?;
        digest = Some(*blake3::hash(&bytes).as_bytes());
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Problem::CaFile(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Problem::CaFile(format!(
                "{}: no certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| Problem::CaFile(format!("{}: {e}", path.display())))?;
        }
    } else if added == 0 {
        return Err(Problem::CaFile(
            "no system root certificates found; set ca_file".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Problem::CaFile(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(config), digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_or_refused_with_a_reason() {
        let t = Endpoint::parse("http://127.0.0.1:8080/hook?x=1", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/hook?x=1")
        );
        assert_eq!(t.origin(), "http://127.0.0.1:8080");
        let t = Endpoint::parse("http://[::1]/", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 80, "[::1]")
        );
        let t = Endpoint::parse("http://example.com", None).unwrap();
        assert_eq!(t.path, "/");
        let refused = [
            ("ftp://example.com/x", "scheme \"ftp\""),
            ("example.com/hook", "no scheme"),
            ("http://", "not a usable URL"),
            ("http:///path", "not a usable URL"),
            ("http://user:pw@example.com/", "user:password@"),
            ("not a url", "no scheme"),
        ];
        for (url, want) in refused {
            let e = Endpoint::parse(url, None).err().expect(url).to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
        let e = Endpoint::parse("http://example.com/", Some(Path::new("ca.pem")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("URL is http://"), "{e}");
        let e = Endpoint::parse(
            "https://example.com/",
            Some(Path::new("/nonexistent/ca.pem")),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
