//! Dashboard reads: what the caller may see, read in one snapshot, figured by the domain
//! (`domain::kpi`).
//!
//! Decisions:
//! - Everything is limited to the caller's sites (`sites_in_scope`); sites named in a request
//!   outside that scope are silently left out, and a request naming none of the caller's sites
//!   finds nothing.
//! - Good payers: the charges counted are those due in the period and before today (a charge
//!   due today can still be paid on time); a tenant is listed under the site they rent on.

use chrono::{Days, NaiveDate};
use sqlx::PgPool;
use uuid::Uuid;

use super::{AppError, sites_in_scope};
use crate::auth::caller::Caller;
use crate::domain::kpi::{self, GoodPayer, TenantName};
use crate::store::begin_read;
use crate::store::dashboard::{self as store, TenantLabel};

/// A ranked tenant and where they rent.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedTenant {
    pub payer: GoodPayer,
    pub tenant: TenantLabel,
}

/// The good-payer ranking of the caller's tenants (of `site_filter` when not empty) over the
/// charges due in `from..=to` before `today`, tenants with fewer than `min_charges` charges
/// left out. Whole ranking; the caller pages it.
pub async fn good_payers(
    pool: &PgPool,
    caller: &Caller,
    site_filter: &[Uuid],
    (from, to): (NaiveDate, NaiveDate),
    today: NaiveDate,
    min_charges: i64,
) -> Result<Vec<RankedTenant>, AppError> {
    let requested = (!site_filter.is_empty()).then_some(site_filter);
    let Some(sites) = sites_in_scope(&caller.scope(), requested) else {
        return Ok(Vec::new());
    };
    let to = to.min(today.checked_sub_days(Days::new(1)).unwrap_or(today));
    if to < from {
        return Ok(Vec::new());
    }
    let mut tx = begin_read(pool).await?;
    let (facts, tenants) = store::charge_facts(&mut tx, sites.as_deref(), from, to).await?;
    drop(tx);
    let names: Vec<TenantName> = tenants
        .iter()
        .map(|t| TenantName {
            id: t.id,
            full_name: t.full_name.clone(),
        })
        .collect();
    let ranked = kpi::good_payers(&names, &facts, min_charges)?;
    let mut labels: std::collections::HashMap<Uuid, TenantLabel> =
        tenants.into_iter().map(|t| (t.id, t)).collect();
    Ok(ranked
        .into_iter()
        .filter_map(|payer| {
            let tenant = labels.remove(&payer.tenant_id)?;
            Some(RankedTenant { payer, tenant })
        })
        .collect())
}
