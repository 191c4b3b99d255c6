//! The sites a write touched, read from its answer, so the write use cases invalidate the
//! read cache in one call after their commit: `state.cache.after_write(outcome).await`.

use uuid::Uuid;

use super::Cache;
use crate::proto::v1 as pb;

/// A write's answer that names the sites of the records it changed.
pub trait TouchesSites {
    /// The site ids (as in the answer, possibly empty strings for absent parts).
    fn site_ids(&self) -> Vec<&str>;
}

impl Cache {
    /// After a write committed: moves the versions of the sites its answer names (and the
    /// company-wide one), so the next cached read covering them computes afresh. An answer
    /// naming no site moves the versions of every site (the fleet epoch with Redis).
    pub async fn after_write<T: TouchesSites, E>(&self, outcome: Result<T, E>) -> Result<T, E> {
        if let Ok(answer) = &outcome {
            let sites: Vec<Uuid> = answer
                .site_ids()
                .into_iter()
                .filter_map(|s| s.parse().ok())
                .collect();
            if sites.is_empty() {
                self.written_everywhere().await;
            } else {
                self.written(&sites).await;
            }
        }
        outcome
    }
}

fn tenant_site(tenant: Option<&pb::TenantRef>) -> Vec<&str> {
    tenant.map(|t| t.site_id.as_str()).into_iter().collect()
}

fn mission_sites<'a>(missions: impl IntoIterator<Item = &'a pb::Mission>) -> Vec<&'a str> {
    missions
        .into_iter()
        .filter_map(|m| m.tenant.as_ref().map(|t| t.site_id.as_str()))
        .collect()
}

impl TouchesSites for pb::RecordPaymentResponse {
    fn site_ids(&self) -> Vec<&str> {
        tenant_site(self.payment.as_ref().and_then(|p| p.tenant.as_ref()))
    }
}

impl TouchesSites for pb::ReversePaymentResponse {
    fn site_ids(&self) -> Vec<&str> {
        tenant_site(self.payment.as_ref().and_then(|p| p.tenant.as_ref()))
    }
}

impl TouchesSites for pb::RecordVisitResponse {
    fn site_ids(&self) -> Vec<&str> {
        tenant_site(self.visit.as_ref().and_then(|v| v.tenant.as_ref()))
    }
}

impl TouchesSites for pb::UpdatePromiseResponse {
    fn site_ids(&self) -> Vec<&str> {
        tenant_site(self.promise.as_ref().and_then(|p| p.tenant.as_ref()))
    }
}

impl TouchesSites for pb::UpdateMissionResponse {
    fn site_ids(&self) -> Vec<&str> {
        mission_sites(&self.mission)
    }
}

impl TouchesSites for pb::GenerateMissionsResponse {
    fn site_ids(&self) -> Vec<&str> {
        mission_sites(&self.missions)
    }
}
