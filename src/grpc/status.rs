//! The one place a `tonic::Status` (or a rejection code) is built from our
//! errors, so every client sees the same code for the same fact.

use tonic::{Code, Status};

use super::client::ClientError;
use super::convert::WireError;
use crate::auth::AuthError;
use crate::call::TableError;
use crate::event::EventError;
use crate::live::HandlingError;

/// The field, reason and status code of a refused event.
pub struct Refusal {
    pub field: &'static str,
    pub reason: String,
    pub code: Code,
}

impl From<&WireError> for Refusal {
    fn from(e: &WireError) -> Self {
        Refusal {
            field: e.field,
            reason: e.to_string(),
            code: Code::InvalidArgument,
        }
    }
}

impl From<&TableError> for Refusal {
    fn from(e: &TableError) -> Self {
        let (field, code) = match e {
            TableError::TooManyCalls(_)
            | TableError::TooManyTenantCalls(_)
            | TableError::TooManyTokenCalls(_) => ("call_id", Code::ResourceExhausted),
            TableError::AlreadyStarted(_) => ("call_id", Code::AlreadyExists),
            TableError::Event(event) => (event_field(event), Code::InvalidArgument),
        };
        Refusal {
            field,
            reason: e.to_string(),
            code,
        }
    }
}

impl Refusal {
    /// The event's tenant (or a call of that id) is outside the sender's
    /// token scope; the reason names which.
    pub fn denied(reason: String) -> Refusal {
        Refusal {
            field: if reason.starts_with("call_id") {
                "call_id"
            } else {
                "tenant"
            },
            reason,
            code: Code::PermissionDenied,
        }
    }

    /// The call ended recently: its id is not opened again.
    pub fn ended(reason: String) -> Refusal {
        Refusal {
            field: "call_id",
            reason,
            code: Code::FailedPrecondition,
        }
    }

    /// The store failed the commit of the event's alerts (kept by the
    /// service and raised again when the event is resent).
    pub fn store_failed(e: impl std::fmt::Display) -> Refusal {
        Refusal {
            field: "event",
            reason: format!(
                "alert store failed, the event's alerts were not delivered \
                 (they are kept: resend the event): {e}"
            ),
            code: Code::Unavailable,
        }
    }
}

fn event_field(e: &EventError) -> &'static str {
    match e {
        EventError::EmptyCallId | EventError::UnknownCall(_) => "call_id",
        EventError::TooLong { field, .. }
        | EventError::TooMany { field, .. }
        | EventError::TooLate { field, .. } => field,
        EventError::SeqBackwards { .. } => "seq",
        EventError::TimesReversed { .. } => "end_ms",
        EventError::UnknownTimezone(_) => "timezone",
        EventError::NotFinite => "loudness_dbfs",
    }
}

/// Metric label of a refusal reason (bounded set).
pub fn refusal_label(refusal: &Refusal) -> &'static str {
    match refusal.code {
        Code::ResourceExhausted => "limit",
        Code::AlreadyExists => "already_started",
        Code::FailedPrecondition => "ended",
        _ => refusal.field,
    }
}

/// The status a client gets for a message the server could not decode
/// (`None`: the client went away; nobody is listening).
pub fn inbound_failure(status: &Status) -> Option<Status> {
    match status.code() {
        // tonic: "decoded message length too large"
        Code::OutOfRange | Code::ResourceExhausted => Some(Status::resource_exhausted(format!(
            "event too large: {}",
            status.message()
        ))),
        // prost decode errors and framing errors
        Code::Internal => Some(Status::invalid_argument(format!(
            "malformed event: {}",
            status.message()
        ))),
        _ => None,
    }
}

/// The blocking task of a reload died (a panic in the loader).
pub fn reload_task_failed(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("reload task failed: {e}"))
}

/// Our own client (`watch`) could not connect: `UNAVAILABLE` is worth a
/// retry; a bad address or an unreadable certificate is not.
pub fn client_failed(e: &ClientError) -> Status {
    match e {
        ClientError::Connect { .. } => Status::unavailable(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

pub fn invalid_argument(field: &str, e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {e}"))
}

pub fn reload_refused(e: &impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("reload refused, the rule set in force stays: {e}"))
}

pub fn not_found(what: &str) -> Status {
    Status::not_found(what.to_owned())
}

pub fn store_unavailable(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("alert store: {e}"))
}

/// The canonical name of a status code, as gRPC clients spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::Unavailable => "UNAVAILABLE",
        Code::NotFound => "NOT_FOUND",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        _ => "UNKNOWN",
    }
}

/// A caller the tokens refused: `UNAUTHENTICATED` (no or unknown token),
/// `PERMISSION_DENIED` (role or tenant scope), so handlers use `?`.
impl From<AuthError> for Status {
    fn from(e: AuthError) -> Status {
        match e {
            AuthError::Unauthenticated(message) => Status::unauthenticated(message),
            AuthError::Denied(message) => Status::permission_denied(message),
        }
    }
}

/// A request that never passed the authenticating interceptor.
pub fn no_authentication() -> Status {
    Status::unauthenticated("no authentication on this service")
}

/// A refused change of an alert's handling.
pub fn handling_refused(e: &HandlingError) -> Status {
    use HandlingError as E;
    match e {
        E::NotFound(_) => Status::not_found(e.to_string()),
        E::OutOfScope { .. } => Status::permission_denied(e.to_string()),
        E::Invalid(_) => Status::invalid_argument(e.to_string()),
        E::Store(_) => Status::unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bug 5 of issue 15: a rejection carried ALREADY_EXISTS while the
    /// proto promised only INVALID_ARGUMENT or RESOURCE_EXHAUSTED. Every
    /// code a refusal can carry is now documented on `Rejection.code`.
    #[test]
    fn reply_codes_are_the_documented_ones() {
        let proto = include_str!("../../proto/callguard/v1/ingest.proto");
        let doc_start = proto.find("message Rejection").unwrap();
        let doc = &proto[doc_start..];
        let refusals = [
            Refusal::from(&WireError {
                field: "text",
                reason: "x".into(),
            }),
            Refusal::from(&TableError::Event(EventError::EmptyCallId)),
            Refusal::from(&TableError::AlreadyStarted("c".into())),
            Refusal::from(&TableError::TooManyCalls(1)),
            Refusal::denied("tenant: x".into()),
            Refusal::ended("call_id: x".into()),
            Refusal::store_failed("x"),
        ];
        let codes = refusals.iter().map(|r| r.code);
        for code in codes {
            let name = code_name(code);
            assert_ne!(name, "UNKNOWN", "{code:?} has no name");
            assert!(
                doc.contains(&format!("\"{name}\"")),
                "{name} is sent but not documented on Rejection.code"
            );
        }
    }
}
