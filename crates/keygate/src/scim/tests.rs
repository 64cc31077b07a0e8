use serde_json::{Value, json};

use super::*;
use crate::model::{ActingUser, NewKey, VerifyContext};
use crate::service::KeyService;
use crate::testing::{FailingSql, MemoryKeyValue, SqliteSql};
use crate::validate::parse_audit_query;
use crate::{Error, Sql};

const NOW: i64 = 1_795_712_400;
const BASE: &str = "https://keygate.example.com/scim/v2";
const TOKEN: &str = "scim-token-0123456789abcdef";

struct Fixture {
    kv: MemoryKeyValue,
    sql: FailingSql<SqliteSql>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            kv: MemoryKeyValue::new(),
            sql: FailingSql::new(SqliteSql::new()),
        }
    }

    fn service(&self) -> KeyService<'_> {
        KeyService::new(&self.kv, &self.sql)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value, Response) {
        self.call_with(method, path, "", body, None)
    }

    fn call_with(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (u16, Value, Response) {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = Request {
            method,
            path,
            query,
            content_type: Some("application/scim+json"),
            if_match,
            if_none_match: None,
            body: &bytes,
            base: BASE,
        };
        let response = handle(&self.kv, &self.sql, &req, NOW);
        let json = response
            .body
            .as_ref()
            .map(|b| serde_json::from_slice(b).unwrap())
            .unwrap_or(Value::Null);
        (response.status, json, response)
    }

    fn create_user(&self, user_name: &str) -> String {
        let (status, body, _) = self.call(
            "POST",
            "/Users",
            Some(json!({
                "schemas": [discovery::USER_URN],
                "userName": user_name,
                "active": true,
                "name": {"givenName": "Floris", "familyName": "Example"},
                "emails": [{"value": user_name, "type": "work", "primary": true}],
            })),
        );
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    fn key(&self, user: &str, name: &str) -> Result<String, Error> {
        self.service()
            .create_key(
                &ActingUser::named_by_portal(user),
                NewKey {
                    name: name.into(),
                    description: None,
                    expires_at: None,
                    owner: None,
                },
                NOW,
            )
            .map(|k| k.secret.expose_secret().to_owned())
    }

    fn verifies(&self, secret: &str) -> Result<(), Error> {
        self.service()
            .verify(Some(secret), &VerifyContext::default(), NOW)
            .map(drop)
    }

    fn audit_count(&self, action: &str) -> i64 {
        self.sql
            .execute(
                "SELECT count(*) FROM audit_log WHERE action = ?",
                &[crate::SqlValue::text(action)],
            )
            .unwrap()
            .scalar_int()
            .unwrap()
    }

    fn can_act(&self, user: &str) -> bool {
        self.service()
            .list_audit(
                &ActingUser::named_by_portal(user),
                &parse_audit_query("").unwrap(),
            )
            .is_ok()
    }
}

fn entra_deactivation() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
}

fn activation() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "replace", "value": {"active": true}}]})
}

#[test]
fn the_token_is_compared_whole_and_an_unset_one_turns_scim_off() {
    for configured in [None, Some(""), Some("   "), Some("too-short")] {
        assert_eq!(
            ScimToken::from_variable(configured).unwrap_err().status,
            404
        );
    }
    let token = ScimToken::from_variable(Some(TOKEN)).unwrap();
    assert!(!format!("{token:?}").contains("0123"));
    assert!(token.check(Some(&format!("Bearer {TOKEN}"))).is_ok());
    assert!(token.check(Some(&format!("bearer  {TOKEN} "))).is_ok());
    for wrong in [
        None,
        Some(TOKEN),
        Some("Bearer "),
        Some("Bearer scim-token-0123456789abcde"),
        Some("Basic c2NpbQ=="),
    ] {
        let e = token.check(wrong).unwrap_err();
        assert_eq!(e.status, 401);
        assert_eq!(e.to_json()["schemas"][0], error::ERROR_URN);
        assert_eq!(e.to_json()["status"], "401");
    }
}

#[test]
fn filters_the_identity_providers_send_are_read() {
    use filter::{ListFilter, parse_list_filter};
    assert_eq!(
        parse_list_filter(r#"userName eq "Floris@Example.com""#).unwrap(),
        ListFilter::UserName("Floris@Example.com".into())
    );
    assert_eq!(
        parse_list_filter(r#"username EQ "a \"quoted\" name""#).unwrap(),
        ListFilter::UserName("a \"quoted\" name".into())
    );
    assert_eq!(
        parse_list_filter(r#"externalId eq "00u1""#).unwrap(),
        ListFilter::ExternalId("00u1".into())
    );
    assert_eq!(
        parse_list_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#).unwrap(),
        ListFilter::UserName("x".into())
    );
    for bad in [
        "userName",
        r#"userName eq"#,
        r#"userName gt "a""#,
        r#"displayName eq "a""#,
        r#"userName eq "a" or userName eq "b""#,
        r#"(userName eq "a")"#,
        r#"userName eq "unterminated"#,
    ] {
        let e = parse_list_filter(bad).unwrap_err();
        assert_eq!(
            (e.status, e.scim_type),
            (400, Some("invalidFilter")),
            "{bad}"
        );
    }
}

#[test]
fn patch_handles_what_entra_and_okta_send() {
    let stored = check_user(&json!({
        "userName": "floris@example.com",
        "active": true,
        "emails": [{"value": "floris@example.com", "type": "work", "primary": true}],
        "name": {"givenName": "Floris"},
    }))
    .unwrap();
    let ops = patch::parse(&json!({
        "schemas": [discovery::PATCH_URN],
        "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "f@home.example"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "floris@work.example"},
            {"op": "Replace", "value": {"name.familyName": "Example", "displayName": "Floris E."}},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Ops"},
            {"op": "remove", "path": "name.givenName"},
        ]
    }))
    .unwrap();
    let out = check_user(&Value::Object(patch::apply(&stored, &ops).unwrap())).unwrap();
    assert_eq!(out["active"], false);
    assert_eq!(
        out["emails"],
        json!([{"value": "floris@work.example", "type": "work", "primary": true},
               {"type": "home", "value": "f@home.example"}])
    );
    assert_eq!(out["name"], json!({"familyName": "Example"}));
    assert_eq!(out["displayName"], "Floris E.");
    assert_eq!(out[discovery::ENTERPRISE_URN], json!({"department": "Ops"}));

    for (body, scim_type) in [
        (json!({"Operations": []}), "invalidValue"),
        (
            json!({"Operations": [{"op": "move", "path": "a"}]}),
            "invalidValue",
        ),
        (json!({"Operations": [{"op": "remove"}]}), "noTarget"),
        (
            json!({"Operations": [{"op": "add", "value": 1}]}),
            "invalidValue",
        ),
        (
            json!({"schemas": ["x"], "Operations": [{"op": "remove", "path": "a"}]}),
            "invalidValue",
        ),
    ] {
        let e = patch::parse(&body).unwrap_err();
        assert_eq!(e.scim_type, Some(scim_type), "{body}");
    }
    for (path, scim_type) in [
        ("id", "mutability"),
        ("meta.created", "mutability"),
        ("emails[type eq \"home\"]", "noTarget"),
        ("emails.value", "invalidPath"),
        ("bad path", "invalidPath"),
    ] {
        let ops = patch::parse(
            &json!({"Operations": [{"op": "replace", "path": path, "value": {"value": "x"}}]}),
        )
        .unwrap();
        let e = patch::apply(&stored, &ops).unwrap_err();
        assert_eq!(e.scim_type, Some(scim_type), "{path}");
    }
}

#[test]
fn users_are_created_found_listed_and_taken_names_are_refused() {
    let f = Fixture::new();
    let id = f.create_user("Floris@Example.com");
    let (status, user, response) = f.call("GET", &format!("/Users/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(user["userName"], "Floris@Example.com");
    assert_eq!(user["meta"]["version"], "W/\"1\"");
    assert_eq!(user["meta"]["location"], format!("{BASE}/Users/{id}"));
    assert!(response.headers.contains(&("etag", "W/\"1\"".into())));

    let (status, body, _) = f.call(
        "POST",
        "/Users",
        Some(json!({"userName": "floris@example.COM"})),
    );
    assert_eq!(
        (status, body["scimType"].as_str()),
        (409, Some("uniqueness"))
    );

    let (status, list, _) = f.call_with(
        "GET",
        "/Users",
        "filter=userName+eq+%22FLORIS%40example.com%22",
        None,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], id.as_str());
    let (_, none, _) = f.call_with("GET", "/Users", "filter=userName eq \"nobody\"", None, None);
    assert_eq!(none["totalResults"], 0);
    assert_eq!(none["Resources"], json!([]));
}

#[test]
fn deactivation_removes_reactivation_readmits_and_a_second_removal_revokes_the_new_keys() {
    let f = Fixture::new();
    let user = "floris@example.com";
    let id = f.create_user(user);
    let old = f.key(user, "old").unwrap();
    f.verifies(&old).unwrap();

    let (status, body, _) = f.call("PATCH", &format!("/Users/{id}"), Some(entra_deactivation()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], false);
    assert!(matches!(f.verifies(&old), Err(Error::RevokedKey)));
    assert!(!f.can_act(user));
    // Again: the same answer, nothing more written.
    let statements_before = f.audit_count("key.revoked");
    let (status, again, _) = f.call("PATCH", &format!("/Users/{id}"), Some(entra_deactivation()));
    assert_eq!((status, &again), (200, &body));
    assert_eq!(f.audit_count("key.revoked"), statements_before);

    let (status, body, _) = f.call("PATCH", &format!("/Users/{id}"), Some(activation()));
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert!(f.can_act("FLORIS@example.com"));
    assert!(
        matches!(f.verifies(&old), Err(Error::RevokedKey)),
        "old keys stay revoked"
    );
    assert_eq!(f.audit_count("user.reactivated"), 1);
    let new = f.key(user, "new").unwrap();
    f.verifies(&new).unwrap();

    // Removed again, by DELETE this time: the key made in between is revoked too.
    let (status, _, _) = f.call("DELETE", &format!("/Users/{id}"), None);
    assert_eq!(status, 204);
    assert!(matches!(f.verifies(&new), Err(Error::RevokedKey)));
    assert!(!f.can_act(user));
    assert_eq!(
        f.audit_count("user.removed"),
        1,
        "one user.removed per user, ever"
    );
    assert_eq!(f.audit_count("key.revoked"), 2);
    assert_eq!(f.call("GET", &format!("/Users/{id}"), None).0, 404);

    // Provisioned anew after the DELETE: readmitted.
    f.create_user(user);
    assert!(f.can_act(user));
    assert_eq!(f.audit_count("user.reactivated"), 2);
}

#[test]
fn a_removal_by_another_channel_is_not_undone_by_an_update() {
    let f = Fixture::new();
    let user = "floris@example.com";
    let id = f.create_user(user);
    f.service().remove_user(user, "msg_1", NOW).unwrap();
    let (status, _, _) = f.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({"Operations": [{"op": "replace", "path": "displayName", "value": "F"}]})),
    );
    assert_eq!(status, 200);
    assert!(!f.can_act(user));
    // A new resource for the same name (after deleting this one) neither.
    assert_eq!(f.call("DELETE", &format!("/Users/{id}"), None).0, 204);
    f.create_user(user);
    assert!(!f.can_act(user));
}

#[test]
fn if_match_guards_writes() {
    let f = Fixture::new();
    let id = f.create_user("a@example.com");
    let patch = json!({"Operations": [{"op": "replace", "path": "displayName", "value": "A"}]});
    let (status, body, _) = f.call_with(
        "PATCH",
        &format!("/Users/{id}"),
        "",
        Some(patch.clone()),
        Some("W/\"7\""),
    );
    assert_eq!(status, 412, "{body}");
    let (status, body, _) = f.call_with(
        "PATCH",
        &format!("/Users/{id}"),
        "",
        Some(patch),
        Some("W/\"1\""),
    );
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["version"], "W/\"2\"");
    let (status, _, _) = f.call_with("DELETE", &format!("/Users/{id}"), "", None, Some("W/\"1\""));
    assert_eq!(status, 412);
}

#[test]
fn a_renamed_user_loses_the_keys_of_every_id_they_had_when_deprovisioned() {
    let f = Fixture::new();
    let id = f.create_user("a@example.com");
    f.create_user("taken@example.com");
    let old = f.key("a@example.com", "old").unwrap();
    let (status, body, _) = f.call(
        "PUT",
        &format!("/Users/{id}"),
        Some(json!({"schemas": [discovery::USER_URN], "userName": "TAKEN@example.com"})),
    );
    assert_eq!(
        (status, body["scimType"].as_str()),
        (409, Some("uniqueness"))
    );
    // Entra ID's documented rename.
    let (status, body, _) = f.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({"schemas": [discovery::PATCH_URN],
                    "Operations": [{"op": "Replace", "path": "userName", "value": "b@example.com"}]})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userName"], "b@example.com");
    f.verifies(&old).unwrap();
    let new = f.key("b@example.com", "new").unwrap();
    // PUT replaces the rest; a password is never kept.
    let (status, body, _) = f.call(
        "PUT",
        &format!("/Users/{id}"),
        Some(
            json!({"schemas": [discovery::USER_URN], "userName": "B@example.com",
                    "displayName": "B", "password": "hunter2", "active": false}),
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(body["userName"], "B@example.com");
    assert!(body.get("emails").is_none() && body.get("password").is_none());
    for key in [&old, &new] {
        assert!(matches!(f.verifies(key), Err(Error::RevokedKey)));
    }
    assert!(!f.can_act("a@example.com") && !f.can_act("b@example.com"));
    // Active again: both readmitted.
    f.call("PATCH", &format!("/Users/{id}"), Some(activation()));
    assert!(f.can_act("a@example.com") && f.can_act("b@example.com"));
}

/// A storage failure at each statement of a deactivation, then the IdP's
/// retry: every key of the user is refused afterwards, and nothing is doubled.
#[test]
fn a_failure_at_any_statement_of_a_deactivation_is_finished_by_the_retry() {
    for step in 1.. {
        let f = Fixture::new();
        let user = "floris@example.com";
        let id = f.create_user(user);
        let keys: Vec<String> = (0..3)
            .map(|i| f.key(user, &format!("k{i}")).unwrap())
            .collect();
        f.sql.fail_nth_matching("", step);
        let (status, _, _) = f.call("PATCH", &format!("/Users/{id}"), Some(entra_deactivation()));
        if status == 200 {
            assert!(step > 5, "{step}");
            break;
        }
        assert_eq!(status, 503, "step {step}");
        let (status, body, _) =
            f.call("PATCH", &format!("/Users/{id}"), Some(entra_deactivation()));
        assert_eq!(status, 200, "step {step}: {body}");
        for k in &keys {
            assert!(
                matches!(f.verifies(k), Err(Error::RevokedKey)),
                "step {step}"
            );
        }
        assert_eq!(f.audit_count("key.revoked"), 3, "step {step}");
        assert_eq!(f.audit_count("user.removed"), 1, "step {step}");
        assert!(!f.can_act(user));
    }
}

#[test]
fn lists_page_and_project() {
    let f = Fixture::new();
    for i in 0..5 {
        f.create_user(&format!("u{i}@example.com"));
    }
    let (_, page, _) = f.call_with(
        "GET",
        "/Users",
        "startIndex=2&count=2&attributes=userName",
        None,
        None,
    );
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    let (_, all, _) = f.call_with("GET", "/Users", "", None, None);
    assert_eq!(all["itemsPerPage"], 5);
    let first = &page["Resources"][0];
    assert_eq!(first["id"], all["Resources"][1]["id"]);
    assert_eq!(first["userName"], all["Resources"][1]["userName"]);
    assert!(first.get("emails").is_none() && first.get("id").is_some());
    let (_, counted, _) = f.call_with("GET", "/Users", "count=0", None, None);
    assert_eq!(
        (
            counted["totalResults"].as_u64(),
            counted["Resources"].as_array().map(Vec::len)
        ),
        (Some(5), Some(0))
    );
    let (status, body, _) = f.call_with("GET", "/Users", "count=x", None, None);
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidValue"))
    );
    let (status, _, _) = f.call_with("GET", "/Users", "filter=displayName+eq+%22x%22", None, None);
    assert_eq!(status, 400);
}
