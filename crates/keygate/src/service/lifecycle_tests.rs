//! The key lifecycle (`PATCH`, roll) at the domain level, against real
//! SQLite and the in-memory key-value store of [`super::tests`], with
//! failures injected at every storage call and other requests interleaved.

use std::cell::RefCell;

use serde_json::json;

use super::tests::{Interleave, NOW, World, assert_err, ctx, new_key, user};
use super::*;
use crate::model::KeyChanges;
use crate::testing::KvOp;

const GRACE: i64 = 300;

fn admin() -> ActingUser {
    user("operator@example.com")
}

fn rename(name: &str) -> KeyChanges {
    KeyChanges {
        name: Some(name.to_owned()),
        ..KeyChanges::default()
    }
}

fn expiring(at: Option<i64>) -> KeyChanges {
    KeyChanges {
        expires_at: Some(at),
        ..KeyChanges::default()
    }
}

impl World {
    fn create_with(&self, owner: &str, new: NewKey) -> CreatedKey {
        self.service().create_key(&user(owner), new, NOW).unwrap()
    }

    fn patch(&self, id: &str, changes: KeyChanges, now: i64) -> Result<KeyView, Error> {
        self.service().update_key(&admin(), id, changes, now)
    }

    fn roll(&self, id: &str, grace: i64, now: i64) -> Result<CreatedKey, Error> {
        self.service().roll_key(&admin(), id, grace, now)
    }

    fn verify_secret(&self, secret: &ApiKey, now: i64) -> Result<Verified, Error> {
        self.service()
            .verify(Some(secret.expose_secret()), &ctx(), now)
    }

    /// The `(key_hash, previous_key_hash, previous_valid_until)` of a row.
    fn hashes(&self, id: &str) -> (String, Option<String>, Option<i64>) {
        let rows = self
            .sql
            .inner()
            .execute(
                "SELECT key_hash, previous_key_hash, previous_valid_until FROM api_keys \
                 WHERE id = ?",
                &[SqlValue::text(id)],
            )
            .unwrap();
        let row = rows.first().unwrap();
        (
            row.text(0).unwrap(),
            row.opt_text(1).unwrap(),
            row.opt_int(2).unwrap(),
        )
    }

    /// Audit entries with this action, oldest first.
    fn entries(&self, action: &str) -> Vec<AuditEntry> {
        let mut entries = self.audit(&format!("action={action}"));
        entries.reverse();
        entries
    }
}

/// The one secret of `secrets` that verifies at `now` (panics if none or
/// several do: a key works with exactly one secret outside a grace).
#[track_caller]
fn the_working_secret<'s>(w: &World, secrets: &[&'s ApiKey], now: i64) -> &'s ApiKey {
    let working: Vec<&ApiKey> = secrets
        .iter()
        .copied()
        .filter(|s| w.verify_secret(s, now).is_ok())
        .collect();
    assert_eq!(
        working.len(),
        1,
        "exactly one secret should verify, {} do: {working:?}",
        working.len()
    );
    working[0]
}

// ---- PATCH -----------------------------------------------------------------

#[test]
fn a_patch_changes_the_key_verify_sees_it_and_the_audit_names_the_fields() {
    let w = World::new();
    let k = w.create_with(
        "floris@example.com",
        NewKey {
            description: Some("Nightly order export".into()),
            expires_at: Some(NOW + 3600),
            ..new_key("orders-sync")
        },
    );
    let id = &k.key.id;
    let patched = w
        .patch(
            id,
            KeyChanges {
                name: Some("orders-export".into()),
                description: Some(Some("Hourly".into())),
                expires_at: None,
            },
            NOW + 10,
        )
        .unwrap();
    assert_eq!(patched.name, "orders-export");
    assert_eq!(patched.description.as_deref(), Some("Hourly"));
    assert_eq!(patched.expires_at, Some(NOW + 3600), "not named: unchanged");
    assert_eq!(patched.hint, k.key.hint, "the secret stays");
    assert_eq!(w.get(id).unwrap(), patched);

    let verified = w.verify_at(&k, NOW + 20).unwrap();
    assert_eq!(verified.key_name, "orders-export");
    assert_eq!(verified.user_id, "floris@example.com");

    let updated = w.entries("key.updated");
    assert_eq!(updated.len(), 1, "{updated:?}");
    let e = &updated[0];
    assert_eq!(e.user, "operator@example.com", "the acting user");
    assert_eq!(e.at, NOW + 10);
    assert_eq!(e.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(e.key_name.as_deref(), Some("orders-export"));
    assert_eq!(
        e.details,
        json!({"fields": ["name", "description"], "auth": "admin_token"})
    );
}

#[test]
fn null_removes_the_description_and_the_expiry() {
    let w = World::new();
    let k = w.create_with(
        "u",
        NewKey {
            description: Some("d".into()),
            expires_at: Some(NOW + 60),
            ..new_key("k")
        },
    );
    let patched = w
        .patch(
            &k.key.id,
            KeyChanges {
                name: None,
                description: Some(None),
                expires_at: Some(None),
            },
            NOW,
        )
        .unwrap();
    assert_eq!((patched.description, patched.expires_at), (None, None));
    // Long after the old expiry the key verifies, and says it never expires.
    let verified = w.verify_at(&k, NOW + 10 * 86_400).unwrap();
    assert_eq!(verified.expires_at, None);
    assert_eq!(
        w.entries("key.updated")[0].details["fields"],
        json!(["description", "expires_at"])
    );
}

#[test]
fn a_patch_that_changes_nothing_writes_nothing() {
    let w = World::new();
    let k = w.create_with(
        "u",
        NewKey {
            description: Some("d".into()),
            expires_at: Some(NOW + 60),
            ..new_key("k")
        },
    );
    let before = w.get(&k.key.id).unwrap();
    for same in [
        KeyChanges::default(),
        rename("k"),
        KeyChanges {
            name: Some("k".into()),
            description: Some(Some("d".into())),
            expires_at: Some(Some(NOW + 60)),
        },
    ] {
        assert_eq!(w.patch(&k.key.id, same, NOW).unwrap(), before);
    }
    assert_eq!(w.count("key_updates"), 0);
    assert!(w.entries("key.updated").is_empty());
    // Fields are compared with the key as it is: only the one that differs is named.
    w.patch(
        &k.key.id,
        KeyChanges {
            name: Some("k".into()),
            description: Some(Some("other".into())),
            expires_at: Some(Some(NOW + 60)),
        },
        NOW,
    )
    .unwrap();
    assert_eq!(
        w.entries("key.updated")[0].details["fields"],
        json!(["description"])
    );
    // Another case of the same name is a change.
    w.patch(&k.key.id, rename("K"), NOW).unwrap();
    assert_eq!(w.entries("key.updated").len(), 2);
}

#[test]
fn a_shortened_expiry_refuses_the_key_from_then_on() {
    let w = World::new();
    let k = w.create("u", "k");
    w.patch(&k.key.id, expiring(Some(NOW + 10)), NOW).unwrap();
    assert_eq!(w.verify_at(&k, NOW + 9).unwrap().expires_at, Some(NOW + 10));
    assert_err(w.verify_at(&k, NOW + 10), "expired_key");
    assert_eq!(w.get(&k.key.id).unwrap().status, KeyStatus::Active);
}

#[test]
fn an_expired_key_can_be_extended_and_verifies_again() {
    let w = World::new();
    let k = w.create_with(
        "u",
        NewKey {
            expires_at: Some(NOW + 100),
            ..new_key("k")
        },
    );
    let later = NOW + 200;
    assert_err(w.verify_at(&k, later), "expired_key");
    let patched = w
        .patch(&k.key.id, expiring(Some(later + 100)), later)
        .unwrap();
    assert_eq!(patched.status, KeyStatus::Active);
    assert_eq!(
        w.verify_at(&k, later).unwrap().expires_at,
        Some(later + 100)
    );
    assert_err(w.verify_at(&k, later + 100), "expired_key");
}

#[test]
fn a_patch_may_not_take_another_active_keys_name() {
    let w = World::new();
    w.create("u1", "Orders Sync");
    let k = w.create("u2", "k");
    for taken in ["orders sync", "ORDERS SYNC", "Orders Sync"] {
        assert_err(w.patch(&k.key.id, rename(taken), NOW), "name_taken");
    }
    assert_eq!(w.get(&k.key.id).unwrap().name, "k");
    assert!(w.entries("key.updated").is_empty());
    // A revoked key's name is free.
    w.service().remove_user("u1", "msg_1", NOW).unwrap();
    assert_eq!(
        w.patch(&k.key.id, rename("orders sync"), NOW).unwrap().name,
        "orders sync"
    );
}

#[test]
fn a_revoked_key_cannot_be_patched_or_rolled() {
    let w = World::new();
    let k = w.create("leaver", "k");
    w.service().remove_user("leaver", "msg_1", NOW).unwrap();
    let before = (w.get(&k.key.id).unwrap(), w.count("audit_log"));
    assert_err(w.patch(&k.key.id, rename("new"), NOW), "key_revoked");
    assert_err(
        w.patch(&k.key.id, KeyChanges::default(), NOW),
        "key_revoked",
    );
    assert_err(w.roll(&k.key.id, 0, NOW), "key_revoked");
    assert_err(w.roll(&k.key.id, GRACE, NOW), "key_revoked");
    assert_eq!((w.get(&k.key.id).unwrap(), w.count("audit_log")), before);
    assert_err(w.verify(&k), "revoked_key");
}

#[test]
fn unknown_keys_are_not_found() {
    let w = World::new();
    let k = w.create("u", "k");
    w.service().delete_key(&admin(), &k.key.id, NOW).unwrap();
    for id in [k.key.id.as_str(), "key_0000000000000000000000", "nope"] {
        assert_err(w.patch(id, rename("x"), NOW), "key_not_found");
        assert_err(w.roll(id, 0, NOW), "key_not_found");
    }
}

#[test]
fn a_removed_user_cannot_patch_or_roll() {
    let w = World::new();
    let k = w.create("u", "k");
    w.service().remove_user("gone", "msg_1", NOW).unwrap();
    let s = w.service();
    assert_err(
        s.update_key(&user("GONE"), &k.key.id, rename("x"), NOW),
        "user_removed",
    );
    assert_err(s.roll_key(&user("gone"), &k.key.id, 0, NOW), "user_removed");
    assert_eq!(w.get(&k.key.id).unwrap(), k.key);
}

#[test]
fn a_patch_racing_its_own_retry_is_audited_once() {
    let w = World::new();
    let k = w.create("u", "k");
    let changes = || KeyChanges {
        name: Some("renamed".into()),
        description: Some(Some("d".into())),
        expires_at: None,
    };
    // The retry commits between the first attempt's read and its write.
    let both = Interleave {
        world: &w,
        matches: Box::new(|call| call.starts_with("INSERT INTO key_updates")),
        remaining: RefCell::new(1),
        hook: RefCell::new(Some(Box::new(|| {
            w.patch(&k.key.id, changes(), NOW).unwrap();
        }))),
    };
    let first = KeyService::new(&both, &both)
        .update_key(&admin(), &k.key.id, changes(), NOW)
        .unwrap();
    assert!(both.hook.borrow().is_none(), "the retry ran");
    assert_eq!(first, w.get(&k.key.id).unwrap());
    assert_eq!(first.name, "renamed");
    let updated = w.entries("key.updated");
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated[0].details["fields"], json!(["name", "description"]));
}

#[test]
fn a_patch_names_only_what_it_changed_when_it_was_written() {
    let w = World::new();
    let k = w.create("u", "k");
    // Another patch sets the same name first; this one changes the
    // description as well.
    let both = Interleave {
        world: &w,
        matches: Box::new(|call| call.starts_with("INSERT INTO key_updates")),
        remaining: RefCell::new(1),
        hook: RefCell::new(Some(Box::new(|| {
            w.patch(&k.key.id, rename("renamed"), NOW).unwrap();
        }))),
    };
    let changes = KeyChanges {
        name: Some("renamed".into()),
        description: Some(Some("d".into())),
        expires_at: None,
    };
    KeyService::new(&both, &both)
        .update_key(&admin(), &k.key.id, changes, NOW)
        .unwrap();
    let fields: Vec<_> = w
        .entries("key.updated")
        .into_iter()
        .map(|e| e.details["fields"].clone())
        .collect();
    assert_eq!(fields, [json!(["name"]), json!(["description"])]);
}

/// A patch whose 1st, 2nd, … storage call fails (or whose SQL statement
/// commits and then reports an error): the retry completes it, with one
/// `key.updated`; verify sees the change.
#[test]
fn a_patch_failing_at_any_storage_call_is_completed_by_its_retry() {
    let changes = || KeyChanges {
        name: Some("renamed".into()),
        description: Some(Some("d".into())),
        expires_at: Some(None),
    };
    let mut failed = 0;
    for op in ["sql", "kv set"] {
        for nth in 1.. {
            let w = World::new();
            let k = w.create_with(
                "u",
                NewKey {
                    expires_at: Some(NOW + 100),
                    ..new_key("k")
                },
            );
            w.sql.clear_statements();
            w.kv.clear_calls();
            match op {
                "sql" => w.sql.fail_nth_matching("", nth),
                _ => w.kv.fail_nth(KvOp::Set, nth),
            }
            let first = w.patch(&k.key.id, changes(), NOW + 50);
            let calls = match op {
                "sql" => w.sql.statements().len(),
                _ => w.kv.calls().iter().filter(|(o, _)| *o == KvOp::Set).count(),
            };
            if calls < nth {
                first.unwrap();
                break;
            }
            failed += 1;
            let at = format!("{op} call {nth}");
            assert_err(first, "storage_unavailable");
            // Meanwhile the key still verifies (with either name).
            w.verify_at(&k, NOW + 50).expect(&at);
            let retried = w.patch(&k.key.id, changes(), NOW + 60).expect(&at);
            assert_eq!(
                (retried.name.as_str(), retried.description.as_deref()),
                ("renamed", Some("d")),
                "{at}"
            );
            assert_eq!(retried.expires_at, None, "{at}");
            let updated = w.entries("key.updated");
            assert_eq!(updated.len(), 1, "{at}: {updated:?}");
            assert_eq!(
                updated[0].details["fields"],
                json!(["name", "description", "expires_at"]),
                "{at}"
            );
            let verified = w.verify_at(&k, NOW + 1000).expect(&at);
            assert_eq!(
                (verified.key_name.as_str(), verified.expires_at),
                ("renamed", None),
                "{at}"
            );
        }
    }
    assert!(failed >= 5, "{failed} failure points?");
}

// ---- Roll ------------------------------------------------------------------

#[test]
fn a_roll_gives_the_same_key_a_new_secret_that_verifies_at_once() {
    let w = World::new();
    let k = w.create_with(
        "floris@example.com",
        NewKey {
            description: Some("d".into()),
            expires_at: Some(NOW + 3600),
            ..new_key("orders-sync")
        },
    );
    w.verify(&k).unwrap();
    let rolled = w.roll(&k.key.id, 0, NOW).unwrap();
    assert_ne!(rolled.secret.expose_secret(), k.secret.expose_secret());
    assert_eq!(rolled.key.hint, rolled.secret.hint());
    assert_ne!(rolled.key.hint, k.key.hint);
    let mut same = rolled.key.clone();
    same.hint = k.key.hint.clone();
    same.last_used_at = None;
    assert_eq!(same, k.key, "same id, name, owner, expiry, …");
    assert_eq!(w.get(&k.key.id).unwrap(), rolled.key);

    let verified = w.verify_secret(&rolled.secret, NOW).unwrap();
    assert_eq!(
        (
            verified.key_id.as_str(),
            verified.user_id.as_str(),
            verified.expires_at
        ),
        (k.key.id.as_str(), "floris@example.com", Some(NOW + 3600))
    );
    // No grace: the old secret is unknown at once.
    assert_err(w.verify(&k), "unknown_key");

    let rolled_entries = w.entries("key.rolled");
    assert_eq!(rolled_entries.len(), 1);
    let e = &rolled_entries[0];
    assert_eq!(
        (
            e.user.as_str(),
            e.at,
            e.key_id.as_deref(),
            e.key_name.as_deref()
        ),
        (
            "operator@example.com",
            NOW,
            Some(k.key.id.as_str()),
            Some("orders-sync")
        )
    );
    assert_eq!(
        e.details,
        json!({"previous_secret_expires_at": "2026-11-26T17:00:00Z", "auth": "admin_token"})
    );
    let secret = rolled.secret.expose_secret();
    let shown = serde_json::to_string(&w.audit("")).unwrap();
    assert!(!shown.contains(&secret[3..35]), "no secret in the trail");
}

#[test]
fn the_old_secret_verifies_for_its_grace_and_both_are_the_owners_uses() {
    let w = World::new();
    let k = w.create("floris@example.com", "k");
    let rolled = w.roll(&k.key.id, GRACE, NOW).unwrap();
    assert_eq!(
        w.entries("key.rolled")[0].details["previous_secret_expires_at"],
        "2026-11-26T17:05:00Z"
    );
    let old = w.verify_at(&k, NOW + GRACE - 1).unwrap();
    let new = w.verify_secret(&rolled.secret, NOW + GRACE - 1).unwrap();
    assert_eq!(old, new, "the same key, as the same owner");
    assert_err(w.verify_at(&k, NOW + GRACE), "unknown_key");
    assert_err(w.verify_at(&k, NOW + GRACE + 1), "unknown_key");
    w.verify_secret(&rolled.secret, NOW + GRACE + 1).unwrap();

    let used = w.entries("key.used");
    assert_eq!(used.len(), 3, "every 200, and nothing else: {used:?}");
    for e in &used {
        assert_eq!(e.user, "floris@example.com");
        assert_eq!(e.key_id.as_deref(), Some(k.key.id.as_str()));
    }
    assert_eq!(
        w.get(&k.key.id).unwrap().last_used_at,
        Some(NOW + GRACE + 1)
    );
}

#[test]
fn a_second_roll_stops_the_first_secret_even_within_its_grace() {
    let w = World::new();
    let k = w.create("u", "k");
    let first = w.roll(&k.key.id, GRACE, NOW).unwrap();
    let second = w.roll(&k.key.id, GRACE, NOW + 10).unwrap();
    assert_err(w.verify_at(&k, NOW + 11), "unknown_key");
    w.verify_secret(&first.secret, NOW + 11).unwrap();
    w.verify_secret(&second.secret, NOW + 11).unwrap();
    // A third roll without grace leaves only its own secret.
    let third = w.roll(&k.key.id, 0, NOW + 20).unwrap();
    let all = [&k.secret, &first.secret, &second.secret, &third.secret];
    assert_eq!(
        the_working_secret(&w, &all, NOW + 20).expose_secret(),
        third.secret.expose_secret()
    );
    let (current, previous, _) = w.hashes(&k.key.id);
    assert_eq!(current, third.secret.hash().to_hex());
    assert_eq!(previous, Some(second.secret.hash().to_hex()));
    // The entries of secrets that can never verify again are gone.
    assert_eq!(w.kv.inner().keys(), [third.secret.hash().kv_key()]);
    assert_eq!(w.entries("key.rolled").len(), 3);
}

#[test]
fn deleting_or_revoking_a_rolled_key_stops_both_secrets() {
    let w = World::new();
    let k = w.create("leaver", "k");
    let rolled = w.roll(&k.key.id, GRACE, NOW).unwrap();
    w.service().remove_user("leaver", "msg_1", NOW).unwrap();
    assert_err(w.verify(&k), "revoked_key");
    assert_err(w.verify_secret(&rolled.secret, NOW), "revoked_key");

    let k = w.create("u", "k2");
    let rolled = w.roll(&k.key.id, GRACE, NOW).unwrap();
    w.service().delete_key(&admin(), &k.key.id, NOW).unwrap();
    assert_err(w.verify(&k), "unknown_key");
    assert_err(w.verify_secret(&rolled.secret, NOW), "unknown_key");
    for secret in [&k.secret, &rolled.secret] {
        assert!(w.kv.inner().get(&secret.hash().kv_key()).unwrap().is_none());
    }
}

#[test]
fn an_expired_key_rolls_with_its_expiry_and_can_be_extended_after() {
    let w = World::new();
    let k = w.create_with(
        "u",
        NewKey {
            expires_at: Some(NOW + 100),
            ..new_key("k")
        },
    );
    let rolled = w.roll(&k.key.id, 0, NOW + 200).unwrap();
    assert_eq!(rolled.key.status, KeyStatus::Expired);
    assert_err(w.verify_secret(&rolled.secret, NOW + 200), "expired_key");
    w.patch(&k.key.id, expiring(None), NOW + 200).unwrap();
    assert_eq!(
        w.verify_secret(&rolled.secret, NOW + 200).unwrap().user_id,
        "u"
    );
}

// ---- Roll: failures --------------------------------------------------------

/// After a roll that answered `answer`, the key works with exactly one
/// secret: the new one if it was answered, else the old one (grace 0).
#[track_caller]
fn assert_one_secret_works(
    w: &World,
    old: &CreatedKey,
    answer: &Result<CreatedKey, Error>,
    at: &str,
) {
    match answer {
        Ok(rolled) => {
            w.verify_secret(&rolled.secret, NOW)
                .unwrap_or_else(|e| panic!("{at}: the answered secret is refused: {e}"));
            assert_err(w.verify(old), "unknown_key");
        }
        Err(e) => {
            assert_eq!(e.code(), "storage_unavailable", "{at}");
            w.verify(old)
                .unwrap_or_else(|e| panic!("{at}: a 503 roll left the old secret dead: {e}"));
            let (current, _, _) = w.hashes(&old.key.id);
            assert_eq!(
                current,
                old.secret.hash().to_hex(),
                "{at}: rolled after all"
            );
        }
    }
}

/// A roll (no grace) whose 1st, 2nd, … SQL statement, KV write or KV delete
/// fails: a 503 leaves the old secret working (the roll did not happen); a
/// `201` means the answered secret works and the old one does not. Either
/// way a retry leaves the key working with the retry's secret only.
#[test]
fn a_roll_failing_at_any_storage_call_leaves_exactly_one_working_secret() {
    let mut failed = 0;
    for op in [Some(KvOp::Set), Some(KvOp::Delete), None] {
        for nth in 1.. {
            let w = World::new();
            let k = w.create("u", "k");
            w.sql.clear_statements();
            w.kv.clear_calls();
            match op {
                Some(op) => w.kv.fail_nth(op, nth),
                None => w.sql.fail_nth_matching("", nth),
            }
            let answer = w.roll(&k.key.id, 0, NOW);
            let calls = match op {
                Some(op) => w.kv.calls().iter().filter(|(o, _)| *o == op).count(),
                None => w.sql.statements().len(),
            };
            if calls < nth {
                answer.unwrap();
                break;
            }
            failed += 1;
            let at = format!("{op:?} call {nth} failing");
            assert_one_secret_works(&w, &k, &answer, &at);
            let mut secrets = vec![&k.secret];
            if let Ok(rolled) = &answer {
                secrets.push(&rolled.secret);
            }
            let retry = w.roll(&k.key.id, 0, NOW + 1).expect(&at);
            secrets.push(&retry.secret);
            let working = the_working_secret(&w, &secrets, NOW + 1);
            assert_eq!(
                working.expose_secret(),
                retry.secret.expose_secret(),
                "{at}"
            );
            let rolled = w.entries("key.rolled").len();
            assert_eq!(rolled, 1 + usize::from(answer.is_ok()), "{at}");
        }
    }
    assert!(failed >= 5, "{failed} failure points?");
}

#[test]
fn a_kv_write_failing_after_the_rolls_statement_never_extends_the_old_secret() {
    // With a grace, the old secret's entry should get its end; the write fails.
    let w = World::new();
    let k = w.create("u", "k");
    w.kv.fail_nth(KvOp::Set, 2);
    let rolled = w.roll(&k.key.id, GRACE, NOW).unwrap();
    w.verify_at(&k, NOW + GRACE - 1).unwrap();
    assert_err(w.verify_at(&k, NOW + GRACE), "unknown_key");
    assert_err(w.verify_at(&k, NOW + 7 * 86_400), "unknown_key");
    w.verify_secret(&rolled.secret, NOW + GRACE).unwrap();

    // Without a grace, the old secret's entry should go; the delete fails.
    let k = w.create("u", "k2");
    w.kv.fail_nth(KvOp::Delete, 1);
    let rolled = w.roll(&k.key.id, 0, NOW).unwrap();
    assert!(
        w.kv.inner()
            .get(&k.secret.hash().kv_key())
            .unwrap()
            .is_some(),
        "the entry is still there"
    );
    assert_err(w.verify(&k), "unknown_key");
    w.verify_secret(&rolled.secret, NOW).unwrap();

    // Nor does a lost delete of the secret before the previous one bring it back.
    let k = w.create("u", "k3");
    let first = w.roll(&k.key.id, GRACE, NOW).unwrap();
    w.kv.fail_nth(KvOp::Delete, 1);
    w.roll(&k.key.id, GRACE, NOW + 1).unwrap();
    assert_err(w.verify_at(&k, NOW + 2), "unknown_key");
    w.verify_secret(&first.secret, NOW + 2).unwrap();
    assert_eq!(w.entries("key.used").len(), 4, "each 200, and only those");
}

/// A [`Sql`] whose statements containing `pattern` commit and then report
/// an error, as a libSQL server whose answer is lost on the way back.
struct CommitsThenFails<'a> {
    inner: &'a dyn Sql,
    pattern: &'static str,
}

impl Sql for CommitsThenFails<'_> {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        let rows = self.inner.execute(sql, params)?;
        if sql.contains(self.pattern) {
            return Err(StoreError::new("injected: the answer was lost"));
        }
        Ok(rows)
    }
}

#[test]
fn a_roll_whose_statement_committed_but_whose_answer_was_lost_answers_the_new_secret() {
    let w = World::new();
    let k = w.create("u", "k");
    let lossy = CommitsThenFails {
        inner: &w.sql,
        pattern: "INSERT INTO key_rolls",
    };
    let answer = KeyService::new(&w.kv, &lossy).roll_key(&admin(), &k.key.id, 0, NOW);
    assert_one_secret_works(&w, &k, &answer, "the roll's answer lost");
}

// ---- Roll: races -----------------------------------------------------------

#[test]
fn of_two_rolls_at_once_one_wins_and_the_losers_secret_never_verifies() {
    for grace in [0, GRACE] {
        let w = World::new();
        let k = w.create("u", "k");
        let winner = RefCell::new(None);
        let both = Interleave {
            world: &w,
            matches: Box::new(|call| call.contains("INSERT INTO key_rolls")),
            remaining: RefCell::new(1),
            hook: RefCell::new(Some(Box::new(|| {
                *winner.borrow_mut() = Some(w.roll(&k.key.id, grace, NOW).unwrap());
            }))),
        };
        let loser = KeyService::new(&both, &both).roll_key(&admin(), &k.key.id, grace, NOW);
        assert_err(loser, "roll_conflict");
        let winner = winner.borrow_mut().take().expect("the other roll ran");
        let (current, previous, _) = w.hashes(&k.key.id);
        assert_eq!(current, winner.secret.hash().to_hex());
        assert_eq!(previous, Some(k.secret.hash().to_hex()));
        // The loser's entry is gone, so the index holds only the two secrets.
        let mut expected = vec![winner.secret.hash().kv_key()];
        if grace > 0 {
            expected.push(k.secret.hash().kv_key());
        }
        expected.sort();
        assert_eq!(w.kv.inner().keys(), expected, "grace {grace}");
        w.verify_secret(&winner.secret, NOW).unwrap();
        assert_eq!(w.verify(&k).is_ok(), grace > 0, "grace {grace}");
        assert_eq!(w.entries("key.rolled").len(), 1);
    }
}

#[test]
fn a_roll_committing_while_a_verify_of_the_old_secret_runs_refuses_it() {
    // The roll (no grace) commits after verify read the old secret's entry,
    // just before verify records the use.
    let w = World::new();
    let k = w.create("u", "k");
    let rolled = RefCell::new(None);
    let both = Interleave {
        world: &w,
        matches: Box::new(|call| call.contains("'key.used'")),
        remaining: RefCell::new(1),
        hook: RefCell::new(Some(Box::new(|| {
            *rolled.borrow_mut() = Some(w.roll(&k.key.id, 0, NOW).unwrap());
        }))),
    };
    let verified =
        KeyService::new(&both, &both).verify(Some(k.secret.expose_secret()), &ctx(), NOW);
    assert_err(verified, "unknown_key");
    assert!(w.entries("key.used").is_empty(), "no use recorded");
    let rolled = rolled.borrow_mut().take().unwrap();
    w.verify_secret(&rolled.secret, NOW).unwrap();
}

#[test]
fn a_roll_racing_a_patch_of_the_expiry_keeps_the_patched_expiry() {
    // The key would expire at NOW + 100; a patch that removes the expiry
    // commits between the roll's read and its statement.
    let w = World::new();
    let k = w.create_with(
        "u",
        NewKey {
            expires_at: Some(NOW + 100),
            ..new_key("k")
        },
    );
    let both = Interleave {
        world: &w,
        matches: Box::new(|call| call.contains("INSERT INTO key_rolls")),
        remaining: RefCell::new(1),
        hook: RefCell::new(Some(Box::new(|| {
            w.patch(&k.key.id, expiring(None), NOW).unwrap();
        }))),
    };
    let rolled = KeyService::new(&both, &both)
        .roll_key(&admin(), &k.key.id, 0, NOW)
        .unwrap();
    assert_eq!(
        rolled.key.expires_at, None,
        "the answer shows the key as it is"
    );
    let verified = w.verify_secret(&rolled.secret, NOW + 1000).unwrap();
    assert_eq!(verified.expires_at, None);
}

#[test]
fn a_roll_racing_a_removal_of_the_owner_leaves_no_secret_verifying() {
    for point in ["INSERT INTO key_rolls", "kv set"] {
        let w = World::new();
        let k = w.create("leaver", "k");
        let both = Interleave {
            world: &w,
            matches: Box::new(move |call| call.contains(point)),
            remaining: RefCell::new(1),
            hook: RefCell::new(Some(Box::new(|| {
                w.service().remove_user("leaver", "msg_1", NOW).unwrap();
            }))),
        };
        let answer = KeyService::new(&both, &both).roll_key(&admin(), &k.key.id, GRACE, NOW);
        assert_err(answer, "key_revoked");
        assert_err(w.verify(&k), "revoked_key");
        assert_eq!(w.kv.inner().keys(), [k.secret.hash().kv_key()], "{point}");
    }
}
