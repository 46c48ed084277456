//! One HTTP/1.1 POST to a webhook's URL, over TCP or TLS, bounded by one
//! timeout from connect to the response's status line.
//!
//! A connection per request (`Connection: close`): alerts are rare enough
//! that a kept-alive connection would mostly sit idle and be closed by the
//! far side, and a stale one would turn into a failed attempt and a
//! backoff. hyper's connection-level client keeps this small; the pooled
//! client (hyper-util's `client-legacy`) would add a pool we do not need.
//!
//! TLS is rustls with the system's root certificates, plus a webhook's own
//! `ca_file` for a receiver behind a private CA.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT,
};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::TlsConnector;

use super::Problem;

/// Where a webhook POSTs: parsed and checked once, at start.
pub(crate) struct Target {
    /// For the request line: path and query.
    path: String,
    /// For the `Host` header: host and port as written.
    authority: String,
    /// For connecting: the host without IPv6 brackets, and the port.
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// How the far side answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    /// `Retry-After` in seconds (the HTTP-date form is not used by the
    /// chat services; it is ignored).
    pub retry_after: Option<Duration>,
}

/// Why no answer came. The message never holds the URL (it may carry a
/// token in its path, as Slack's do).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("no answer within the timeout")]
    Timeout,
}

impl SendError {
    /// A short fixed label for the failures metric.
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::Connect(_) => "connect",
            SendError::Tls(_) => "tls",
            SendError::Http(_) => "http",
            SendError::Timeout => "timeout",
        }
    }
}

impl Target {
    /// Parses an `http://` or `https://` URL with a host.
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Target, Problem> {
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
        let tls = if https {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|e| bad(&format!("host {host:?}: {e}")))?;
            Some((TlsConnector::from(tls_config(ca_file)?), name))
        } else {
            if ca_file.is_some() {
                return Err(Problem::CaFile(
                    "ca_file is set but the URL is http://".into(),
                ));
            }
            None
        };
        Ok(Target {
            path,
            authority: authority.as_str().to_owned(),
            host: host.to_owned(),
            port,
            tls,
        })
    }

    /// `scheme://host:port`, for logs: never the path, which may hold a
    /// token.
    pub fn origin(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }

    /// POSTs `body` with `headers` (and the `Host`, `Content-Type`,
    /// `User-Agent` and `Connection` of every request); the whole exchange,
    /// connect included, within `timeout`.
    pub async fn post(
        &self,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        tokio::time::timeout(timeout, self.exchange(headers, body, timeout))
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    async fn exchange(
        &self,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(SendError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(SendError::Tls)?;
                self.request(tls, headers, body, timeout).await
            }
            None => self.request(tcp, headers, body, timeout).await,
        }
    }

    async fn request<S>(
        &self,
        io: S,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, SendError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(io)).await?;
        // The connection is driven by its own task; it ends when the
        // exchange is over, or when `sender` is dropped at the timeout
        // (hyper closes a connection whose request was given up). The
        // bound is insurance against a peer that keeps it open anyway.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, connection).await;
        });
        let mut request = Request::post(self.path.as_str())
            .body(Full::new(body))
            .expect("a path and query from a parsed URI is a valid request target");
        let h = request.headers_mut();
        *h = headers;
        if let Ok(host) = HeaderValue::from_str(&self.authority) {
            h.insert(HOST, host);
        }
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("callguard/", env!("CARGO_PKG_VERSION"))),
        );
        h.insert(CONNECTION, HeaderValue::from_static("close"));
        let response = sender.send_request(request).await?;
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // The body is not read: the status says it all, and the connection
        // closes with it.
        Ok(Answer {
            status: response.status(),
            retry_after,
        })
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

fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Problem> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
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
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_or_refused_with_a_reason() {
        let t = Target::parse("http://127.0.0.1:8080/hook?x=1", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/hook?x=1")
        );
        assert_eq!(t.origin(), "http://127.0.0.1:8080");
        let t = Target::parse("http://[::1]/", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 80, "[::1]")
        );
        let t = Target::parse("http://example.com", None).unwrap();
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
            let e = Target::parse(url, None).err().expect(url).to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
        let e = Target::parse("http://example.com/", Some(Path::new("ca.pem")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("URL is http://"), "{e}");
        let e = Target::parse(
            "https://example.com/",
            Some(Path::new("/nonexistent/ca.pem")),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
