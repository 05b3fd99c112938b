//! Tenants with their signing keys, brands, and API keys.

use super::connection::{lock_log, lock_shared_rule, SharedRule};
use super::log;
use super::schema::{api_keys, brands, tenants};
use super::{can_name_a_row, DbConn, Rejection, StoreError, StoreResult};
use crate::domain::access::TenantId;
use crate::domain::policy::{AmbiguousMode, TenantPolicy};
use crate::domain::purpose::CaptureChannel;
use crate::domain::text::{fold_key, nfc};
use crate::domain::vocabulary::{Language, LanguageSet};
use crate::keys::{self, MasterKey};
use crate::ledger::entry::ZERO_HASH;
use diesel::prelude::*;
use ed25519_dalek::SigningKey;

/// A tenant, its settings read once as its [`TenantPolicy`].
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: TenantId,
    pub origin: String,
    pub policy: TenantPolicy,
    /// The tenant ever held an ambiguous message for review (docs/webhooks.md): its checks read review items.
    pub reviews_held: bool,
    pub tree_size: i64,
    pub head_hash: String,
    pub head_recorded_at: Option<i64>,
    pub created_at: i64,
}

/// A tenant's row as the table holds it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenants)]
struct StoredTenant {
    id: TenantId,
    origin: String,
    max_consent_age_days: Option<i64>,
    default_region: Option<String>,
    /// A JSON list of capture channels.
    require_confirmation_for: String,
    evidence_retention_days: Option<i64>,
    tree_size: i64,
    head_hash: String,
    head_recorded_at: Option<i64>,
    created_at: i64,
    /// A JSON list of language codes; null: every shipped language.
    languages: Option<String>,
    ambiguous_messages: String,
    reviews_held: bool,
}

impl From<StoredTenant> for TenantRow {
    fn from(t: StoredTenant) -> Self {
        let confirmation_for = match t.require_confirmation_for.as_str() {
            "[]" => Vec::new(),
            listed => serde_json::from_str::<Vec<CaptureChannel>>(listed).unwrap_or_default(),
        };
        Self {
            id: t.id,
            origin: t.origin,
            policy: TenantPolicy {
                max_consent_age_days: t.max_consent_age_days,
                default_region: t.default_region,
                confirmation_for,
                evidence_retention_days: t.evidence_retention_days,
                languages: t
                    .languages
                    .and_then(|listed| serde_json::from_str::<Vec<Language>>(&listed).ok())
                    .map_or_else(LanguageSet::default, |listed| LanguageSet::of(&listed)),
                ambiguous: AmbiguousMode::parse(&t.ambiguous_messages).unwrap_or_default(),
            },
            reviews_held: t.reviews_held,
            tree_size: t.tree_size,
            head_hash: t.head_hash,
            head_recorded_at: t.head_recorded_at,
            created_at: t.created_at,
        }
    }
}

/// A brand as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = brands)]
pub struct BrandRow {
    pub id: i64,
    pub tenant_id: String,
    pub name: String,
    pub name_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// An API key as stored (the key itself is only its SHA-256).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub roles: String,
    pub key_sha256: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiKeyRow {
    pub fn role_names(&self) -> Vec<String> {
        self.roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// What tenant creation hands out once.
#[derive(Debug)]
pub struct NewTenant {
    pub tenant: TenantId,
    pub log: String,
    pub verifier_key: String,
    pub admin_key_id: String,
    pub admin_key: String,
}

/// Writes a new tenant with its origin, signing key, first brand and first
/// admin key; call inside the transaction that also signs its size-0
/// checkpoint with the key returned (`services::tenants`).
#[tracing::instrument(level = "debug", skip_all)]
pub fn insert_tenant(
    conn: &mut DbConn,
    master: &MasterKey,
    base_origin: &str,
    id: &TenantId,
    brand: &str,
    now: i64,
) -> StoreResult<(NewTenant, SigningKey)> {
    {
        lock_shared_rule(conn, SharedRule::TenantIds)?;
        let exists: i64 = tenants::table
            .filter(tenants::id.eq(id))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Err(StoreError::Rejected(Rejection::TenantExists));
        }
        let origin = format!("{base_origin}/{id}");
        diesel::insert_into(tenants::table)
            .values((
                tenants::id.eq(id),
                tenants::origin.eq(&origin),
                tenants::head_hash.eq(ZERO_HASH),
                tenants::created_at.eq(now),
            ))
            .execute(conn)?;
        let (key_row, signing) = log::insert_signing_key(conn, master, id, &origin, 0, now)?;
        let verifier = key_row.verifier_key;
        insert_brand(conn, id, brand, now)?;
        let (key_id, key) = insert_api_key(conn, id, "admin", &["admin".to_owned()], None, now)?;
        let created = NewTenant {
            tenant: id.clone(),
            log: origin,
            verifier_key: verifier,
            admin_key_id: key_id,
            admin_key: key,
        };
        Ok((created, signing))
    }
}

pub fn all_tenant_ids(conn: &mut DbConn) -> QueryResult<Vec<TenantId>> {
    tenants::table
        .select(tenants::id)
        .order(tenants::id)
        .load(conn)
}

pub fn find_tenant(conn: &mut DbConn, id: &TenantId) -> QueryResult<Option<TenantRow>> {
    tenants::table
        .find(id)
        .select(StoredTenant::as_select())
        .first(conn)
        .optional()
        .map(|found| found.map(TenantRow::from))
}

/// The settings an admin may change; `None` leaves a value as it is.
#[derive(Debug, Default)]
pub struct SettingsChange {
    pub max_consent_age_days: Option<Option<i64>>,
    pub default_region: Option<Option<String>>,
    pub require_confirmation_for: Option<String>,
    pub evidence_retention_days: Option<Option<i64>>,
    /// A JSON list of language codes, or null for every shipped language.
    pub languages: Option<Option<String>>,
    pub ambiguous_messages: Option<AmbiguousMode>,
}

/// The columns a settings change writes: an absent field stays, a null
/// one clears.
#[derive(AsChangeset)]
#[diesel(table_name = tenants)]
struct SettingsColumns<'a> {
    max_consent_age_days: Option<Option<i64>>,
    default_region: Option<Option<&'a str>>,
    require_confirmation_for: Option<&'a str>,
    evidence_retention_days: Option<Option<i64>>,
    languages: Option<Option<&'a str>>,
    ambiguous_messages: Option<&'static str>,
}

pub fn update_settings(
    conn: &mut DbConn,
    id: &TenantId,
    change: SettingsChange,
) -> QueryResult<TenantRow> {
    let columns = SettingsColumns {
        max_consent_age_days: change.max_consent_age_days,
        default_region: change.default_region.as_ref().map(|v| v.as_deref()),
        require_confirmation_for: change.require_confirmation_for.as_deref(),
        evidence_retention_days: change.evidence_retention_days,
        languages: change.languages.as_ref().map(|v| v.as_deref()),
        ambiguous_messages: change.ambiguous_messages.map(AmbiguousMode::as_str),
    };
    let changes_something = columns.max_consent_age_days.is_some()
        || columns.default_region.is_some()
        || columns.require_confirmation_for.is_some()
        || columns.evidence_retention_days.is_some()
        || columns.languages.is_some()
        || columns.ambiguous_messages.is_some();
    conn.immediate_transaction(|conn| {
        // An empty PATCH reads the settings as they stand.
        if changes_something {
            diesel::update(tenants::table.find(id))
                .set(&columns)
                .execute(conn)?;
        }
        tenants::table
            .find(id)
            .select(StoredTenant::as_select())
            .first(conn)
            .map(TenantRow::from)
    })
}

pub fn insert_brand(
    conn: &mut DbConn,
    tenant: &TenantId,
    name: &str,
    now: i64,
) -> StoreResult<BrandRow> {
    let name = nfc(name);
    let key = fold_key(&name);
    let taken: i64 = brands::table
        .filter(brands::tenant_id.eq(tenant))
        .filter(brands::name_key.eq(&key))
        .count()
        .get_result(conn)?;
    if taken > 0 {
        return Err(StoreError::Rejected(Rejection::BrandExists));
    }
    Ok(crate::on_backend!(conn, |c| diesel::insert_into(
        brands::table
    )
    .values((
        brands::tenant_id.eq(tenant),
        brands::name.eq(&name),
        brands::name_key.eq(&key),
        brands::created_at.eq(now),
    ))
    .returning(BrandRow::as_returning())
    .get_result(c))?)
}

#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn create_brand(
    conn: &mut DbConn,
    tenant: &TenantId,
    name: &str,
    now: i64,
) -> StoreResult<BrandRow> {
    conn.immediate_transaction(|conn| {
        lock_log(conn, tenant)?;
        insert_brand(conn, tenant, name, now)
    })
}

pub fn list_brands(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<BrandRow>> {
    brands::table
        .filter(brands::tenant_id.eq(tenant))
        .order(brands::id.asc())
        .select(BrandRow::as_select())
        .load(conn)
}

/// A brand by name, compared after NFC and full case folding.
pub fn find_brand(
    conn: &mut DbConn,
    tenant: &TenantId,
    name: &str,
) -> QueryResult<Option<BrandRow>> {
    if !can_name_a_row(name) {
        return Ok(None);
    }
    crate::one_row!(
        conn,
        brands::table
            .filter(brands::tenant_id.eq(tenant))
            .filter(brands::name_key.eq(fold_key(name)))
            .select(BrandRow::as_select())
    )
}

pub fn active_brands(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<BrandRow>> {
    brands::table
        .filter(brands::tenant_id.eq(tenant))
        .filter(brands::retired_at.is_null())
        .select(BrandRow::as_select())
        .load(conn)
}

#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn retire_brand(
    conn: &mut DbConn,
    tenant: &TenantId,
    name: &str,
    now: i64,
) -> StoreResult<BrandRow> {
    conn.immediate_transaction(|conn| {
        // Under the log's lock, so no opt-in for the brand commits after it.
        lock_log(conn, tenant)?;
        let brand = find_brand(conn, tenant, name)?
            .ok_or(StoreError::Rejected(Rejection::NotFound("no such brand")))?;
        if brand.retired_at.is_some() {
            return Ok(brand);
        }
        Ok(crate::on_backend!(conn, |c| diesel::update(
            brands::table.find(brand.id)
        )
        .set(brands::retired_at.eq(now))
        .returning(BrandRow::as_returning())
        .get_result(c))?)
    })
}

fn insert_api_key(
    conn: &mut DbConn,
    tenant: &TenantId,
    name: &str,
    roles: &[String],
    expires_at: Option<i64>,
    now: i64,
) -> QueryResult<(String, String)> {
    let (id, key) = keys::new_api_key();
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(&id),
            api_keys::tenant_id.eq(tenant),
            api_keys::name.eq(name),
            api_keys::roles.eq(roles.join(",")),
            api_keys::key_sha256.eq(keys::secret_sha256(&key)),
            api_keys::created_at.eq(now),
            api_keys::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok((id, key))
}

/// Creates an API key; returns its row and the key, which is shown once.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn create_api_key(
    conn: &mut DbConn,
    tenant: &TenantId,
    name: &str,
    roles: &[String],
    expires_at: Option<i64>,
    now: i64,
) -> QueryResult<(ApiKeyRow, String)> {
    conn.immediate_transaction(|conn| {
        let (id, key) = insert_api_key(conn, tenant, name, roles, expires_at, now)?;
        let row = api_keys::table
            .find(&id)
            .select(ApiKeyRow::as_select())
            .first(conn)?;
        Ok((row, key))
    })
}

pub fn list_api_keys(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::tenant_id.eq(tenant))
        .order(api_keys::created_at.asc())
        .select(ApiKeyRow::as_select())
        .load(conn)
}

/// Revokes a key at once; refuses the tenant's last active admin key.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn revoke_api_key(conn: &mut DbConn, tenant: &TenantId, id: &str, now: i64) -> StoreResult<()> {
    if !can_name_a_row(id) {
        return Err(StoreError::Rejected(Rejection::NotFound("no such key")));
    }
    conn.immediate_transaction(|conn| {
        lock_log(conn, tenant)?;
        let key = api_keys::table
            .filter(api_keys::tenant_id.eq(tenant))
            .filter(api_keys::id.eq(id))
            .select(ApiKeyRow::as_select())
            .first(conn)
            .optional()?
            .ok_or(StoreError::Rejected(Rejection::NotFound("no such key")))?;
        if key.revoked_at.is_some() {
            return Ok(());
        }
        let is_admin = |k: &ApiKeyRow| k.role_names().iter().any(|r| r == "admin");
        if is_admin(&key) && key.is_active(now) {
            let others: Vec<ApiKeyRow> = list_api_keys(conn, tenant)?
                .into_iter()
                .filter(|k| k.id != key.id && k.is_active(now) && is_admin(k))
                .collect();
            // An expiring admin key does not keep the tenant administrable:
            // the last one without an expiry stays.
            let permanent_left = others.iter().any(|k| k.expires_at.is_none());
            if others.is_empty() || (key.expires_at.is_none() && !permanent_left) {
                return Err(StoreError::Rejected(Rejection::LastAdminKey));
            }
        }
        diesel::update(api_keys::table.find(id))
            .set(api_keys::revoked_at.eq(now))
            .execute(conn)?;
        Ok(())
    })
}

/// The key with this id and its tenant, for authentication.
pub fn find_api_key(conn: &mut DbConn, id: &str) -> QueryResult<Option<(ApiKeyRow, TenantRow)>> {
    if !can_name_a_row(id) {
        return Ok(None);
    }
    crate::one_row!(
        conn,
        api_keys::table
            .inner_join(tenants::table)
            .filter(api_keys::id.eq(id))
            .select((ApiKeyRow::as_select(), StoredTenant::as_select()))
    )
    .map(|found: Option<(ApiKeyRow, StoredTenant)>| found.map(|(key, tenant)| (key, tenant.into())))
}

/// `last_used_at` moves at most this often per key.
pub const TOUCH_INTERVAL_MILLIS: i64 = 60_000;

/// Records that a key was used, unless it was recorded less than a minute
/// ago (by any instance): `last_used_at` is approximate and costs at most
/// one write per key and minute. `true` when it was written.
pub fn touch_api_key(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        api_keys::table.find(id).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.le(now - TOUCH_INTERVAL_MILLIS)),
        ),
    )
    .set(api_keys::last_used_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tenant_t;

    #[test]
    fn a_key_is_touched_at_most_once_a_minute() {
        let (_dir, mut conn) = crate::store::test_db_with_tenant();
        let (id, _) =
            insert_api_key(&mut conn, &tenant_t(), "k", &["sender".into()], None, 0).unwrap();
        let last_used = |conn: &mut DbConn| -> Option<i64> {
            api_keys::table
                .find(&id)
                .select(api_keys::last_used_at)
                .first(conn)
                .unwrap()
        };
        assert!(touch_api_key(&mut conn, &id, 1_000).unwrap());
        assert_eq!(last_used(&mut conn), Some(1_000));
        // Within the minute (another instance, a racing request): not written.
        assert!(!touch_api_key(&mut conn, &id, 60_999).unwrap());
        assert_eq!(last_used(&mut conn), Some(1_000));
        assert!(touch_api_key(&mut conn, &id, 61_000).unwrap());
        assert_eq!(last_used(&mut conn), Some(61_000));
    }
}
