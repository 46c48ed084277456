//! `callguard.v1.Admin/ReloadLexicons`: [`Service::reload`], as SIGHUP does.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::principal;
use super::pb;
use super::status::{reload_refused, reload_task_failed};
use crate::auth::Permission;
use crate::live::Service;

pub struct AdminService {
    service: Arc<Service>,
}

impl AdminService {
    pub fn new(service: Arc<Service>) -> AdminService {
        AdminService { service }
    }
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
            service.reload(allow)
        })
        .await
        .map_err(reload_task_failed)?;
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
