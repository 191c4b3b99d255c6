//! A standing as cached in Redis: the standing, the caller's profile, and the two epochs it
//! was read under (see the decisions in `crate::auth::standing`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::rbac::Role;
use crate::store::sessions::Standing;
use crate::store::users::UserRow;

/// A cached standing and the epochs it was read under.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Entry {
    pub(super) fleet: i64,
    pub(super) user: i64,
    token_version: i32,
    disabled: bool,
    role_id: String,
    site_ids: Vec<Uuid>,
    session_active: bool,
    profile: Profile,
}

/// The user's profile in a cached standing ([`UserRow`] without what [`Entry`] holds).
#[derive(Debug, Serialize, Deserialize)]
struct Profile {
    username: String,
    full_name: String,
    phone: Option<String>,
    supervisor_id: Option<Uuid>,
    last_login_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    must_change_password: bool,
    own_site_ids: Vec<Uuid>,
}

impl Entry {
    pub(super) fn of(fleet: i64, user: i64, standing: &Standing) -> Self {
        let row = &standing.user;
        Self {
            fleet,
            user,
            token_version: standing.token_version,
            disabled: row.disabled,
            role_id: row.role.as_str().to_owned(),
            site_ids: standing.site_ids.clone(),
            session_active: standing.session_active,
            profile: Profile {
                username: row.username.clone(),
                full_name: row.full_name.clone(),
                phone: row.phone.clone(),
                supervisor_id: row.supervisor_id,
                last_login_at: row.last_login_at,
                created_at: row.created_at,
                must_change_password: row.must_change_password,
                own_site_ids: row.site_ids.clone(),
            },
        }
    }

    /// The standing cached of user `user_id`; `None` for a role this binary does not know
    /// (read afresh).
    pub(super) fn standing(self, user_id: Uuid) -> Option<Standing> {
        let profile = self.profile;
        Some(Standing {
            token_version: self.token_version,
            user: UserRow {
                id: user_id,
                username: profile.username,
                full_name: profile.full_name,
                phone: profile.phone,
                role: self.role_id.parse::<Role>().ok()?,
                supervisor_id: profile.supervisor_id,
                disabled: self.disabled,
                last_login_at: profile.last_login_at,
                created_at: profile.created_at,
                must_change_password: profile.must_change_password,
                site_ids: profile.own_site_ids,
            },
            site_ids: self.site_ids,
            session_active: self.session_active,
        })
    }
}

/// The fleet's and the user's epochs, and the cached entry, as one `MGET` reads them.
pub(super) type Epochs = (Option<i64>, Option<i64>, Option<Vec<u8>>);
