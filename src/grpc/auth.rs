//! The gRPC side of [`crate::auth`]: an interceptor in front of every
//! callguard service turns the `authorization` header into a
//! [`Principal`] (or `UNAUTHENTICATED`) and leaves it on the request, where
//! each handler finds it with [`principal`].

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::status;
use crate::auth::{Principal, Tokens};
use crate::telemetry::ratelimit::RateLimitedLog;

/// The interceptor in front of every callguard service: authenticates and
/// leaves the [`Principal`] in the request's extensions.
#[derive(Clone)]
pub struct Authenticator {
    tokens: Arc<Tokens>,
    /// One WARN line per source every few seconds: a client retrying with
    /// a bad token wrote 4.2 MB of log in 10 s (issue #18). The counter
    /// `callguard_auth_failures_total` counts every refusal.
    warnings: Arc<RateLimitedLog>,
}

/// How often one source may log a refused request.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Authenticator {
    pub fn new(tokens: Arc<Tokens>) -> Authenticator {
        Authenticator {
            tokens,
            warnings: Arc::new(RateLimitedLog::new(WARN_EVERY)),
        }
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match self.tokens.authenticate(header) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                Ok(request)
            }
            Err(refused) => {
                ::metrics::counter!(crate::telemetry::metrics::AUTH_FAILURES).increment(1);
                let peer = request.remote_addr();
                if let Some(suppressed) = self.warnings.allow(peer.map(|p| p.ip())) {
                    tracing::warn!(
                        ?peer,
                        reason = %refused,
                        suppressed,
                        "request refused: not authenticated (at most one line per source every 5 s; suppressed: since the last)"
                    );
                }
                Err(refused.into())
            }
        }
    }
}

/// The principal the interceptor left on a request. A request that never
/// passed it is refused, so a service wired without it fails closed.
pub fn principal<T>(request: &Request<T>) -> Result<Arc<Principal>, Status> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(status::no_authentication)
}
