//! How callguard's own clients (`watch`, `loadgen`, `replay --server`)
//! reach a `serve`: the address, TLS (server CA, optional client
//! certificate for mutual TLS) and the bearer token sent on every call.

use std::path::PathBuf;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

/// Where and how to connect.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// `host:port`, or a URL (`http://…`, `https://…`).
    pub server: String,
    /// Bearer token (sent as `authorization: Bearer …`).
    pub token: Option<String>,
    /// PEM CA that signed the server's certificate; the system's roots
    /// when absent and the address is `https://`.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate and key, for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Name to verify the server certificate against, when it differs
    /// from the address's host.
    pub tls_domain: Option<String>,
}

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("server address {server:?}: {message}")]
    Address { server: String, message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--client-cert and --client-key go together")]
    HalfIdentity,
    #[error("the token is not a valid header value (printable ASCII only)")]
    BadToken,
    #[error("cannot connect to {server}: {source}")]
    Connect {
        server: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A channel that sends the token on every call.
pub type AuthChannel = InterceptedService<Channel, BearerToken>;

/// Adds `authorization: Bearer …` to each request (nothing without a token).
#[derive(Clone, Debug)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl ClientConfig {
    /// A plaintext, token-less client of `server` (tests, the loopback default).
    pub fn plain(server: impl Into<String>) -> ClientConfig {
        ClientConfig {
            server: server.into(),
            ..ClientConfig::default()
        }
    }

    fn wants_tls(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some() || self.server.starts_with("https://")
    }

    /// The address as a URL: `https://` when TLS is configured.
    pub fn url(&self) -> String {
        if self.server.contains("://") {
            self.server.clone()
        } else if self.wants_tls() {
            format!("https://{}", self.server)
        } else {
            format!("http://{}", self.server)
        }
    }

    /// The endpoint, with TLS set up (files read) but not connected.
    pub fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let url = self.url();
        let address_error = |message: String| ClientError::Address {
            server: self.server.clone(),
            message,
        };
        // The connection window at its maximum: h2 drops a connection that
        // holds more unread small frames (acks, alerts) than half of it,
        // while the stream windows still bound what is buffered.
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| address_error(e.to_string()))?
            .initial_connection_window_size(crate::config::MAX_WINDOW);
        if self.wants_tls() {
            if url.starts_with("http://") {
                return Err(address_error(
                    "TLS options given for an http:// address; use https://".to_owned(),
                ));
            }
            let mut tls = ClientTlsConfig::new();
            tls = match &self.ca_cert {
                Some(path) => tls.ca_certificate(Certificate::from_pem(read(path)?)),
                None => tls.with_native_roots(),
            };
            match (&self.client_cert, &self.client_key) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
                }
                (None, None) => {}
                _ => return Err(ClientError::HalfIdentity),
            }
            if let Some(domain) = &self.tls_domain {
                tls = tls.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| address_error(e.to_string()))?;
        }
        Ok(endpoint)
    }

    /// The token interceptor.
    pub fn bearer(&self) -> Result<BearerToken, ClientError> {
        self.token
            .as_deref()
            .map(|t| {
                format!("Bearer {}", t.trim())
                    .parse()
                    .map_err(|_| ClientError::BadToken)
            })
            .transpose()
            .map(BearerToken)
    }

    /// Connects now (one HTTP/2 connection).
    pub async fn connect(&self) -> Result<AuthChannel, ClientError> {
        let bearer = self.bearer()?;
        let channel = self
            .endpoint()?
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                server: self.url(),
                source,
            })?;
        Ok(InterceptedService::new(channel, bearer))
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_follows_tls_options() {
        assert_eq!(ClientConfig::plain("h:1").url(), "http://h:1");
        let tls = ClientConfig {
            ca_cert: Some("ca.pem".into()),
            ..ClientConfig::plain("h:1")
        };
        assert_eq!(tls.url(), "https://h:1");
        let mixed = ClientConfig {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..ClientConfig::plain("http://h:1")
        };
        assert!(mixed
            .endpoint()
            .unwrap_err()
            .to_string()
            .contains("use https://"));
        let missing = ClientConfig {
            server: "h:1".into(),
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..ClientConfig::default()
        };
        assert!(missing
            .endpoint()
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn bearer_header() {
        let mut b = ClientConfig {
            token: Some("abc".into()),
            ..ClientConfig::plain("h:1")
        }
        .bearer()
        .unwrap();
        let r = b.call(Request::new(())).unwrap();
        assert_eq!(r.metadata().get("authorization").unwrap(), "Bearer abc");
        let bad = ClientConfig {
            token: Some("a\nb".into()),
            ..ClientConfig::plain("h:1")
        };
        assert!(bad.bearer().is_err());
    }
}
