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
//! `ca_file` for a receiver behind a private CA (both read when the entry
//! is checked: `config::webhook::Endpoint`).

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT,
};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::config::webhook::Endpoint;

/// Where a webhook POSTs (its URL parsed and checked once, with the
/// config), and the TLS connector of an `https://` one.
pub(crate) struct Target {
    endpoint: Endpoint,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl From<Endpoint> for Target {
    fn from(endpoint: Endpoint) -> Target {
        let tls = endpoint
            .tls
            .as_ref()
            .map(|(config, name)| (TlsConnector::from(config.clone()), name.clone()));
        Target { endpoint, tls }
    }
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
    /// `scheme://host:port`, for logs: never the path, which may hold a
    /// token.
    pub fn origin(&self) -> String {
        self.endpoint.origin()
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
        let endpoint = &self.endpoint;
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
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
        let mut request = Request::post(self.endpoint.path.as_str())
            .body(Full::new(body))
            .expect("a path and query from a parsed URI is a valid request target");
        let h = request.headers_mut();
        *h = headers;
        if let Ok(host) = HeaderValue::from_str(&self.endpoint.authority) {
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
