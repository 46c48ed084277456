//! Who may call what. Bearer tokens from the config, kept only as SHA-256
//! hashes, each with a role and a tenant scope. The gRPC interceptor
//! (`grpc::auth`) and the console's HTTP side both turn the bearer token
//! into a [`Principal`] here (or [`AuthError::Unauthenticated`]); each
//! handler then asks the principal for the permission it needs (or
//! [`AuthError::Denied`]). Each front end maps the error to its own wire:
//! `UNAUTHENTICATED` / `PERMISSION_DENIED`, HTTP 401 / 403.
//!
//! With no token configured the service runs open (every caller is an
//! all-tenant admin); `serve` allows that only on loopback.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a caller was refused; the message names the token, never shows it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, a malformed header or an unknown token.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A known token whose role or tenant scope does not cover the request.
    #[error("{0}")]
    Denied(String),
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends transcripts (the telephony platform or its ASR gateway).
    Ingest,
    /// Reads calls and alerts (Subscribe, ListCalls, GetCall).
    Supervisor,
    /// Everything, including ReloadLexicons.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// What a handler needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Ingest,
    Read,
    /// Acknowledge, assign or resolve alerts (the roles that read them).
    Acknowledge,
    Reload,
}

impl Permission {
    fn verb(self) -> &'static str {
        match self {
            Permission::Ingest => "send transcripts",
            Permission::Read => "read calls and alerts",
            Permission::Acknowledge => "acknowledge alerts",
            Permission::Reload => "reload lexicons",
        }
    }
}

/// One `[[tokens]]` entry of the config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds it; shown in logs, never the token itself.
    pub name: String,
    /// Hex SHA-256 of the token (`callguard token new` prints it).
    pub sha256: String,
    pub role: Role,
    /// The one tenant the token serves, or `"*"` for all.
    pub tenant: String,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// `None`: every tenant.
    pub tenant: Option<String>,
}

impl Principal {
    /// The caller of a service without tokens.
    pub fn open() -> Principal {
        Principal {
            name: "open".to_owned(),
            role: Role::Admin,
            tenant: None,
        }
    }

    /// [`AuthError::Denied`] unless the role allows `permission`. Reload
    /// changes every tenant's rules, so it also needs an all-tenant scope.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        let allowed = match permission {
            Permission::Ingest => matches!(self.role, Role::Ingest | Role::Admin),
            Permission::Read | Permission::Acknowledge => {
                matches!(self.role, Role::Supervisor | Role::Admin)
            }
            Permission::Reload => self.role == Role::Admin && self.tenant.is_none(),
        };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::Denied(format!(
                "token {:?} ({}{}) may not {}",
                self.name,
                self.role.as_str(),
                self.tenant
                    .as_deref()
                    .map_or(String::new(), |t| format!(", tenant {t}")),
                permission.verb()
            )))
        }
    }

    pub fn may_see(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|own| own == tenant)
    }

    /// [`AuthError::Denied`] unless the scope covers `tenant`.
    pub fn require_tenant(&self, tenant: &str) -> Result<(), AuthError> {
        if self.may_see(tenant) {
            Ok(())
        } else {
            Err(AuthError::Denied(self.tenant_refusal(tenant)))
        }
    }

    /// The reason a tenant outside the scope is refused.
    pub fn tenant_refusal(&self, tenant: &str) -> String {
        format!(
            "token {:?} is scoped to tenant {:?}, not {tenant:?}",
            self.name,
            self.tenant.as_deref().unwrap_or("*")
        )
    }

    /// The tenant a request that names none is narrowed to.
    pub fn narrow(&self, requested: &str) -> Result<String, AuthError> {
        match (&self.tenant, requested) {
            (Some(own), "") => Ok(own.clone()),
            _ => self
                .require_tenant(requested)
                .map(|()| requested.to_owned()),
        }
    }
}

/// Why the token list was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    #[error(
        "tokens[{index}] ({name}): sha256 must be 64 hex digits (`callguard token new` prints one)"
    )]
    BadHash { index: usize, name: String },
    #[error("tokens[{index}] ({name}): the same token hash as tokens[{first}]")]
    Duplicate {
        index: usize,
        name: String,
        first: usize,
    },
    #[error("tokens[{index}] ({name}): tenant must be a tenant id or \"*\"")]
    EmptyTenant { index: usize, name: String },
}

/// The configured tokens, by hash.
#[derive(Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], (usize, Arc<Principal>)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.by_hash.len())
            .finish()
    }
}

impl Tokens {
    pub fn from_config(entries: &[TokenEntry]) -> Result<Tokens, TokenConfigError> {
        let mut by_hash = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let name = entry.name.clone();
            let hash = parse_hex32(&entry.sha256).ok_or_else(|| TokenConfigError::BadHash {
                index,
                name: name.clone(),
            })?;
            let tenant = match entry.tenant.trim() {
                "" => return Err(TokenConfigError::EmptyTenant { index, name }),
                "*" => None,
                t => Some(t.to_owned()),
            };
            let principal = Arc::new(Principal {
                name: name.clone(),
                role: entry.role,
                tenant,
            });
            if let Some((first, _)) = by_hash.insert(hash, (index, principal)) {
                return Err(TokenConfigError::Duplicate { index, name, first });
            }
        }
        Ok(Tokens { by_hash })
    }

    /// No token configured: the service is open.
    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The caller behind an `authorization: Bearer …` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Arc<Principal>, AuthError> {
        if self.is_open() {
            return Ok(Arc::new(Principal::open()));
        }
        let header = header.ok_or(AuthError::Unauthenticated(
            "missing token: send the header `authorization: Bearer <token>`",
        ))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Unauthenticated(
                "malformed authorization header: expected `Bearer <token>`",
            ))?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash
            .get(&hash)
            .map(|(_, principal)| principal.clone())
            .ok_or(AuthError::Unauthenticated("unknown token"))
    }
}

/// Hex SHA-256 of a token, as the config stores it.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh random token: `cg_` and 32 random bytes in hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "cg_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, token: &str, role: Role, tenant: &str) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            sha256: hash_token(token),
            role,
            tenant: tenant.into(),
        }
    }

    fn tokens() -> Tokens {
        Tokens::from_config(&[
            entry("gw", "t-ingest", Role::Ingest, "acme"),
            entry("sv", "t-super", Role::Supervisor, "acme"),
            entry("root", "t-admin", Role::Admin, "*"),
            entry("tenant-admin", "t-tadmin", Role::Admin, "acme"),
        ])
        .unwrap()
    }

    #[test]
    fn tokens_authenticate_by_hash() {
        let t = tokens();
        let p = t.authenticate(Some("Bearer t-ingest")).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("gw", Role::Ingest));
        assert_eq!(p.tenant.as_deref(), Some("acme"));
        for bad in [None, Some("t-ingest"), Some("Bearer "), Some("Bearer nope")] {
            let e = t.authenticate(bad).unwrap_err();
            assert!(matches!(e, AuthError::Unauthenticated(_)), "{bad:?}");
        }
    }

    #[test]
    fn open_service_admits_everyone_as_admin() {
        let p = Tokens::default().authenticate(None).unwrap();
        assert_eq!(*p, Principal::open());
        assert!(p.require(Permission::Reload).is_ok());
    }

    #[test]
    fn roles_and_tenants() {
        let t = tokens();
        let get = |tok: &str| t.authenticate(Some(&format!("Bearer {tok}"))).unwrap();
        let denied = |r: Result<(), AuthError>| matches!(r, Err(AuthError::Denied(_)));
        let (ingest, sup, admin, tadmin) = (
            get("t-ingest"),
            get("t-super"),
            get("t-admin"),
            get("t-tadmin"),
        );
        assert!(ingest.require(Permission::Ingest).is_ok());
        assert!(denied(ingest.require(Permission::Read)));
        assert!(denied(sup.require(Permission::Ingest)));
        assert!(sup.require(Permission::Read).is_ok());
        assert!(sup.require(Permission::Acknowledge).is_ok());
        assert!(denied(ingest.require(Permission::Acknowledge)));
        assert!(denied(sup.require(Permission::Reload)));
        assert!(admin.require(Permission::Reload).is_ok());
        assert!(denied(tadmin.require(Permission::Reload)));
        assert!(tadmin.require(Permission::Read).is_ok());

        assert_eq!(sup.narrow("").unwrap(), "acme");
        assert_eq!(sup.narrow("acme").unwrap(), "acme");
        assert!(denied(sup.narrow("globex").map(drop)));
        assert_eq!(admin.narrow("").unwrap(), "");
        assert!(sup.may_see("acme") && !sup.may_see("globex") && admin.may_see("globex"));
    }

    #[test]
    fn config_errors_name_the_entry() {
        let mut bad = entry("x", "t", Role::Ingest, "acme");
        bad.sha256 = "abc".into();
        let e = Tokens::from_config(&[bad]).unwrap_err().to_string();
        assert!(e.contains("tokens[0] (x): sha256"), "{e}");
        let e = Tokens::from_config(&[
            entry("a", "same", Role::Ingest, "acme"),
            entry("b", "same", Role::Admin, "*"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("tokens[1] (b)") && e.contains("tokens[0]"),
            "{e}"
        );
        let e = Tokens::from_config(&[entry("c", "t", Role::Ingest, " ")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("tenant"), "{e}");
    }

    #[test]
    fn new_tokens_are_random_and_hash_to_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("cg_") && a.len() == 67);
        let h = hash_token("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(parse_hex32(&h).is_some());
    }
}
