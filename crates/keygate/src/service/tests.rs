//! Behaviour of the operations against real SQLite (rusqlite) and an
//! in-memory key-value store, with failures injected between writes.

use std::cell::RefCell;
use std::collections::HashSet;

use serde_json::json;

use super::*;
use crate::model::UserRemovedResponse;

/// Verify's statement up to schema v10 (the owner from the KV entry), as an
/// instance not yet upgraded runs it.
const V10_INSERT_KEY_USED: &str = "INSERT INTO audit_log (at, user, action, key_id, key_name, details) \
     SELECT ?, ?, ?, ?, ?, ? \
     WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ? AND revoked_at IS NULL) RETURNING id";
use crate::testing::{FailingKeyValue, FailingSql, KvOp, MemoryKeyValue, SqliteSql};
use crate::validate::{parse_audit_query, parse_list_query};

pub(super) const NOW: i64 = 1_795_712_400; // 2026-11-26T17:00:00Z

pub(super) struct World {
    pub(super) kv: FailingKeyValue<MemoryKeyValue>,
    pub(super) sql: FailingSql<SqliteSql>,
}

pub(super) fn user(name: &str) -> ActingUser {
    ActingUser::named_by_portal(name)
}

pub(super) fn new_key(name: &str) -> NewKey {
    NewKey {
        name: name.to_owned(),
        description: None,
        expires_at: None,
        owner: None,
    }
}

pub(super) fn ctx() -> VerifyContext {
    VerifyContext {
        method: Some("POST".into()),
        path: Some("/orders".into()),
        source_ip: Some("203.0.113.9".into()),
    }
}

impl World {
    pub(super) fn new() -> Self {
        Self {
            kv: FailingKeyValue::new(MemoryKeyValue::new()),
            sql: FailingSql::new(SqliteSql::new()),
        }
    }

    pub(super) fn service(&self) -> KeyService<'_> {
        KeyService::new(&self.kv, &self.sql)
    }

    pub(super) fn create(&self, owner: &str, name: &str) -> CreatedKey {
        self.create_at(owner, name, NOW)
    }

    pub(super) fn create_at(&self, owner: &str, name: &str, now: i64) -> CreatedKey {
        self.service()
            .create_key(&user(owner), new_key(name), now)
            .unwrap()
    }

    pub(super) fn verify(&self, key: &CreatedKey) -> Result<Verified, Error> {
        self.verify_at(key, NOW)
    }

    pub(super) fn verify_at(&self, key: &CreatedKey, now: i64) -> Result<Verified, Error> {
        self.service()
            .verify(Some(key.secret.expose_secret()), &ctx(), now)
    }

    pub(super) fn get(&self, id: &str) -> Result<KeyView, Error> {
        self.service().get_key(&user("admin"), id, NOW)
    }

    fn list(&self, query: &str) -> Page<KeyView> {
        self.service()
            .list_keys(&user("admin"), &parse_list_query(query).unwrap(), NOW)
            .unwrap()
    }

    pub(super) fn audit(&self, query: &str) -> Vec<AuditEntry> {
        let q = parse_audit_query(&format!("per_page=100&{query}")).unwrap();
        self.service().list_audit(&user("admin"), &q).unwrap().items
    }

    /// The connection's `synchronous` level (2 FULL, 1 NORMAL).
    fn synchronous(&self) -> i64 {
        self.sql
            .inner()
            .execute("PRAGMA synchronous", &[])
            .unwrap()
            .scalar_int()
            .unwrap()
    }

    pub(super) fn actions(&self) -> Vec<String> {
        let mut actions: Vec<String> = self.audit("").into_iter().map(|e| e.action).collect();
        actions.reverse();
        actions
    }

    pub(super) fn count(&self, table: &str) -> i64 {
        self.sql
            .inner()
            .execute(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .scalar_int()
            .unwrap()
    }
}

pub(super) fn assert_err(result: Result<impl std::fmt::Debug, Error>, code: &str) {
    match result {
        Err(e) => assert_eq!(e.code(), code, "{e}"),
        Ok(v) => panic!("expected {code}, got {v:?}"),
    }
}

#[test]
fn a_created_key_verifies_at_once_as_its_owner_and_is_audited() {
    let w = World::new();
    let created = w
        .service()
        .create_key(
            &user("floris@example.com"),
            NewKey {
                name: "orders-sync".into(),
                description: Some("Nightly order export".into()),
                expires_at: Some(NOW + 3600),
                owner: None,
            },
            NOW,
        )
        .unwrap();
    let key = &created.key;
    assert!(key.id.starts_with("key_"));
    assert_eq!(key.created_by, "floris@example.com");
    assert_eq!(key.status, KeyStatus::Active);
    assert_eq!(key.hint, created.secret.hint());

    let body = serde_json::to_value(&created).unwrap();
    assert_eq!(body["secret"], created.secret.expose_secret());
    assert_eq!(body["created_at"], "2026-11-26T17:00:00Z");
    assert_eq!(body["expires_at"], "2026-11-26T18:00:00Z");
    assert_eq!(body["last_used_at"], json!(null));
    assert_eq!(body["status"], "active");

    let verified = w.verify_at(&created, NOW + 60).unwrap();
    assert_eq!(
        serde_json::to_value(&verified).unwrap(),
        json!({"valid": true, "key_id": key.id, "key_name": "orders-sync",
               "user_id": "floris@example.com", "expires_at": "2026-11-26T18:00:00Z"})
    );
    assert_eq!(w.get(&key.id).unwrap().last_used_at, Some(NOW + 60));
    // An earlier-timestamped verify finishing later does not move it back.
    w.verify_at(&created, NOW + 30).unwrap();
    assert_eq!(w.get(&key.id).unwrap().last_used_at, Some(NOW + 60));

    let entries = w.audit("");
    let used = &entries[0];
    assert_eq!(
        (used.action.as_str(), used.user.as_str(), used.at),
        ("key.used", "floris@example.com", NOW + 60)
    );
    assert_eq!(
        used.details,
        json!({"method": "POST", "path": "/orders", "source_ip": "203.0.113.9"})
    );
    let created_entry = entries.last().unwrap();
    assert_eq!(created_entry.action, "key.created");
    assert_eq!(created_entry.user, "floris@example.com");
    assert_eq!(created_entry.key_id.as_deref(), Some(key.id.as_str()));
    assert_eq!(created_entry.key_name.as_deref(), Some("orders-sync"));
}

#[test]
fn unknown_call_details_are_recorded_as_nulls() {
    let w = World::new();
    let k = w.create("u", "k");
    w.service()
        .verify(
            Some(k.secret.expose_secret()),
            &VerifyContext::default(),
            NOW,
        )
        .unwrap();
    let entry = &w.audit("action=key.used")[0];
    assert_eq!(
        entry.details,
        json!({"method": null, "path": null, "source_ip": null})
    );
}

#[test]
fn the_secret_is_stored_and_shown_nowhere_but_the_create_response() {
    let w = World::new();
    let k = w.create("u", "k");
    w.verify(&k).unwrap();
    let secret = k.secret.expose_secret();
    let listed = serde_json::to_string(&w.list("")).unwrap();
    let audit = serde_json::to_string(&w.audit("")).unwrap();
    let fetched = serde_json::to_string(&w.get(&k.key.id).unwrap()).unwrap();
    let mut stored = String::new();
    for table in ["api_keys", "audit_log"] {
        stored += &format!(
            "{:?}",
            w.sql
                .inner()
                .execute(&format!("SELECT * FROM {table}"), &[])
                .unwrap()
        );
    }
    for kv_key in w.kv.inner().keys() {
        stored += &kv_key;
        stored += &String::from_utf8(w.kv.inner().get(&kv_key).unwrap().unwrap()).unwrap();
    }
    for (what, text) in [
        ("list", listed),
        ("audit", audit),
        ("get", fetched),
        ("storage", stored),
    ] {
        assert!(!text.contains(secret), "secret in {what}");
        assert!(!text.contains(&secret[3..35]), "random part in {what}");
    }
    assert!(!format!("{k:?}").contains(&secret[3..35]));
}

#[test]
fn names_are_unique_case_insensitively_among_keys_not_revoked() {
    let w = World::new();
    w.create("u1", "Orders Sync");
    for name in ["orders sync", "ORDERS SYNC"] {
        assert_err(
            w.service().create_key(&user("u2"), new_key(name), NOW),
            "name_taken",
        );
    }
    w.create("u1", "Ärger");
    assert_err(
        w.service().create_key(&user("u1"), new_key("ärger"), NOW),
        "name_taken",
    );
    // Once the owner is removed (keys revoked), the names are free again.
    w.service().remove_user("u1", "msg_1", NOW).unwrap();
    w.create("u2", "orders sync");
    w.create("u2", "ärger");
    assert_eq!(w.count("api_keys"), 4);
}

#[test]
fn create_with_a_failing_kv_write_leaves_no_row_and_no_audit() {
    let w = World::new();
    w.kv.fail_nth(KvOp::Set, 1);
    assert_err(
        w.service().create_key(&user("u"), new_key("k"), NOW),
        "storage_unavailable",
    );
    assert_eq!(w.count("api_keys"), 0);
    assert_eq!(w.count("audit_log"), 0);
    assert!(w.kv.inner().keys().is_empty());
    // The name is not blocked by the failed attempt.
    let k = w.create("u", "k");
    assert!(w.verify(&k).is_ok());
}

#[test]
fn create_with_a_failing_audit_write_leaves_no_key_behind() {
    let w = World::new();
    w.sql.fail_nth_matching("INSERT INTO audit_log", 1);
    assert_err(
        w.service().create_key(&user("u"), new_key("k"), NOW),
        "storage_unavailable",
    );
    assert_eq!(w.count("api_keys"), 0);
    assert_eq!(w.count("audit_log"), 0);
    assert!(w.kv.inner().keys().is_empty());
}

#[test]
fn create_with_a_failing_row_insert_removes_its_kv_entry_again() {
    let w = World::new();
    w.service().migrate().unwrap();
    w.sql.fail_nth_matching("INSERT INTO api_keys", 1);
    assert_err(
        w.service().create_key(&user("u"), new_key("k"), NOW),
        "storage_unavailable",
    );
    let ops: Vec<KvOp> = w.kv.calls().into_iter().map(|(op, _)| op).collect();
    assert_eq!(ops, [KvOp::Set, KvOp::Delete]);
    assert!(w.kv.inner().keys().is_empty());
    assert_eq!(w.count("api_keys"), 0);
    assert_eq!(w.count("audit_log"), 0);
}

#[test]
fn a_created_key_and_its_audit_entry_are_one_statement() {
    let w = World::new();
    w.service().migrate().unwrap();
    w.sql.clear_statements();
    let k = w.create("u", "k");
    let writes: Vec<String> = w
        .sql
        .statements()
        .into_iter()
        .filter(|s| !s.starts_with("SELECT") && !s.starts_with("PRAGMA"))
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("INSERT INTO api_keys"), "{writes:?}");
    let created = &w.audit("action=key.created")[0];
    assert_eq!(
        (created.user.as_str(), created.at, created.key_id.as_deref()),
        ("u", NOW, Some(k.key.id.as_str()))
    );
    assert_eq!(created.key_name.as_deref(), Some("k"));
    assert_eq!(created.details, json!({"auth": "admin_token"}));
}

#[test]
fn a_removed_user_can_no_longer_act() {
    let w = World::new();
    let k = w.create("gone", "k");
    w.service().remove_user("gone", "msg_1", NOW).unwrap();
    let s = w.service();
    let gone = user("gone");
    assert_err(s.create_key(&gone, new_key("new"), NOW), "user_removed");
    assert_err(s.get_key(&gone, &k.key.id, NOW), "user_removed");
    assert_err(
        s.list_keys(&gone, &ListQuery::default(), NOW),
        "user_removed",
    );
    assert_err(s.delete_key(&gone, &k.key.id, NOW), "user_removed");
    assert_err(s.list_audit(&gone, &AuditQuery::default()), "user_removed");
    assert_eq!(w.count("api_keys"), 1);
}

/// Both stores of a [`World`], running `hook` once just before the
/// `nth` call that `matches` (another request interleaving with this one).
pub(super) struct Interleave<'a> {
    pub(super) world: &'a World,
    pub(super) matches: Box<dyn Fn(&str) -> bool>,
    pub(super) remaining: RefCell<usize>,
    pub(super) hook: RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

impl Interleave<'_> {
    fn before(&self, call: &str) {
        if !(self.matches)(call) {
            return;
        }
        let mut remaining = self.remaining.borrow_mut();
        if *remaining == 0 {
            return;
        }
        *remaining -= 1;
        if *remaining == 0 {
            drop(remaining);
            let hook = self.hook.borrow_mut().take();
            if let Some(hook) = hook {
                hook();
            }
        }
    }
}

impl Sql for Interleave<'_> {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<crate::Rows, StoreError> {
        self.before(sql);
        self.world.sql.execute(sql, params)
    }
}

impl KeyValue for Interleave<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.world.kv.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.before("kv set");
        self.world.kv.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.world.kv.delete(key)
    }
}

#[test]
fn a_removal_racing_a_create_leaves_no_working_key() {
    // The webhook for the creating user runs at each point inside the create.
    let points: [(&str, &str, usize); 3] = [
        ("before the row", "INSERT INTO api_keys", 1),
        ("before the KV entry", "kv set", 1),
        ("before the second look", "SELECT 1 FROM removed_users", 2),
    ];
    for (point, pattern, nth) in points {
        let w = World::new();
        w.service().migrate().unwrap();
        let both = Interleave {
            world: &w,
            matches: Box::new(move |call| call.contains(pattern)),
            remaining: RefCell::new(nth),
            hook: RefCell::new(Some(Box::new(|| {
                let response = w.service().remove_user("u", "msg_1", NOW).unwrap();
                let _ = response;
            }))),
        };
        let result = KeyService::new(&both, &both).create_key(&user("u"), new_key("k"), NOW);
        assert_err(result, "user_removed");
        assert!(both.hook.borrow().is_none(), "{point}: the removal ran");
        assert_eq!(w.count("api_keys"), 0, "{point}");
        assert!(
            w.kv.inner().keys().is_empty(),
            "{point}: {:?}",
            w.kv.inner().keys()
        );
        assert!(!w.actions().contains(&"key.created".to_owned()), "{point}");
    }
}

#[test]
fn verify_rejects_malformed_keys_without_touching_storage() {
    let w = World::new();
    let k = w.create("u", "k");
    w.kv.clear_calls();
    w.sql.clear_statements();
    let s = k.secret.expose_secret();
    let cases = [
        (None, "missing_key"),
        (Some(String::new()), "missing_key"),
        (Some(s.replacen("kg_", "kk_", 1)), "malformed_key"),
        (Some(s[..40].to_owned()), "malformed_key"),
        (Some(format!("{}!{}", &s[..10], &s[11..])), "malformed_key"),
        (
            Some(format!(
                "{}{}",
                &s[..40],
                if s.ends_with('A') { 'B' } else { 'A' }
            )),
            "malformed_key",
        ),
    ];
    for (presented, code) in cases {
        assert_err(w.service().verify(presented.as_deref(), &ctx(), NOW), code);
    }
    assert!(w.kv.calls().is_empty());
    assert!(w.sql.statements().is_empty());
}

#[test]
fn verify_reads_one_kv_entry_and_writes_one_sql_statement() {
    let w = World::new();
    let k = w.create("u", "k");
    w.kv.clear_calls();
    w.sql.clear_statements();
    w.verify(&k).unwrap();
    assert_eq!(w.kv.calls(), vec![(KvOp::Get, k.secret.hash().kv_key())]);
    let statements = w.sql.statements();
    assert_eq!(
        statements,
        [schema::RECORD_USES_WITHOUT_FSYNC, INSERT_KEY_USED],
        "the connection setting, then the one write"
    );
    assert_eq!(w.synchronous(), 1, "NORMAL on verify's connection");
}

#[test]
fn a_management_call_on_a_migrated_database_costs_one_statement_before_its_work() {
    let w = World::new();
    let k = w.create("u", "k");
    w.sql.clear_statements();
    w.get(&k.key.id).unwrap();
    let statements = w.sql.statements();
    assert_eq!(statements.len(), 2, "{statements:?}");
    assert!(
        statements[0].contains("pragma_user_version") && statements[0].contains("removed_users")
    );
}

#[test]
fn a_use_is_still_recorded_where_the_connection_setting_is_refused() {
    let w = World::new();
    let k = w.create("u", "k");
    w.sql
        .fail_nth_matching(schema::RECORD_USES_WITHOUT_FSYNC, 1);
    w.verify(&k).unwrap();
    assert_eq!(w.actions().last().map(String::as_str), Some("key.used"));
    assert_eq!(w.synchronous(), 2, "the connection keeps SQLite's FULL");
}

#[test]
fn unknown_expired_and_revoked_keys_are_decided_from_the_kv_entry_alone() {
    let w = World::new();
    let stranger = ApiKey::generate().unwrap();
    let expiring = w
        .service()
        .create_key(
            &user("u"),
            NewKey {
                expires_at: Some(NOW + 100),
                owner: None,
                ..new_key("expiring")
            },
            NOW,
        )
        .unwrap();
    let owned = w.create("leaver", "owned");
    w.service().remove_user("leaver", "msg_1", NOW).unwrap();
    w.sql.clear_statements();

    assert_err(
        w.service()
            .verify(Some(stranger.expose_secret()), &ctx(), NOW),
        "unknown_key",
    );
    assert!(w.verify_at(&expiring, NOW + 99).is_ok());
    w.sql.clear_statements();
    assert_err(w.verify_at(&expiring, NOW + 100), "expired_key");
    assert_err(w.verify(&owned), "revoked_key");
    assert!(w.sql.statements().is_empty(), "{:?}", w.sql.statements());
    assert_eq!(w.get(&expiring.key.id).unwrap().status, KeyStatus::Active);
    let later = w
        .service()
        .get_key(&user("a"), &expiring.key.id, NOW + 100)
        .unwrap();
    assert_eq!(later.status, KeyStatus::Expired);
}

#[test]
fn verify_on_a_database_without_schema_migrates_and_refuses_a_key_without_a_row() {
    let w = World::new();
    let k = w.create("u", "k");
    // Same key-value store, a brand-new database: the entry alone is not enough.
    let fresh = SqliteSql::new();
    let s = KeyService::new(&w.kv, &fresh);
    assert_err(
        s.verify(Some(k.secret.expose_secret()), &ctx(), NOW),
        "unknown_key",
    );
    assert_eq!(
        schema::user_version(&fresh).unwrap(),
        schema::SCHEMA_VERSION
    );
    let used = fresh
        .execute("SELECT count(*) FROM audit_log", &[])
        .unwrap();
    assert_eq!(used.scalar_int().unwrap(), 0);
}

/// A verify whose KV read saw the key as it was before `interleave` ran.
fn verify_interleaved<'w>(
    w: &'w World,
    k: &CreatedKey,
    interleave: impl FnOnce() + 'w,
) -> Result<Verified, Error> {
    let both = Interleave {
        world: w,
        matches: Box::new(|call| {
            call.contains("'key.used'") || call.contains("INSERT INTO audit_log")
        }),
        remaining: RefCell::new(1),
        hook: RefCell::new(Some(Box::new(interleave))),
    };
    let result = KeyService::new(&both, &both).verify(Some(k.secret.expose_secret()), &ctx(), NOW);
    assert!(both.hook.borrow().is_none(), "the interleaved call ran");
    result
}

#[test]
fn a_verify_racing_a_delete_or_a_revocation_records_no_use_after_it() {
    let w = World::new();
    let k = w.create("u", "k");
    let result = verify_interleaved(&w, &k, || {
        w.service()
            .delete_key(&user("admin"), &k.key.id, NOW)
            .unwrap();
    });
    assert_err(result, "unknown_key");
    assert!(w.audit("action=key.used").is_empty());

    let k = w.create("leaver", "k2");
    let result = verify_interleaved(&w, &k, || {
        w.service().remove_user("leaver", "msg_1", NOW).unwrap();
    });
    assert_err(result, "revoked_key");
    assert!(w.audit("action=key.used").is_empty());
}

#[test]
fn verify_refuses_to_confirm_a_use_it_cannot_record() {
    let w = World::new();
    let k = w.create("u", "k");
    w.sql.fail_nth_matching("INSERT INTO audit_log", 1);
    assert_err(w.verify(&k), "storage_unavailable");
    assert!(w.verify(&k).is_ok());
}

#[test]
fn deleting_removes_the_key_from_verify_and_the_overview() {
    let w = World::new();
    let k = w.create("owner", "k");
    w.verify(&k).unwrap();
    w.service()
        .delete_key(&user("admin"), &k.key.id, NOW + 5)
        .unwrap();
    assert_err(w.verify(&k), "unknown_key");
    assert_err(w.get(&k.key.id), "key_not_found");
    assert_eq!(w.list("").total, 0);
    let deleted = &w.audit("action=key.deleted")[0];
    assert_eq!((deleted.user.as_str(), deleted.at), ("admin", NOW + 5));
    assert_eq!(deleted.key_name.as_deref(), Some("k"));
    // Entries outlive the key.
    assert_eq!(w.audit(&format!("key_id={}", k.key.id)).len(), 3);
    assert_err(
        w.service().delete_key(&user("admin"), &k.key.id, NOW),
        "key_not_found",
    );
    assert_err(
        w.service().delete_key(&user("admin"), "key_nope", NOW),
        "key_not_found",
    );
    assert_err(
        w.service().delete_key(&user("admin"), "../etc", NOW),
        "key_not_found",
    );
    // The name is free again.
    w.create("owner", "k");
}

#[test]
fn delete_with_a_failing_statement_changes_nothing_and_the_retry_completes_it() {
    let w = World::new();
    let k = w.create("u", "k");
    w.sql.fail_nth_matching("INSERT INTO key_deletions", 1);
    assert_err(
        w.service().delete_key(&user("admin"), &k.key.id, NOW),
        "storage_unavailable",
    );
    assert!(w.verify(&k).is_ok(), "still listed, still verifies");
    assert_eq!(w.get(&k.key.id).unwrap().status, KeyStatus::Active);
    assert!(w.audit("action=key.deleted").is_empty());
    w.service()
        .delete_key(&user("admin"), &k.key.id, NOW)
        .unwrap();
    assert_err(w.get(&k.key.id), "key_not_found");
    assert_err(w.verify(&k), "unknown_key");
    assert_eq!(w.audit("action=key.deleted").len(), 1);
}

#[test]
fn delete_with_a_failing_kv_delete_still_deletes_and_the_leftover_verifies_nothing() {
    let w = World::new();
    let k = w.create("u", "k");
    w.kv.fail_nth(KvOp::Delete, 1);
    w.service()
        .delete_key(&user("admin"), &k.key.id, NOW)
        .unwrap();
    assert_eq!(w.kv.inner().keys(), [k.secret.hash().kv_key()], "leftover");
    assert_err(w.verify(&k), "unknown_key");
    assert_err(w.get(&k.key.id), "key_not_found");
    assert_eq!(w.audit("action=key.deleted").len(), 1);
    assert!(w.audit("action=key.used").is_empty());
}

#[test]
fn two_deletes_of_one_key_audit_it_once() {
    let w = World::new();
    let k = w.create("u", "k");
    let both = Interleave {
        world: &w,
        matches: Box::new(|call| call.contains("INSERT INTO key_deletions")),
        remaining: RefCell::new(1),
        hook: RefCell::new(Some(Box::new(|| {
            w.service()
                .delete_key(&user("first"), &k.key.id, NOW)
                .unwrap();
        }))),
    };
    assert_err(
        KeyService::new(&both, &both).delete_key(&user("second"), &k.key.id, NOW),
        "key_not_found",
    );
    let deleted = w.audit("action=key.deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].user, "first");
}

#[test]
fn removing_a_user_revokes_all_their_keys_once() {
    let w = World::new();
    let keys: Vec<CreatedKey> = (0..3)
        .map(|i| w.create("leaver", &format!("k{i}")))
        .collect();
    let other = w.create("stayer", "other");
    let response = w
        .service()
        .remove_user("leaver", "msg_1", NOW + 10)
        .unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"user_id": "leaver", "revoked_keys": 3})
    );
    for k in &keys {
        assert_err(w.verify(k), "revoked_key");
        let view = w.get(&k.key.id).unwrap();
        assert_eq!(view.status, KeyStatus::Revoked);
        assert_eq!(view.revoked_at, Some(NOW + 10));
        assert_eq!(view.revoked_reason.as_deref(), Some("owner_removed"));
    }
    assert!(w.verify(&other).is_ok());
    let revoked = w.audit("action=key.revoked");
    assert_eq!(revoked.len(), 3);
    assert!(
        revoked
            .iter()
            .all(|e| e.user == "leaver" && e.details == json!({"reason": "owner_removed"}))
    );
    let removed = w.audit("action=user.removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].user, "leaver");

    let audit_before = w.count("audit_log");
    // The same delivery again: the same answer, nothing changes.
    assert_eq!(
        w.service()
            .remove_user("leaver", "msg_1", NOW + 20)
            .unwrap(),
        response
    );
    // A new delivery for the removed user revokes nothing more.
    assert_eq!(
        w.service()
            .remove_user("leaver", "msg_2", NOW + 30)
            .unwrap(),
        UserRemovedResponse {
            user_id: "leaver".into(),
            revoked_keys: 0
        }
    );
    assert_eq!(w.count("audit_log"), audit_before);
    assert_eq!(w.get(&keys[0].key.id).unwrap().revoked_at, Some(NOW + 10));
}

#[test]
fn removing_a_user_without_keys_is_recorded() {
    let w = World::new();
    let response = w.service().remove_user("nobody", "msg_1", NOW).unwrap();
    assert_eq!(response.revoked_keys, 0);
    assert_eq!(w.actions(), ["user.removed"]);
    assert_err(
        w.service().create_key(&user("nobody"), new_key("k"), NOW),
        "user_removed",
    );
}

#[test]
fn a_removal_failing_part_way_is_finished_by_the_retry_without_duplicates() {
    // Each failure point of the removal, then the identity system's retry.
    type Arm = Box<dyn Fn(&World)>;
    let failures: Vec<(&str, Arm)> = vec![
        (
            "second KV revoke",
            Box::new(|w| w.kv.fail_nth(KvOp::Set, 2)),
        ),
        (
            "second SQL revoke",
            Box::new(|w| w.sql.fail_nth_matching("UPDATE api_keys", 2)),
        ),
        (
            "user.removed entry",
            Box::new(|w| w.sql.fail_nth_matching("ON CONFLICT DO NOTHING", 1)),
        ),
        (
            "stored response",
            Box::new(|w| w.sql.fail_nth_matching("INSERT INTO webhook_deliveries", 1)),
        ),
        (
            "key scan",
            Box::new(|w| w.sql.fail_nth_matching("FROM api_keys", 1)),
        ),
    ];
    for (point, arm) in failures {
        let w = World::new();
        let keys: Vec<CreatedKey> = (0..3)
            .map(|i| w.create("leaver", &format!("k{i}")))
            .collect();
        arm(&w);
        assert_err(
            w.service().remove_user("leaver", "msg_1", NOW),
            "storage_unavailable",
        );
        // Each key is revoked and refused, or active and verifying; never
        // one without the other (keys are processed by id).
        let mut by_id: Vec<&CreatedKey> = keys.iter().collect();
        by_id.sort_by(|a, b| a.key.id.cmp(&b.key.id));
        for k in &by_id {
            let status = w.get(&k.key.id).unwrap().status;
            match w.verify(k) {
                Ok(_) => assert_eq!(status, KeyStatus::Active, "{point}"),
                Err(e) => {
                    assert_eq!(e.code(), "revoked_key", "{point}");
                    assert_eq!(status, KeyStatus::Revoked, "{point}");
                }
            }
        }
        if point == "second KV revoke" {
            // Revoked in SQL, not yet marked in KV: refused all the same.
            assert_eq!(w.get(&by_id[1].key.id).unwrap().status, KeyStatus::Revoked);
            assert_err(w.verify(by_id[1]), "revoked_key");
        }
        let response = w
            .service()
            .remove_user("leaver", "msg_1", NOW + 60)
            .unwrap();
        assert_eq!(response.revoked_keys, 3, "{point}");
        for k in &keys {
            assert_err(w.verify(k), "revoked_key");
            assert_eq!(
                w.get(&k.key.id).unwrap().status,
                KeyStatus::Revoked,
                "{point}"
            );
        }
        assert_eq!(w.audit("action=key.revoked").len(), 3, "{point}");
        assert_eq!(w.audit("action=user.removed").len(), 1, "{point}");
        assert_eq!(
            w.service()
                .remove_user("leaver", "msg_1", NOW + 90)
                .unwrap(),
            response
        );
    }
}

fn ids(page: &Page<KeyView>) -> Vec<String> {
    page.items.iter().map(|k| k.id.clone()).collect()
}

#[test]
fn paging_never_repeats_or_skips_a_key_even_among_ties() {
    let w = World::new();
    // 23 keys: equal created_at, only three owners, most never used.
    let keys: Vec<CreatedKey> = (0..23)
        .map(|i| {
            w.create(
                &format!("user{}", i % 3),
                &format!("key {:02}", i % 20 + i / 20 * 100),
            )
        })
        .collect();
    for (i, k) in keys.iter().enumerate().take(6) {
        w.verify_at(k, NOW + (i as i64 % 2)).unwrap();
    }
    for sort in ["name", "created_by", "created_at", "last_used_at"] {
        for order in ["asc", "desc"] {
            let all = w.list(&format!("sort={sort}&order={order}&per_page=100"));
            assert_eq!(all.total, 23);
            let mut seen = Vec::new();
            for page in 1..=5 {
                let p = w.list(&format!("sort={sort}&order={order}&per_page=5&page={page}"));
                assert_eq!((p.total, p.total_pages), (23, 5));
                seen.extend(ids(&p));
            }
            assert_eq!(seen, ids(&all), "{sort} {order}");
            assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
            let past = w.list(&format!("sort={sort}&order={order}&per_page=5&page=6"));
            assert!(past.items.is_empty());
            assert_eq!(past.total, 23);
        }
    }
    // Ties are broken by id in the sort's direction.
    let by_created = w.list("sort=created_at&order=asc&per_page=100");
    let mut sorted = ids(&by_created);
    sorted.sort();
    assert_eq!(ids(&by_created), sorted);
}

#[test]
fn never_used_keys_sort_as_the_oldest_use() {
    let w = World::new();
    let never = w.create("u", "never");
    let early = w.create("u", "early");
    let late = w.create("u", "late");
    w.verify_at(&early, NOW + 1).unwrap();
    w.verify_at(&late, NOW + 2).unwrap();
    let names = |q: &str| -> Vec<String> { w.list(q).items.into_iter().map(|k| k.name).collect() };
    assert_eq!(
        names("sort=last_used_at&order=asc"),
        ["never", "early", "late"]
    );
    assert_eq!(
        names("sort=last_used_at&order=desc"),
        ["late", "early", "never"]
    );
    let _ = never;
}

#[test]
fn the_overview_defaults_to_newest_first_and_sorts_names_case_insensitively() {
    let w = World::new();
    w.create_at("u", "beta", NOW);
    w.create_at("u", "Alpha", NOW + 1);
    w.create_at("u", "gamma", NOW + 2);
    let names = |q: &str| -> Vec<String> { w.list(q).items.into_iter().map(|k| k.name).collect() };
    assert_eq!(names(""), ["gamma", "Alpha", "beta"]);
    assert_eq!(names("sort=name&order=asc"), ["Alpha", "beta", "gamma"]);
    let p = w.list("per_page=2");
    assert_eq!((p.page, p.per_page, p.total, p.total_pages), (1, 2, 3, 2));
    let empty = World::new().list("");
    assert_eq!(
        (empty.total, empty.total_pages, empty.items.len()),
        (0, 0, 0)
    );
}

#[test]
fn the_overview_filters() {
    let w = World::new();
    let day = 86_400;
    let old = w.create_at("floris@example.com", "Orders Sync", NOW - 10 * day);
    let used = w.create_at("ann", "invoices", NOW - 2 * day);
    w.verify_at(&used, NOW - day).unwrap();
    let expiring = w
        .service()
        .create_key(
            &user("ann"),
            NewKey {
                expires_at: Some(NOW - 1),
                owner: None,
                ..new_key("short-lived ORDERS")
            },
            NOW - day,
        )
        .unwrap();
    let leaver = w.create_at("leaver", "legacy", NOW - 3 * day);
    w.service().remove_user("leaver", "msg_1", NOW).unwrap();

    let names = |q: &str| -> Vec<String> {
        let mut n: Vec<String> = w.list(q).items.into_iter().map(|k| k.name).collect();
        n.sort();
        n
    };
    assert_eq!(names("name=orders"), ["Orders Sync", "short-lived ORDERS"]);
    assert_eq!(names("name=s+SYN"), ["Orders Sync"]);
    assert_eq!(names("name=%25"), Vec::<String>::new(), "no LIKE wildcards");
    assert_eq!(names("created_by=ann"), ["invoices", "short-lived ORDERS"]);
    assert_eq!(
        names("created_by=Ann"),
        ["invoices", "short-lived ORDERS"],
        "user ids match ASCII case-insensitively"
    );
    assert_eq!(
        names("created_by=an"),
        Vec::<String>::new(),
        "whole ids only"
    );
    assert_eq!(names("status=active"), ["Orders Sync", "invoices"]);
    assert_eq!(names("status=expired"), ["short-lived ORDERS"]);
    assert_eq!(names("status=revoked"), ["legacy"]);
    let created = |d: i64| crate::timestamp::format_rfc3339(NOW - d * day)[..10].to_owned();
    assert_eq!(
        names(&format!(
            "created_from={}&created_to={}",
            created(3),
            created(2)
        )),
        ["invoices", "legacy"],
        "date bounds include the whole day"
    );
    assert_eq!(
        names(&format!("created_to={}", created(10))),
        ["Orders Sync"]
    );
    let exact = crate::timestamp::format_rfc3339(NOW - 2 * day).replace('Z', "%2B00:00");
    assert_eq!(
        names(&format!("created_from={exact}&created_to={exact}")),
        ["invoices"]
    );
    assert_eq!(
        names(&format!("unused_since={}", created(0))),
        ["Orders Sync", "invoices", "legacy", "short-lived ORDERS"]
    );
    let used_at = crate::timestamp::format_rfc3339(NOW - day).replace('Z', "%2B00:00");
    assert_eq!(
        names(&format!("unused_since={used_at}")),
        ["Orders Sync", "legacy", "short-lived ORDERS"],
        "last used exactly then is not before then"
    );
    assert_eq!(names("created_by=ann&status=active&name=inv"), ["invoices"]);
    let _ = (old, expiring, leaver);
}

#[test]
fn filters_are_bound_parameters_never_sql_text() {
    let hostile = "x' OR '1'='1";
    let q = ListQuery {
        name: Some(hostile.into()),
        created_by: Some("a\"; DROP TABLE api_keys; --".into()),
        owner: None,
        created_from: Some(1),
        created_to: Some(2),
        status: Some(KeyStatus::Active),
        unused_since: Some(3),
        ..ListQuery::default()
    };
    let (sql, params) = list_filter(&q, NOW, true);
    assert!(!sql.contains('\'') && !sql.contains("DROP"), "{sql}");
    assert_eq!(sql.matches('?').count(), params.len());
    // The trigram index's phrase, quoted, then the exact `instr` needle.
    assert_eq!(params[0], SqlValue::text("\"x' or '1'='1\""));
    assert_eq!(params[1], SqlValue::text("x' or '1'='1"));
    assert_eq!(
        list_filter(&ListQuery::default(), NOW, false),
        (String::new(), vec![])
    );
    let (sql, params) = audit_filter(&AuditQuery {
        user: Some(hostile.into()),
        key_id: Some("k".into()),
        action: Some(AuditAction::KeyUsed),
        from: Some(1),
        to: Some(2),
        ..AuditQuery::default()
    });
    assert_eq!(
        sql,
        " WHERE user COLLATE NOCASE = ? AND key_id = ? AND action = ? AND at >= ? AND at <= ?"
    );
    assert_eq!(params.len(), 5);

    let w = World::new();
    w.create("u", "k");
    assert_eq!(
        w.list(&format!("name={}", "x%27+OR+%271%27%3D%271")).total,
        0
    );
    assert_eq!(w.list("").total, 1);
}

#[test]
fn the_audit_trail_is_newest_first_filtered_and_paged() {
    let w = World::new();
    let a = w.create_at("ann", "a", NOW);
    let b = w.create_at("bob", "b", NOW + 10);
    w.verify_at(&a, NOW + 20).unwrap();
    w.verify_at(&a, NOW + 20).unwrap();
    w.service()
        .delete_key(&user("bob"), &b.key.id, NOW + 30)
        .unwrap();
    let all = w.audit("");
    let summary: Vec<(&str, &str, i64)> = all
        .iter()
        .map(|e| (e.action.as_str(), e.user.as_str(), e.at))
        .collect();
    assert_eq!(
        summary,
        [
            ("key.deleted", "bob", NOW + 30),
            ("key.used", "ann", NOW + 20),
            ("key.used", "ann", NOW + 20),
            ("key.created", "bob", NOW + 10),
            ("key.created", "ann", NOW),
        ]
    );
    assert!(all[1].id > all[2].id, "same second: newest id first");
    assert_eq!(w.audit("user=ann").len(), 3);
    assert_eq!(w.audit(&format!("key_id={}", b.key.id)).len(), 2);
    assert_eq!(w.audit("action=key.created").len(), 2);
    let at = |t: i64| crate::timestamp::format_rfc3339(t).replace('Z', "%2B00:00");
    assert_eq!(
        w.audit(&format!("from={}&to={}", at(NOW + 10), at(NOW + 20)))
            .len(),
        3
    );
    let page = w
        .service()
        .list_audit(&user("x"), &parse_audit_query("per_page=2&page=3").unwrap())
        .unwrap();
    assert_eq!((page.items.len(), page.total, page.total_pages), (1, 5, 3));
    assert_eq!(page.items[0].action, "key.created");
    let entry = serde_json::to_value(&all[0]).unwrap();
    assert_eq!(
        entry,
        json!({"id": all[0].id, "at": "2026-11-26T17:00:30Z", "user": "bob", "action": "key.deleted",
               "key_id": b.key.id, "key_name": "b", "details": {"auth": "admin_token"}})
    );
}

#[test]
fn management_calls_create_the_schema_on_a_fresh_database() {
    let w = World::new();
    assert!(
        w.service()
            .list_keys(&user("u"), &ListQuery::default(), NOW)
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        schema::user_version(w.sql.inner()).unwrap(),
        schema::SCHEMA_VERSION
    );
    let w = World::new();
    assert_eq!(
        w.service().remove_user("u", "m", NOW).unwrap().revoked_keys,
        0
    );
}

#[test]
fn storage_failures_surface_as_storage_unavailable_without_internals() {
    let w = World::new();
    w.sql.fail_nth_matching("PRAGMA user_version", 1);
    let err = w
        .service()
        .list_keys(&user("u"), &ListQuery::default(), NOW)
        .unwrap_err();
    assert_eq!(err.code(), "storage_unavailable");
    assert!(!err.to_problem().to_json().contains("disk I/O"));
    let k = w.create("u", "k");
    w.kv.fail_nth(KvOp::Get, 1);
    assert_err(w.verify(&k), "storage_unavailable");
    w.kv.inner()
        .set(&k.secret.hash().kv_key(), b"not json")
        .unwrap();
    assert_err(w.verify(&k), "storage_unavailable");
}

#[test]
fn counted_totals_match_a_full_count_through_creates_deletes_revocations_and_expiry() {
    let w = World::new();
    let mut made = Vec::new();
    for (i, owner) in ["ann", "bob", "ann", "leaver", "leaver", "cy"]
        .iter()
        .enumerate()
    {
        let expires_at = (i % 3 == 0).then_some(NOW + 100 * i as i64 + 50);
        made.push(
            w.service()
                .create_key(
                    &user(owner),
                    NewKey {
                        expires_at,
                        owner: None,
                        ..new_key(&format!("key-{i}"))
                    },
                    NOW,
                )
                .unwrap(),
        );
    }
    let queries = [
        "",
        "status=active",
        "status=revoked",
        "status=expired",
        "created_by=ann",
        "created_by=ann&status=active",
        "created_by=ann&status=expired",
        "created_by=leaver&status=revoked",
        "created_by=nobody",
    ];
    let check = |now: i64, stage: &str| {
        for q in queries {
            let query = parse_list_query(q).unwrap();
            assert!(counted_total(&query, now).is_some(), "{q}");
            let page = w.service().list_keys(&user("admin"), &query, now).unwrap();
            let (filter, params) = list_filter(&query, now, false);
            let full = w
                .sql
                .execute(&format!("SELECT count(*) FROM api_keys{filter}"), &params)
                .unwrap()
                .scalar_int()
                .unwrap();
            assert_eq!(page.total as i64, full, "{stage}: {q}");
        }
    };
    check(NOW, "created");
    w.service()
        .delete_key(&user("admin"), &made[1].key.id, NOW)
        .unwrap();
    check(NOW, "deleted");
    w.service().remove_user("leaver", "msg_1", NOW + 1).unwrap();
    check(NOW + 1, "revoked");
    // key-0 and key-3 expire at NOW + 50 and NOW + 350.
    check(NOW + 400, "expired");
    let name_filter = parse_list_query("name=key").unwrap();
    assert!(counted_total(&name_filter, NOW).is_none());
}

#[test]
fn a_version_1_database_is_counted_correctly_after_the_upgrade() {
    let w = World::new();
    w.create("ann", "a1");
    w.create("ann", "a2");
    w.create("bob", "b1");
    // Back to version 1: no counts, no triggers.
    for statement in [
        "DROP TRIGGER key_counts_on_insert",
        "DROP TRIGGER key_counts_on_delete",
        "DROP TRIGGER key_counts_on_revocation",
        "DROP TABLE key_counts",
        "PRAGMA user_version = 1",
    ] {
        w.sql.execute(statement, &[]).unwrap();
    }
    w.create("bob", "b2");
    assert_eq!(w.list("").total, 4);
    assert_eq!(w.list("created_by=bob").total, 2);
}

#[test]
fn the_name_filter_finds_exactly_the_names_containing_the_needle() {
    let w = World::new();
    let names = [
        "orders-sync",
        "Orders export",
        "ärger-bot",
        "ÄRGERLICH",
        "say \"hi\" bot",
        "a*b OR c",
        "nightly ord",
        "x",
        "ab",
    ];
    let mut ids = std::collections::HashMap::new();
    for name in names {
        ids.insert(name, w.create("ann", name).key.id);
    }
    let doomed = w.create("ann", "orders-old");
    w.service()
        .delete_key(&user("ann"), &doomed.key.id, NOW)
        .unwrap();
    for needle in [
        "ord", "ORDERS", "rders-s", "ärger", "ÄRG", "\"hi\"", "\"", "*b OR", "OR", "x", "ab", "b",
        "zzz", "sync\"", "s-s",
    ] {
        let folded = needle.to_lowercase();
        let mut expected: Vec<&String> = names
            .iter()
            .filter(|n| n.to_lowercase().contains(&folded))
            .map(|n| &ids[n])
            .collect();
        expected.sort();
        let query = format!("per_page=100&name={}", percent(needle));
        let page = w.list(&query);
        let mut got: Vec<&String> = page.items.iter().map(|k| &k.id).collect();
        got.sort();
        assert_eq!(got, expected, "name={needle}");
        assert_eq!(page.total, expected.len() as u64, "name={needle}");
    }
}

#[test]
fn a_needle_most_names_contain_gives_the_same_answer_without_the_index() {
    let w = World::new();
    let many = NAME_INDEX_MAX_CANDIDATES as usize + 5;
    for i in 0..many {
        w.create("ann", &format!("bulk-{i:04}"));
    }
    w.create("ann", "other");
    w.sql.clear_statements();
    assert_eq!(w.list("name=bulk").total, many as u64);
    assert!(
        !w.sql.statements().iter().any(|s| s.contains("rowid IN")),
        "a broad needle is checked name by name"
    );
    w.sql.clear_statements();
    let page = w.list("name=ulk-100");
    let mut names: Vec<&str> = page.items.iter().map(|k| k.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bulk-1000",
            "bulk-1001",
            "bulk-1002",
            "bulk-1003",
            "bulk-1004"
        ]
    );
    assert!(w.sql.statements().iter().any(|s| s.contains("rowid IN")));
}

#[test]
fn keys_from_before_the_name_index_are_found_after_the_upgrade() {
    let w = World::new();
    w.create("ann", "orders-sync");
    w.create("bob", "billing-export");
    // Back to version 4: no trigram index.
    for statement in [
        "DROP TRIGGER api_keys_name_search_on_insert",
        "DROP TRIGGER api_keys_name_search_on_delete",
        "DROP TRIGGER api_keys_name_search_on_rename",
        "DROP TABLE api_keys_name_search",
        "PRAGMA user_version = 4",
    ] {
        w.sql.execute(statement, &[]).unwrap();
    }
    w.create("bob", "orders-backfill");
    assert_eq!(w.list("name=orders").total, 2);
    assert_eq!(w.list("name=export").total, 1);
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Every statement the operations send, with SQLite's plan for it, as
/// `docs/query-plans.md` shows them. Fails when that file is out of date
/// (`KEYGATE_UPDATE_DOCS=1` rewrites it) or when a query reads a whole
/// table where an index should serve it.
#[test]
fn the_documented_query_plans_are_the_plans_of_every_statement() {
    let w = World::new();
    let key = w.create("ann", "orders-sync");
    let other = w.create("bob", "billing");
    w.verify(&key).unwrap();
    w.sql.clear_statements();

    w.create("ann", "orders-export");
    w.verify(&key).unwrap();
    w.get(&key.key.id).unwrap();
    for sort in ["name", "created_by", "created_at", "last_used_at"] {
        for order in ["asc", "desc"] {
            w.list(&format!("sort={sort}&order={order}"));
        }
    }
    for filter in [
        "name=ord",
        "name=or",
        "created_by=ann",
        "created_by=ann&sort=name",
        "created_from=2026-01-01T00:00:00Z&created_to=2027-01-01T00:00:00Z",
        "status=active",
        "status=expired",
        "status=revoked",
        "created_by=ann&status=active",
        "unused_since=2026-11-01T00:00:00Z",
    ] {
        w.list(filter);
    }
    for filter in [
        "",
        "user=ann",
        "key_id=k",
        "action=key.used",
        "from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z",
    ] {
        w.audit(filter);
    }
    w.service()
        .delete_key(&user("bob"), &other.key.id, NOW)
        .unwrap();
    w.service().remove_user("ann", "msg_1", NOW).unwrap();

    let mut seen = HashSet::new();
    let mut doc = String::from(
        "# Query plans\n\n\
         Generated by the test `the_documented_query_plans_are_the_plans_of_every_statement`\n\
         (`crates/keygate/src/service/tests.rs`) from every statement the operations send:\n\
         SQLite's `EXPLAIN QUERY PLAN` for each, at schema version ",
    );
    doc.push_str(&format!(
        "{}. `SEARCH` reads the rows an index points to; `SCAN … USING INDEX` walks an index in \
         order and stops at the page's `LIMIT`; `SCAN <table>` alone would read every row.\n",
        schema::SCHEMA_VERSION
    ));
    doc.push_str(&round_trips());
    doc.push_str(&verify_write());
    doc.push_str("\n## Every statement and its plan\n");
    for statement in w.sql.statements() {
        let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        if statement.starts_with("PRAGMA") || !seen.insert(statement.clone()) {
            continue;
        }
        let nulls = vec![SqlValue::Null; statement.matches('?').count()];
        let plan = w
            .sql
            .inner()
            .execute(&format!("EXPLAIN QUERY PLAN {statement}"), &nulls)
            .unwrap();
        let lines: Vec<String> = plan
            .rows
            .iter()
            .map(|r| match r.last() {
                Some(SqlValue::Text(detail)) => detail.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        for line in &lines {
            let short_needle = statement.contains("instr") && !statement.contains("MATCH");
            assert!(
                (short_needle || line != "SCAN api_keys") && line != "SCAN audit_log",
                "{statement} reads the whole table: {lines:?}"
            );
        }
        doc.push_str(&format!("\n```sql\n{statement}\n```\n"));
        for line in lines {
            doc.push_str(&format!("    {line}\n"));
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/query-plans.md");
    if std::env::var_os("KEYGATE_UPDATE_DOCS").is_some() {
        std::fs::write(path, &doc).unwrap();
    }
    let documented = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        documented == doc,
        "docs/query-plans.md is out of date; run `KEYGATE_UPDATE_DOCS=1 cargo test -p keygate`"
    );
}

/// What verify's one write costs beyond its plan: every B-tree the compiled
/// `key.used` insert (with its triggers) opens for writing, and its length in
/// SQLite instructions. Spin compiles it on every request, and every index
/// here is written on every verification.
fn verify_write() -> String {
    let sql = SqliteSql::new();
    schema::migrate(&sql).unwrap();
    let program = sql
        .execute(
            &format!("EXPLAIN {INSERT_KEY_USED}"),
            &vec![SqlValue::Null; 7],
        )
        .unwrap();
    let mut written: Vec<String> = program
        .rows
        .iter()
        .filter(|r| r[1] == SqlValue::text("OpenWrite"))
        .map(|r| {
            sql.execute(
                "SELECT name FROM sqlite_master WHERE rootpage = ?",
                &[r[3].clone()],
            )
            .unwrap()
            .rows[0][0]
                .clone()
        })
        .map(|name| match name {
            SqlValue::Text(name) => name,
            other => panic!("{other:?}"),
        })
        .collect();
    written.sort();
    written.dedup();
    let written: Vec<String> = written.iter().map(|name| format!("`{name}`")).collect();
    format!(
        "\n## Verify's write, as compiled\n\n\
         The `key.used` insert with its triggers compiles to {} SQLite instructions \
         (`EXPLAIN`) and writes {} B-trees: {}.\n",
        program.rows.len(),
        written.len(),
        written.join(", ")
    )
}

/// The statements and key-value calls each operation sends on an up-to-date
/// database: on a libSQL server (and Redis) each is a network round trip.
fn round_trips() -> String {
    let w = World::new();
    let key = w.create("ann", "orders-sync");
    let doomed = w.create("bob", "billing");
    w.create("cy", "reports");
    let mut table = String::from(
        "\n## Round trips per operation\n\n\
         Counted by the same test on a database at the current version. On a libSQL server each \
         SQL statement is a network round trip (and on Spin each `Connection::open` a new HTTP \
         client), but for verify's `PRAGMA synchronous = NORMAL`, which Spin's libSQL client \
         refuses without sending it; with Redis each key-value call is one.\n\n\
         | operation | SQL statements | key-value calls |\n|---|---|---|\n",
    );
    let mut count = |operation: &str, run: &dyn Fn()| {
        w.sql.clear_statements();
        w.kv.clear_calls();
        run();
        table.push_str(&format!(
            "| {operation} | {} | {} |\n",
            w.sql.statements().len(),
            w.kv.calls().len()
        ));
    };
    count("verify, valid key", &|| {
        w.verify(&key).unwrap();
    });
    count("verify, unknown / revoked / expired key", &|| {
        let stranger = ApiKey::generate().unwrap();
        let _ = w
            .service()
            .verify(Some(stranger.expose_secret()), &ctx(), NOW);
    });
    count("create a key", &|| {
        w.create("ann", "orders-export");
    });
    count("get a key", &|| {
        w.get(&key.key.id).unwrap();
    });
    count("list keys (any sort; owner, status, date filters)", &|| {
        w.list("sort=last_used_at&created_by=ann");
    });
    count("list keys, name filter of 3+ characters", &|| {
        w.list("name=orders");
    });
    count("audit trail page", &|| {
        w.audit("action=key.used");
    });
    count("delete a key", &|| {
        w.service()
            .delete_key(&user("bob"), &doomed.key.id, NOW)
            .unwrap();
    });
    count("remove a user with one key (webhook)", &|| {
        w.service().remove_user("cy", "msg_1", NOW).unwrap();
    });
    table
}

/// SQLite answering `database is locked` a given number of times for
/// statements containing `pattern`, as while another connection switches
/// the journal or holds the write lock.
struct BusyFor<'a> {
    inner: &'a dyn Sql,
    pattern: &'static str,
    left: std::cell::Cell<usize>,
}

impl Sql for BusyFor<'_> {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        if sql.contains(self.pattern) && self.left.get() > 0 {
            self.left.set(self.left.get() - 1);
            return Err(StoreError::new("sqlite: Error::Io(\"database is locked\")"));
        }
        self.inner.execute(sql, params)
    }
}

#[test]
fn a_statement_the_file_was_too_busy_for_is_run_again_and_gives_up_after_a_few_tries() {
    let w = World::new();
    let busy = BusyFor {
        inner: &w.sql,
        pattern: "INSERT INTO api_keys",
        left: std::cell::Cell::new(crate::retry::MAX_RETRIES as usize),
    };
    let service = KeyService::new(&w.kv, &busy);
    let created = service.create_key(&user("u"), new_key("k"), NOW).unwrap();
    assert!(w.verify(&created).is_ok());

    busy.left.set(crate::retry::MAX_RETRIES as usize + 1);
    assert_err(
        service.create_key(&user("u"), new_key("other"), NOW),
        "storage_unavailable",
    );
    assert_eq!(busy.left.get(), 0, "tried once and once per pause");
    assert!(w.list("name=other").items.is_empty());
}

// ---- User ids match ASCII case-insensitively (schema v9) ----------------------

fn created_by(page: &Page<KeyView>) -> Vec<String> {
    page.items.iter().map(|k| k.created_by.clone()).collect()
}

#[test]
fn user_ids_match_in_any_ascii_case_and_keys_show_them_as_written() {
    let w = World::new();
    let upper = w.create_at("Floris@Example.com", "upper", NOW);
    let lower = w.create_at("floris@example.com", "lower", NOW + 1);
    w.create_at("ann", "ann's", NOW + 2);
    w.create_at("Zed", "zed's", NOW + 3);
    w.create_at("ÄRGER@example.com", "umlaut", NOW + 4);
    assert_eq!(
        w.get(&upper.key.id).unwrap().created_by,
        "Floris@Example.com"
    );
    assert_eq!(
        w.get(&lower.key.id).unwrap().created_by,
        "floris@example.com"
    );

    for spelling in [
        "floris@example.com",
        "FLORIS@EXAMPLE.COM",
        "fLoRiS@eXaMpLe.CoM",
    ] {
        let q = format!("created_by={}", percent(spelling));
        // The total from `key_counts` (owner and status only) and from a count.
        for query in [
            q.clone(),
            format!("{q}&status=active"),
            format!("{q}&name=e"),
        ] {
            let page = w.list(&query);
            assert_eq!(page.total, 2, "{query}");
            assert_eq!(
                created_by(&page),
                ["floris@example.com", "Floris@Example.com"],
                "{query}: newest first, each as written"
            );
        }
        assert_eq!(w.audit(&format!("user={}", percent(spelling))).len(), 2);
    }
    // ASCII only, as the contract says; whole ids only.
    assert_eq!(w.list("created_by=%C3%A4RGER%40example.com").total, 0);
    assert_eq!(w.list("created_by=%C3%84RGER%40EXAMPLE.COM").total, 1);
    assert_eq!(w.list("created_by=floris").total, 0);
    assert!(w.audit("user=ANN").iter().all(|e| e.user == "ann"));

    // Sorting by owner ignores ASCII case too: one user's keys stay together.
    let sorted = |order: &str| {
        let page = w.list(&format!("sort=created_by&order={order}"));
        let mut owners = created_by(&page);
        owners.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        owners
            .into_iter()
            .map(|o| o.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sorted("asc"),
        ["ann", "floris@example.com", "zed", "Ärger@example.com"]
    );
    assert_eq!(
        sorted("desc"),
        ["Ärger@example.com", "zed", "floris@example.com", "ann"]
    );
}

#[test]
fn a_removal_finds_the_users_keys_in_any_spelling_and_a_second_spelling_is_the_same_user() {
    let w = World::new();
    let upper = w.create("Floris@Example.com", "upper");
    let lower = w.create("floris@example.com", "lower");
    let other = w.create("florian@example.com", "other");
    let response = w
        .service()
        .remove_user("floris@example.com", "msg_1", NOW + 10)
        .unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"user_id": "floris@example.com", "revoked_keys": 2})
    );
    for k in [&upper, &lower] {
        assert_err(w.verify(k), "revoked_key");
        assert_eq!(w.get(&k.key.id).unwrap().status, KeyStatus::Revoked);
        // The index entry keeps the key's own spelling of its owner.
        let entry: IndexEntry = serde_json::from_slice(
            &w.kv
                .inner()
                .get(&k.secret.hash().kv_key())
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert!(entry.revoked);
        assert_eq!(entry.owner, k.key.created_by);
    }
    assert!(w.verify(&other).is_ok());
    let revoked: Vec<String> = w
        .audit("action=key.revoked")
        .into_iter()
        .map(|e| e.user)
        .collect();
    assert_eq!(revoked.len(), 2);
    assert!(revoked.contains(&"Floris@Example.com".to_owned()));

    // The same user removed again in another spelling: nothing more.
    let entries = w.count("audit_log");
    let again = w
        .service()
        .remove_user("FLORIS@EXAMPLE.COM", "msg_2", NOW + 20)
        .unwrap();
    assert_eq!(
        (again.user_id.as_str(), again.revoked_keys),
        ("FLORIS@EXAMPLE.COM", 0)
    );
    assert_eq!(w.count("audit_log"), entries);
    assert_eq!(w.count("removed_users"), 1);
    let removed = w.audit("action=user.removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].user, "floris@example.com", "as first removed");
    assert_eq!(removed[0].details["revoked_keys"], 2);
    // Its retry answers as before.
    assert_eq!(
        w.service()
            .remove_user("FLORIS@EXAMPLE.COM", "msg_2", NOW + 30)
            .unwrap(),
        again
    );
}

#[test]
fn a_user_removed_in_one_spelling_cannot_act_in_another() {
    let w = World::new();
    let k = w.create("Floris@Example.com", "k");
    w.service()
        .remove_user("floris@example.com", "msg_1", NOW)
        .unwrap();
    let s = w.service();
    for spelling in ["FLORIS@example.com", "Floris@Example.com"] {
        for acting in [
            ActingUser::named_by_portal(spelling),
            ActingUser::signed_in(spelling),
        ] {
            assert_err(s.create_key(&acting, new_key("new"), NOW), "user_removed");
            assert_err(s.get_key(&acting, &k.key.id, NOW), "user_removed");
            assert_err(
                s.list_keys(&acting, &ListQuery::default(), NOW),
                "user_removed",
            );
            assert_err(s.delete_key(&acting, &k.key.id, NOW), "user_removed");
            assert_err(
                s.list_audit(&acting, &AuditQuery::default()),
                "user_removed",
            );
        }
    }
    assert_eq!(w.count("api_keys"), 1);
    assert!(w.get(&k.key.id).is_ok());
}

#[test]
fn a_create_racing_the_removal_of_its_user_in_another_spelling_inserts_nothing() {
    let w = World::new();
    w.service().migrate().unwrap();
    // The removal commits between the create's `authorize` and its insert.
    let both = Interleave {
        world: &w,
        matches: Box::new(|call| call.contains("INSERT INTO api_keys")),
        remaining: RefCell::new(1),
        hook: RefCell::new(Some(Box::new(|| {
            w.service()
                .remove_user("FLORIS@EXAMPLE.COM", "msg_1", NOW)
                .unwrap();
        }))),
    };
    let result =
        KeyService::new(&both, &both).create_key(&user("floris@example.com"), new_key("k"), NOW);
    assert_err(result, "user_removed");
    assert!(both.hook.borrow().is_none(), "the removal ran");
    assert_eq!(w.count("api_keys"), 0);
    assert!(w.kv.inner().keys().is_empty());
    assert_eq!(w.actions(), ["user.removed"]);
}

// ---- How the actor signed in (schema v9) ----------------------------------------

#[test]
fn management_entries_record_how_the_actor_signed_in() {
    let w = World::new();
    for (acting, auth) in [
        (
            ActingUser::named_by_portal("portal@example.com"),
            "admin_token",
        ),
        (ActingUser::signed_in("sso@example.com"), "oidc"),
    ] {
        let k = w
            .service()
            .create_key(&acting, new_key(&format!("by-{auth}")), NOW)
            .unwrap();
        w.verify(&k).unwrap();
        w.service().delete_key(&acting, &k.key.id, NOW + 1).unwrap();
        let entries = w.audit(&format!("key_id={}", k.key.id));
        let by_action = |action: &str| {
            let found: Vec<&AuditEntry> = entries.iter().filter(|e| e.action == action).collect();
            assert_eq!(found.len(), 1, "{auth}: {action}");
            found[0].clone()
        };
        let created = by_action("key.created");
        assert_eq!(created.user, acting.as_str());
        assert_eq!(created.details, json!({"auth": auth}));
        let deleted = by_action("key.deleted");
        assert_eq!(deleted.user, acting.as_str());
        assert_eq!(deleted.details, json!({"auth": auth}));
        // Verify is no management call: its entry is as before.
        assert!(by_action("key.used").details.get("auth").is_none());
    }
    // Nor is the identity system's removal.
    w.create("leaver", "k");
    w.service().remove_user("leaver", "msg_1", NOW).unwrap();
    for entry in w.audit("user=leaver") {
        let expected = entry.action == "key.created";
        assert_eq!(entry.details.get("auth").is_some(), expected, "{entry:?}");
    }
}

/// A database as keygate at schema 8 left it: keys (one used, one revoked
/// with its owner removed, one deleted), entries of every kind.
fn version_8_world() -> World {
    let w = World::new();
    schema::migrate_to(w.sql.inner(), 8).unwrap();
    let v8 = w.sql.inner();
    for (id, owner) in [
        ("key_oldA000000000000000000", "Floris@Example.com"),
        ("key_oldB000000000000000000", "ann"),
        ("key_oldC000000000000000000", "Leaver@example.com"),
        ("key_oldD000000000000000000", "ann"),
    ] {
        v8.execute(
            "INSERT INTO api_keys (id, name, name_folded, description, key_hash, hint, \
             created_by, created_at, expires_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? \
             WHERE NOT EXISTS (SELECT 1 FROM removed_users WHERE user_id = ?) RETURNING id",
            &[
                SqlValue::text(id),
                SqlValue::text(id),
                SqlValue::text(id),
                SqlValue::Null,
                SqlValue::text(format!("hash-{id}")),
                SqlValue::text("kg_…abcd"),
                SqlValue::text(owner),
                SqlValue::Integer(NOW - 100),
                SqlValue::Null,
                SqlValue::text(owner),
            ],
        )
        .unwrap();
    }
    v8.execute(
        V10_INSERT_KEY_USED,
        &[
            SqlValue::Integer(NOW - 50),
            SqlValue::text("Floris@Example.com"),
            SqlValue::text("key.used"),
            SqlValue::text("key_oldA000000000000000000"),
            SqlValue::text("key_oldA000000000000000000"),
            SqlValue::text(r#"{"method":"GET","path":"/","source_ip":null}"#),
            SqlValue::text("key_oldA000000000000000000"),
        ],
    )
    .unwrap();
    v8.execute(
        "INSERT INTO key_deletions (at, deleted_by, key_id, key_name) \
         SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?) RETURNING id",
        &[
            SqlValue::Integer(NOW - 40),
            SqlValue::text("ann"),
            SqlValue::text("key_oldD000000000000000000"),
            SqlValue::text("key_oldD000000000000000000"),
            SqlValue::text("key_oldD000000000000000000"),
        ],
    )
    .unwrap();
    for statement in [
        "INSERT INTO removed_users (user_id, removed_at, webhook_id) \
         VALUES ('Leaver@example.com', 1795712370, 'msg_old')",
        "UPDATE api_keys SET revoked_at = 1795712370, revoked_reason = 'owner_removed' \
         WHERE id = 'key_oldC000000000000000000'",
        "INSERT INTO audit_log (at, user, action, key_id, key_name, details) VALUES \
         (1795712370, 'Leaver@example.com', 'user.removed', NULL, NULL, \
         '{\"webhook_id\":\"msg_old\",\"revoked_keys\":1}')",
    ] {
        v8.execute(statement, &[]).unwrap();
    }
    w
}

fn dump(sql: &dyn Sql, query: &str) -> Vec<Vec<SqlValue>> {
    sql.execute(query, &[]).unwrap().rows
}

#[test]
fn a_version_8_database_keeps_every_key_and_entry_through_the_upgrade() {
    let w = version_8_world();
    let audit = "SELECT id, at, user, action, key_id, key_name, details FROM audit_log ORDER BY id";
    // The columns a v8 database has (v11 adds the owner: checked below).
    let keys = "SELECT id, name, description, created_by, created_at, last_used_at, expires_at, \
                revoked_at, revoked_reason, hint, name_folded, key_hash FROM api_keys ORDER BY id";
    let others = [
        "SELECT * FROM key_counts ORDER BY created_by",
        "SELECT * FROM removed_users ORDER BY user_id",
        "SELECT id, at, deleted_by, key_id, key_name FROM key_deletions ORDER BY id",
    ];
    let before_audit = dump(w.sql.inner(), audit);
    let before_keys = dump(w.sql.inner(), keys);
    let before_others: Vec<_> = others.iter().map(|q| dump(w.sql.inner(), q)).collect();
    assert_eq!(before_audit.len(), 8);
    assert!(
        before_audit
            .iter()
            .filter(
                |e| matches!(&e[3], SqlValue::Text(a) if a == "key.created" || a == "key.deleted")
            )
            .all(|e| e[6] == SqlValue::text("{}"))
    );

    // The first call of this version migrates.
    assert_eq!(w.list("").total, 3);
    assert_eq!(
        schema::user_version(w.sql.inner()).unwrap(),
        schema::SCHEMA_VERSION
    );
    assert_eq!(
        dump(w.sql.inner(), audit),
        before_audit,
        "old entries unchanged"
    );
    assert_eq!(dump(w.sql.inner(), keys), before_keys);
    for (query, before) in others.iter().zip(&before_others) {
        assert_eq!(&dump(w.sql.inner(), query), before, "{query}");
    }
    assert_eq!(
        dump(
            w.sql.inner(),
            "SELECT count(*) FROM api_keys WHERE created_via IS NOT NULL"
        ),
        [[SqlValue::Integer(0)]]
    );

    // Old keys and entries answer the case-insensitive filters.
    assert_eq!(w.list("created_by=floris%40example.com").total, 1);
    assert_eq!(w.list("created_by=ANN&status=active").total, 1);
    assert_eq!(w.audit("user=FLORIS%40EXAMPLE.COM").len(), 2);
    assert_eq!(
        w.audit("user=leaver%40EXAMPLE.com&action=user.removed")
            .len(),
        1
    );
    // The user removed at v8 cannot act in any spelling, nor be removed twice.
    assert_err(
        w.service()
            .create_key(&user("leaver@example.com"), new_key("again"), NOW),
        "user_removed",
    );
    let again = w
        .service()
        .remove_user("LEAVER@example.com", "msg_new", NOW)
        .unwrap();
    assert_eq!(again.revoked_keys, 0);
    assert_eq!(w.audit("action=user.removed").len(), 1);

    // New entries say how the actor signed in; an old key deleted now too.
    let fresh = w
        .service()
        .create_key(
            &ActingUser::signed_in("FLORIS@example.com"),
            new_key("new"),
            NOW,
        )
        .unwrap();
    w.service()
        .delete_key(&user("ann"), "key_oldB000000000000000000", NOW)
        .unwrap();
    assert_eq!(
        w.audit(&format!("key_id={}", fresh.key.id))[0].details,
        json!({"auth": "oidc"})
    );
    assert_eq!(
        w.audit("key_id=key_oldB000000000000000000&action=key.deleted")[0].details,
        json!({"auth": "admin_token"})
    );
    assert_eq!(w.list("created_by=floris%40example.com").total, 2);
    assert_eq!(dump(w.sql.inner(), audit)[..8], before_audit[..]);
}

/// An instance still at v8 during a rolling upgrade writes no sign-in: its
/// creations and deletions are audited once, with `{}`.
#[test]
fn creations_and_deletions_of_an_instance_still_at_version_8_are_audited_once_as_before() {
    let w = version_8_world();
    w.service().migrate().unwrap();
    let v8 = w.sql.inner();
    v8.execute(
        "INSERT INTO api_keys (id, name, name_folded, description, key_hash, hint, \
         created_by, created_at, expires_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? \
         WHERE NOT EXISTS (SELECT 1 FROM removed_users WHERE user_id = ?) RETURNING id",
        &[
            SqlValue::text("key_oldE000000000000000000"),
            SqlValue::text("e"),
            SqlValue::text("e"),
            SqlValue::Null,
            SqlValue::text("hash-e"),
            SqlValue::text("kg_…abcd"),
            SqlValue::text("ann"),
            SqlValue::Integer(NOW),
            SqlValue::Null,
            SqlValue::text("ann"),
        ],
    )
    .unwrap();
    v8.execute(
        "INSERT INTO key_deletions (at, deleted_by, key_id, key_name) \
         SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?) RETURNING id",
        &[
            SqlValue::Integer(NOW),
            SqlValue::text("ann"),
            SqlValue::text("key_oldE000000000000000000"),
            SqlValue::text("e"),
            SqlValue::text("key_oldE000000000000000000"),
        ],
    )
    .unwrap();
    let entries = w.audit("key_id=key_oldE000000000000000000");
    let summary: Vec<(&str, &serde_json::Value)> = entries
        .iter()
        .map(|e| (e.action.as_str(), &e.details))
        .collect();
    assert_eq!(
        summary,
        [("key.deleted", &json!({})), ("key.created", &json!({}))]
    );
    assert_err(w.get("key_oldE000000000000000000"), "key_not_found");
}
