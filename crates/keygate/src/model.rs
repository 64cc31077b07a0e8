//! What operations take and return. Every response type serialises to the
//! exact JSON of the HTTP contract (`serde_json::to_string`).

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::key::ApiKey;
use crate::timestamp::serde_rfc3339;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    /// Revoked wins over expired: revocation is the stronger, permanent fact.
    /// A key is expired from the second `expires_at` names.
    pub fn at(revoked_at: Option<i64>, expires_at: Option<i64>, now: i64) -> Self {
        if revoked_at.is_some() {
            KeyStatus::Revoked
        } else if expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

/// The key object of the contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_by: String,
    /// Whom the key acts as (v2): its uses are this owner's activity, and
    /// the owner's removal revokes it. v1 keys are owned by their creator.
    pub owner: String,
    #[serde(serialize_with = "serde_rfc3339::required")]
    pub created_at: i64,
    #[serde(serialize_with = "serde_rfc3339::optional")]
    pub last_used_at: Option<i64>,
    #[serde(serialize_with = "serde_rfc3339::optional")]
    pub expires_at: Option<i64>,
    pub status: KeyStatus,
    #[serde(serialize_with = "serde_rfc3339::optional")]
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    pub hint: String,
}

/// The create response: the key object plus `secret`, the only time the
/// secret is ever shown. `Debug` shows the hint only.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    pub key: KeyView,
    pub secret: ApiKey,
}

impl Serialize for CreatedKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(flatten)]
            key: &'a KeyView,
            secret: &'a str,
        }
        Body {
            key: &self.key,
            secret: self.secret.expose_secret(),
        }
        .serialize(s)
    }
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    /// 0 when there are no items at all.
    pub total_pages: u64,
}

impl<T> Page<T> {
    pub(crate) fn new(items: Vec<T>, page: u32, per_page: u32, total: u64) -> Self {
        Self {
            items,
            page,
            per_page,
            total,
            total_pages: total.div_ceil(u64::from(per_page)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    KeyCreated,
    KeyDeleted,
    KeyUsed,
    KeyRevoked,
    UserRemoved,
    /// Readmitted through SCIM (`active` true again); written by schema v10's
    /// `user_reactivations` trigger.
    UserReactivated,
    KeyTransferred,
    KeyUpdated,
    KeyRolled,
    ServiceAccountCreated,
    ServiceAccountDeleted,
}

impl AuditAction {
    pub const ALL: [AuditAction; 11] = [
        AuditAction::KeyCreated,
        AuditAction::KeyDeleted,
        AuditAction::KeyUsed,
        AuditAction::KeyRevoked,
        AuditAction::UserRemoved,
        AuditAction::UserReactivated,
        AuditAction::KeyTransferred,
        AuditAction::KeyUpdated,
        AuditAction::KeyRolled,
        AuditAction::ServiceAccountCreated,
        AuditAction::ServiceAccountDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::KeyCreated => "key.created",
            AuditAction::KeyDeleted => "key.deleted",
            AuditAction::KeyUsed => "key.used",
            AuditAction::KeyRevoked => "key.revoked",
            AuditAction::UserRemoved => "user.removed",
            AuditAction::UserReactivated => "user.reactivated",
            AuditAction::KeyTransferred => "key.transferred",
            AuditAction::KeyUpdated => "key.updated",
            AuditAction::KeyRolled => "key.rolled",
            AuditAction::ServiceAccountCreated => "service_account.created",
            AuditAction::ServiceAccountDeleted => "service_account.deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An audit trail entry as `GET /api/audit` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(serialize_with = "serde_rfc3339::required")]
    pub at: i64,
    pub user: String,
    pub action: String,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub details: Value,
}

/// A successful verification: `{"valid": true, "key_id", "key_name", "user_id", "expires_at"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    pub key_name: String,
    /// The key's owner, whom the call acts as (`X-User-Id`).
    pub user_id: String,
    pub expires_at: Option<i64>,
}

impl Serialize for Verified {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            valid: bool,
            key_id: &'a str,
            key_name: &'a str,
            user_id: &'a str,
            #[serde(serialize_with = "serde_rfc3339::optional")]
            expires_at: Option<i64>,
        }
        Body {
            valid: true,
            key_id: &self.key_id,
            key_name: &self.key_name,
            user_id: &self.user_id,
            expires_at: self.expires_at,
        }
        .serialize(s)
    }
}

/// The call a verified key is being used for, as recorded in `key.used`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyContext {
    pub method: Option<String>,
    /// Without query string: it may carry secrets, and audit entries must not.
    pub path: Option<String>,
    pub source_ip: Option<String>,
}

/// Which identity-system channel removed a user, as `user.removed`'s
/// `details.channel` says (the console shows it). Each channel stores its
/// deliveries under its own prefix; a Standard Webhooks `webhook-id` has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalChannel {
    /// v1's Standard Webhooks delivery (`/webhooks/user-removed`).
    Webhook,
    /// SCIM 2.0 provisioning: `active: false` or `DELETE`.
    Scim,
    /// An Okta Event Hook.
    Okta,
    /// An OpenID Shared Signals SET.
    SharedSignals,
}

impl RemovalChannel {
    /// The prefix of this channel's delivery ids (see [`Self::of_delivery`]).
    pub const fn delivery_prefix(self) -> &'static str {
        match self {
            RemovalChannel::Webhook => "",
            RemovalChannel::Scim => "scim:",
            RemovalChannel::Okta => "okta:",
            RemovalChannel::SharedSignals => "ssf:",
        }
    }

    /// The channel a delivery id belongs to.
    pub fn of_delivery(delivery_id: &str) -> Self {
        [Self::Scim, Self::Okta, Self::SharedSignals]
            .into_iter()
            .find(|c| delivery_id.starts_with(c.delivery_prefix()))
            .unwrap_or(Self::Webhook)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RemovalChannel::Webhook => "webhook",
            RemovalChannel::Scim => "scim",
            RemovalChannel::Okta => "okta",
            RemovalChannel::SharedSignals => "ssf",
        }
    }
}

/// The webhook's answer, stored per `webhook-id` and repeated verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRemovedResponse {
    pub user_id: String,
    pub revoked_keys: u64,
}

/// A validated create request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewKey {
    /// Trimmed.
    pub name: String,
    pub description: Option<String>,
    pub expires_at: Option<i64>,
    /// `None`: owned by its creator.
    pub owner: Option<Owner>,
}

/// Whom a key acts as: a user (removed by identity systems) or a service
/// account (never removed by them; deleted only through keygate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    User(String),
    ServiceAccount(String),
}

impl Owner {
    /// `sa_…` names a service account (and must have the shape of its id);
    /// anything else must be a user id.
    pub fn parse(s: &str) -> Option<Self> {
        if s.starts_with(crate::key::SERVICE_ACCOUNT_ID_PREFIX) {
            crate::key::is_service_account_id(s).then(|| Owner::ServiceAccount(s.to_owned()))
        } else {
            crate::validate::is_user_id(s).then(|| Owner::User(s.trim().to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Owner::User(id) | Owner::ServiceAccount(id) => id,
        }
    }
}

/// A validated `PATCH /api/keys/{id}`: each field `None` when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChanges {
    pub name: Option<String>,
    /// `Some(None)`: remove the description.
    pub description: Option<Option<String>>,
    /// `Some(None)`: never expires.
    pub expires_at: Option<Option<i64>>,
}

/// `POST /api/service-accounts`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewServiceAccount {
    pub name: String,
    pub description: Option<String>,
}

/// A service account as the contract shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceAccount {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_by: String,
    #[serde(serialize_with = "serde_rfc3339::required")]
    pub created_at: i64,
}

/// `GET /api/users/{user_id}`: what removing this user would break.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    pub user_id: String,
    #[serde(serialize_with = "serde_rfc3339::optional")]
    pub removed_at: Option<i64>,
    pub keys: KeyCounts,
    pub used_last_30_days: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyCounts {
    pub active: u64,
    pub expired: u64,
    pub revoked: u64,
}

/// Who is acting on a management call, and how they signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActingUser {
    id: String,
    signed_in_with: SignIn,
}

/// How the acting user was identified: audit entries of management calls
/// record it as `details.auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// A JWT from the organisation's identity provider.
    Oidc,
    /// The admin token plus `X-Acting-User` (a trusted portal).
    AdminToken,
}

impl SignIn {
    pub fn as_str(self) -> &'static str {
        match self {
            SignIn::Oidc => "oidc",
            SignIn::AdminToken => "admin_token",
        }
    }
}

impl ActingUser {
    /// A user named by a trusted portal's `X-Acting-User` (already validated).
    pub(crate) fn named_by_portal(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            signed_in_with: SignIn::AdminToken,
        }
    }

    /// A user an identity provider's token names (already validated).
    pub(crate) fn signed_in(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            signed_in_with: SignIn::Oidc,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn signed_in_with(&self) -> SignIn {
        self.signed_in_with
    }

    /// User ids match case-insensitively (ASCII), as everywhere in keygate.
    pub fn is(&self, other: &str) -> bool {
        self.id.eq_ignore_ascii_case(other.trim())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortField {
    Name,
    CreatedBy,
    Owner,
    CreatedAt,
    LastUsedAt,
}

impl SortField {
    /// The column to order by; a fixed string, never user input.
    pub(crate) fn column(self) -> &'static str {
        match self {
            SortField::Name => "name_folded",
            SortField::CreatedBy => "created_by",
            SortField::Owner => "owner",
            SortField::CreatedAt => "created_at",
            SortField::LastUsedAt => "last_used_at",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            SortOrder::Asc => "ASC",
            SortOrder::Desc => "DESC",
        }
    }
}

/// `GET /api/keys` parameters, validated. Time bounds are inclusive Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    pub sort: SortField,
    pub order: SortOrder,
    pub name: Option<String>,
    pub created_by: Option<String>,
    /// Whom the keys act as (v2); matched case-insensitively like `created_by`.
    pub owner: Option<String>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    pub status: Option<KeyStatus>,
    /// Never used, or last used strictly before this.
    pub unused_since: Option<i64>,
    pub page: u32,
    pub per_page: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            sort: SortField::CreatedAt,
            order: SortOrder::Desc,
            name: None,
            created_by: None,
            owner: None,
            created_from: None,
            created_to: None,
            status: None,
            unused_since: None,
            page: 1,
            per_page: 25,
        }
    }
}

/// `GET /api/audit` parameters, validated. Time bounds are inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub key_id: Option<String>,
    pub action: Option<AuditAction>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub page: u32,
    pub per_page: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            user: None,
            key_id: None,
            action: None,
            from: None,
            to: None,
            page: 1,
            per_page: 25,
        }
    }
}
