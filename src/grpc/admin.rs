//! `callguard.v1.Admin/ReloadLexicons` (SIGHUP does the same).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::principal;
use super::pb;
use super::status::reload_refused;
use crate::auth::Permission;
use crate::serve::state::{ReloadError, Rules, Service};

pub struct AdminService {
    service: Arc<Service>,
}

impl AdminService {
    pub fn new(service: Arc<Service>) -> AdminService {
        AdminService { service }
    }
}

/// Loads lexicons and policy anew and swaps them in; on error the rule set
/// in force stays.
pub fn reload(service: &Service, allow_removal: bool) -> Result<(String, usize), ReloadError> {
    let rules = Rules::load(&service.config)?;
    let removed = rules
        .engine
        .lexicon()
        .removed_from(service.rules().engine.lexicon());
    if !removed.is_empty() {
        if !allow_removal {
            return Err(ReloadError::Removal(removed));
        }
        tracing::warn!(removed = %removed.join(", "), "reload removes languages or categories (allowed)");
    }
    let answer = (
        rules.engine.version().to_owned(),
        rules.engine.lexicon().terms.len(),
    );
    service.replace_rules(rules);
    tracing::info!(version = %answer.0, terms = answer.1, "lexicons and policy reloaded");
    Ok(answer)
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn reload_lexicons(
        &self,
        request: Request<pb::ReloadLexiconsRequest>,
    ) -> Result<Response<pb::ReloadLexiconsResponse>, Status> {
        principal(&request)?.require(Permission::Reload)?;
        let allow_removal = request.into_inner().allow_removal;
        let service = self.service.clone();
        let result = tokio::task::spawn_blocking(move || {
            let allow = allow_removal || service.config.lexicon_allow_removal;
            reload(&service, allow)
        })
        .await
        .map_err(|e| Status::internal(format!("reload task failed: {e}")))?;
        match result {
            Ok((lexicon_version, terms)) => Ok(Response::new(pb::ReloadLexiconsResponse {
                lexicon_version,
                terms: terms as u32,
            })),
            Err(e) => {
                tracing::warn!(error = %e, "reload refused; the rule set in force stays");
                Err(reload_refused(&e))
            }
        }
    }
}
