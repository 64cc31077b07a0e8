//! Okta Event Hooks (`/webhooks/okta`): Okta tells keygate that a user was
//! deactivated or is being deleted, and that user is removed like any other
//! removal ([`KeyService::remove_user`]).
//!
//! What Okta sends (developer.okta.com, "Event hooks"):
//!
//! - once, `GET` with `X-Okta-Verification-Challenge: <value>`; the answer
//!   must be `{"verification": "<value>"}`;
//! - then `POST`s with the header the hook was registered with
//!   (`Authorization: <secret>`, the secret verbatim — it is not a bearer
//!   token, any text the admin typed) and `{"eventType":
//!   "com.okta.event_hook", …, "data": {"events": [LogEvent, …]}}`;
//! - it waits 3 seconds, retries a timeout or a 5xx at most once, and never
//!   retries a 4xx.
//!
//! Choices:
//!
//! - With `okta_hook_secret` unset (or blank) the route does not exist:
//!   `404 not_found` for every method, the verification included.
//! - A wrong or missing `Authorization` is `401 unauthenticated` without a
//!   `WWW-Authenticate` challenge (Okta sends a fixed header, not a scheme),
//!   checked before the body is read.
//! - Only the envelope (`eventType` `com.okta.event_hook`, `data.events`)
//!   and, per event, `uuid` and `eventType` must be there; the rest of a
//!   LogEvent is Okta's and ignored, unknown fields included. Of a removal
//!   event keygate also reads `outcome.result` and `target`.
//! - `user.lifecycle.deactivate` and `user.lifecycle.delete.initiated`
//!   remove the user named by the one target of type `User` (its
//!   `alternateId`, the Okta login). A removal event without exactly one
//!   such target, or whose login is not a user id, makes the whole delivery
//!   `400 invalid_request` and nothing is removed: a removal keygate cannot
//!   carry out is shown as a failed delivery in Okta's System Log rather
//!   than acknowledged. A removal event whose `outcome.result` is present
//!   and not `SUCCESS` (Okta failed to deactivate the user) is acknowledged
//!   and ignored.
//! - The whole body is checked before anything is removed. Each removal is
//!   one [`KeyService::remove_user`] under the delivery id `okta:<uuid>`, so
//!   an event seen again (Okta's retry, an at-least-once duplicate, the same
//!   event in another batch) answers what it answered the first time and
//!   revokes nothing more. A storage failure part-way answers `503`, which
//!   Okta retries; events already done are answered from storage then.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Problem};
use crate::service::KeyService;
use crate::validate::{is_user_id, json_error_detail, parse_json_object};

/// The envelope's `eventType`.
pub const ENVELOPE_EVENT_TYPE: &str = "com.okta.event_hook";
/// The event types that remove a user; every other one is acknowledged.
pub const REMOVAL_EVENT_TYPES: [&str; 2] = [
    "user.lifecycle.deactivate",
    "user.lifecycle.delete.initiated",
];
/// Delivery ids of this channel are `okta:<event uuid>`.
pub const DELIVERY_ID_PREFIX: &str = crate::model::RemovalChannel::Okta.delivery_prefix();
/// Okta's uuids are 36 characters; anything up to this is taken.
pub const MAX_EVENT_UUID_CHARS: usize = 100;
/// The longest verification challenge echoed back.
pub const MAX_CHALLENGE_CHARS: usize = 1024;

/// The Spin variable `okta_hook_secret`: the whole `Authorization` header
/// value Okta is configured to send. `Debug` never shows it.
#[derive(Clone)]
pub struct HookSecret(String);

/// A shorter `okta_hook_secret` is taken as unset (the route answers 404),
/// as SCIM's token and the admin token are: a guessable secret would let
/// anyone remove users.
pub const MIN_SECRET_LEN: usize = 16;

impl fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookSecret([redacted])")
    }
}

impl HookSecret {
    /// Unset, empty or blank: the hook is off, and every request to it is
    /// `404 not_found`. Surrounding whitespace is not part of the secret
    /// (HTTP strips it from header values anyway).
    pub fn from_variable(configured: Option<&str>) -> Result<Self, Error> {
        configured
            .map(str::trim)
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .map(|s| HookSecret(s.to_owned()))
            .ok_or(Error::NotFound)
    }

    /// `Authorization` must be the secret, exactly (after trimming). Both
    /// sides are hashed before the constant-time comparison, as for the
    /// admin token ([`crate::auth::check_admin_token`]), so neither the
    /// content nor the length of the secret leaks through timing.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), Error> {
        let presented = authorization.map(str::trim).unwrap_or_default();
        let a = Sha256::digest(presented.as_bytes());
        let b = Sha256::digest(self.0.as_bytes());
        if !presented.is_empty() && bool::from(a.ct_eq(&b)) {
            Ok(())
        } else {
            Err(Error::Unauthenticated)
        }
    }
}

/// The `401` of a wrong or missing `Authorization`: code `unauthenticated`
/// as elsewhere, but with a detail for whoever configures Okta and no
/// `WWW-Authenticate: Bearer` (the secret is not a bearer token).
pub fn unauthenticated_problem() -> Problem {
    let mut problem = Error::Unauthenticated.to_problem();
    problem.detail =
        "the Authorization header is missing or is not the configured okta_hook_secret".into();
    problem.headers.clear();
    problem
}

/// The answer to Okta's one-time verification request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub verification: String,
}

/// `X-Okta-Verification-Challenge`, echoed back: 1–1024 characters, no
/// control characters; missing or otherwise `invalid_request`.
pub fn verification(challenge: Option<&str>) -> Result<Verification, Error> {
    let challenge = challenge.map(str::trim).unwrap_or_default();
    if challenge.is_empty()
        || challenge.chars().count() > MAX_CHALLENGE_CHARS
        || challenge.chars().any(char::is_control)
    {
        return Err(Error::InvalidRequest(format!(
            "X-Okta-Verification-Challenge must be 1–{MAX_CHALLENGE_CHARS} printable characters"
        )));
    }
    Ok(Verification {
        verification: challenge.to_owned(),
    })
}

/// One event of a delivery, as keygate reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub uuid: String,
    pub event_type: String,
    /// What the event asks of keygate.
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove this user (the `User` target's `alternateId`, trimmed).
    Remove { user_id: String },
    /// Not a removal event.
    Ignore,
    /// A removal event whose `outcome.result` is not `SUCCESS`: Okta did
    /// not deactivate or delete the user, so neither does keygate.
    IgnoreUnsuccessful,
}

impl Event {
    /// The delivery id [`KeyService::remove_user`] stores the answer under.
    pub fn delivery_id(&self) -> String {
        format!("{DELIVERY_ID_PREFIX}{}", self.uuid)
    }
}

/// Reads a delivery: the envelope, then each event in order. Any problem is
/// `invalid_request` naming the event by its index, and nothing is done.
pub fn parse_delivery(body: &[u8]) -> Result<Vec<Event>, Error> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "eventType")]
        event_type: String,
        data: Data,
    }
    #[derive(Deserialize)]
    struct Data {
        // Values first: an event is read on its own, so an error names it.
        events: Vec<serde_json::Value>,
    }
    let envelope: Envelope = parse_json_object(body)?;
    if envelope.event_type != ENVELOPE_EVENT_TYPE {
        return Err(Error::InvalidRequest(format!(
            "`eventType` must be \"{ENVELOPE_EVENT_TYPE}\""
        )));
    }
    envelope
        .data
        .events
        .into_iter()
        .enumerate()
        .map(|(i, event)| parse_event(event).map_err(|why| bad(i, &why)))
        .collect()
}

fn bad(index: usize, why: &str) -> Error {
    Error::InvalidRequest(format!("`data.events[{index}]`: {why}"))
}

fn parse_event(value: serde_json::Value) -> Result<Event, String> {
    #[derive(Deserialize)]
    struct Head {
        uuid: String,
        #[serde(rename = "eventType")]
        event_type: String,
        #[serde(default)]
        outcome: Option<Outcome>,
        #[serde(default)]
        target: Option<Vec<Target>>,
    }
    #[derive(Deserialize)]
    struct Outcome {
        #[serde(default)]
        result: Option<String>,
    }
    #[derive(Deserialize)]
    struct Target {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(rename = "alternateId", default)]
        alternate_id: Option<String>,
    }
    if !value.is_object() {
        return Err("an event must be a JSON object".into());
    }
    // Only what keygate reads is typed: for an event it ignores, `uuid` and
    // `eventType`; the rest of a LogEvent is Okta's to extend.
    let removal = value
        .get("eventType")
        .and_then(|t| t.as_str())
        .is_some_and(|t| REMOVAL_EVENT_TYPES.contains(&t));
    let (uuid, event_type, outcome, target) = if removal {
        let head: Head = serde_json::from_value(value).map_err(|e| json_error_detail(&e))?;
        (head.uuid, head.event_type, head.outcome, head.target)
    } else {
        #[derive(Deserialize)]
        struct Minimal {
            uuid: String,
            #[serde(rename = "eventType")]
            event_type: String,
        }
        let head: Minimal = serde_json::from_value(value).map_err(|e| json_error_detail(&e))?;
        (head.uuid, head.event_type, None, None)
    };
    if uuid.trim().is_empty()
        || uuid.chars().count() > MAX_EVENT_UUID_CHARS
        || uuid.chars().any(char::is_control)
    {
        return Err(format!(
            "`uuid` must be 1–{MAX_EVENT_UUID_CHARS} printable characters"
        ));
    }
    let uuid = uuid.trim().to_owned();
    if !removal {
        return Ok(Event {
            uuid,
            event_type,
            action: Action::Ignore,
        });
    }
    let users: Vec<Target> = target
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.kind.as_deref() == Some("User"))
        .collect();
    let [user] = users.as_slice() else {
        return Err(format!(
            "a {event_type} event must have exactly one target of type \"User\" (it has {})",
            users.len()
        ));
    };
    let user_id = match user.alternate_id.as_deref() {
        Some(login) if is_user_id(login) => login.trim().to_owned(),
        _ => {
            return Err(
                "the \"User\" target's `alternateId` must be a user id (1–200 printable characters)"
                    .into(),
            );
        }
    };
    let succeeded = outcome
        .and_then(|o| o.result)
        .is_none_or(|result| result == "SUCCESS");
    let action = if succeeded {
        Action::Remove { user_id }
    } else {
        Action::IgnoreUnsuccessful
    };
    Ok(Event {
        uuid,
        event_type,
        action,
    })
}

/// The `200` body: what became of each event, in the delivery's order. (Okta
/// reads only the status; the body is for people and tests.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryAnswer {
    pub events: Vec<EventAnswer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventAnswer {
    pub uuid: String,
    pub event_type: String,
    /// `removed` or `ignored`.
    pub result: &'static str,
    /// Removed events: the user as this event named them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Removed events: keys revoked by this event's first handling (0 for a
    /// user already removed by another delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_keys: Option<u64>,
}

/// Carries out a parsed delivery, event by event. The first failure ends it
/// (a storage error is `503`, which Okta retries); removals already done
/// are idempotent per event, so the retry picks up where this stopped.
pub fn deliver(
    service: &KeyService<'_>,
    events: &[Event],
    now: i64,
) -> Result<DeliveryAnswer, Error> {
    let mut answers = Vec::with_capacity(events.len());
    for event in events {
        let answer = match &event.action {
            Action::Remove { user_id } => {
                let removed = service.remove_user(user_id, &event.delivery_id(), now)?;
                EventAnswer {
                    uuid: event.uuid.clone(),
                    event_type: event.event_type.clone(),
                    result: "removed",
                    user_id: Some(removed.user_id),
                    revoked_keys: Some(removed.revoked_keys),
                }
            }
            Action::Ignore | Action::IgnoreUnsuccessful => EventAnswer {
                uuid: event.uuid.clone(),
                event_type: event.event_type.clone(),
                result: "ignored",
                user_id: None,
                revoked_keys: None,
            },
        };
        answers.push(answer);
    }
    Ok(DeliveryAnswer { events: answers })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::model::{ActingUser, NewKey, VerifyContext};
    use crate::testing::{FailingSql, MemoryKeyValue, SqliteSql};
    use crate::validate::parse_audit_query;

    const NOW: i64 = 1_795_712_400; // 2026-11-26T17:00:00Z
    const SECRET: &str = "Basic YWRtaW46c3VwZXJzZWNyZXQ=";

    /// A delivery in Okta's envelope with these events.
    fn delivery(events: Value) -> Vec<u8> {
        json!({
            "eventType": "com.okta.event_hook",
            "eventTypeVersion": "1.0",
            "cloudEventsVersion": "0.1",
            "source": "https://example.okta.com/api/v1/eventHooks/who7hphp39JoHLni81d7",
            "eventId": "85b60edb-4263-4e13-993b-818e26201052",
            "data": {"events": events},
            "eventTime": "2023-03-28T17:03:37.093Z",
            "contentType": "application/json"
        })
        .to_string()
        .into_bytes()
    }

    /// A LogEvent shaped like Okta's documented `user.lifecycle.deactivate`.
    fn event(uuid: &str, event_type: &str, login: &str) -> Value {
        json!({
            "actor": {"id": "00u2di94bAMSEPvAY1d6", "type": "User",
                      "alternateId": "okta.trainer@okta.com", "displayName": "Okta Trainer",
                      "detailEntry": null},
            "displayMessage": "Deactivate Okta User",
            "eventType": event_type,
            "outcome": {"result": "SUCCESS", "reason": null},
            "published": "2020-11-16T18:15:12.862Z",
            "severity": "INFO",
            "uuid": uuid,
            "version": "0",
            "target": [{"id": "00u3m90rxKjGQ0G6L1d6", "type": "User",
                        "alternateId": login, "displayName": "John Doe",
                        "detailEntry": null}]
        })
    }

    fn invalid(body: &[u8]) -> String {
        match parse_delivery(body) {
            Err(Error::InvalidRequest(detail)) => detail,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn an_unset_or_blank_secret_turns_the_hook_off() {
        for configured in [None, Some(""), Some("  \t")] {
            assert!(matches!(
                HookSecret::from_variable(configured),
                Err(Error::NotFound)
            ));
        }
        let secret = HookSecret::from_variable(Some(SECRET)).unwrap();
        assert!(!format!("{secret:?}").contains("YWRt"));
    }

    #[test]
    fn authorization_must_be_the_whole_secret() {
        let secret = HookSecret::from_variable(Some(&format!(" {SECRET} "))).unwrap();
        assert!(secret.check(Some(SECRET)).is_ok());
        assert!(secret.check(Some(&format!("{SECRET}  "))).is_ok());
        let wrong = [
            None,
            Some(""),
            Some(" "),
            Some("YWRtaW46c3VwZXJzZWNyZXQ="),
            Some("Bearer YWRtaW46c3VwZXJzZWNyZXQ="),
            Some("basic YWRtaW46c3VwZXJzZWNyZXQ="),
            Some("Basic YWRtaW46c3VwZXJzZWNyZXQ=="),
            Some("Basic YWRtaW46c3VwZXJzZWNyZXQ"),
        ];
        for header in wrong {
            assert!(
                matches!(secret.check(header), Err(Error::Unauthenticated)),
                "{header:?}"
            );
        }
    }

    #[test]
    fn the_401_names_the_variable_and_challenges_nobody() {
        let problem = unauthenticated_problem();
        assert_eq!((problem.status, problem.code), (401, "unauthenticated"));
        assert!(problem.headers.is_empty());
        assert!(problem.detail.contains("okta_hook_secret"));
    }

    #[test]
    fn the_verification_challenge_is_echoed() {
        assert_eq!(
            verification(Some("TnWX5Yc0GskoY2k9dqqvRUXKjgGU7Y2AXvGxCBBHjaU")).unwrap(),
            Verification {
                verification: "TnWX5Yc0GskoY2k9dqqvRUXKjgGU7Y2AXvGxCBBHjaU".into()
            }
        );
        let long = "c".repeat(MAX_CHALLENGE_CHARS + 1);
        for bad in [
            None,
            Some(""),
            Some("  "),
            Some("a\u{7f}b"),
            Some(&long[..]),
        ] {
            assert!(
                matches!(verification(bad), Err(Error::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn removal_events_name_the_user_target_and_others_are_ignored() {
        let body = delivery(json!([
            event("u-1", "user.lifecycle.deactivate", "john.doe@example.com"),
            event("u-2", "user.session.start", "not-a-removal"),
            event("u-3", "user.lifecycle.delete.initiated", " Jane@Example.com "),
            // Ignored events need only uuid and eventType.
            {"uuid": "u-4", "eventType": "group.user_membership.add", "target": "anything"},
        ]));
        let events = parse_delivery(&body).unwrap();
        let actions: Vec<(&str, &str, &Action)> = events
            .iter()
            .map(|e| (e.uuid.as_str(), e.event_type.as_str(), &e.action))
            .collect();
        assert_eq!(
            actions,
            [
                (
                    "u-1",
                    "user.lifecycle.deactivate",
                    &Action::Remove {
                        user_id: "john.doe@example.com".into()
                    }
                ),
                ("u-2", "user.session.start", &Action::Ignore),
                (
                    "u-3",
                    "user.lifecycle.delete.initiated",
                    &Action::Remove {
                        user_id: "Jane@Example.com".into()
                    }
                ),
                ("u-4", "group.user_membership.add", &Action::Ignore),
            ]
        );
        assert_eq!(events[0].delivery_id(), "okta:u-1");
        assert!(parse_delivery(&delivery(json!([]))).unwrap().is_empty());
    }

    #[test]
    fn the_user_target_is_found_among_others_and_unsuccessful_removals_are_ignored() {
        let mut with_group = event("u-1", "user.lifecycle.deactivate", "a@example.com");
        with_group["target"].as_array_mut().unwrap().insert(
            0,
            json!({"id": "00g1", "type": "UserGroup", "alternateId": "unknown"}),
        );
        let mut failed = event("u-2", "user.lifecycle.deactivate", "b@example.com");
        failed["outcome"]["result"] = json!("FAILURE");
        let mut no_outcome = event("u-3", "user.lifecycle.deactivate", "c@example.com");
        no_outcome.as_object_mut().unwrap().remove("outcome");
        let events = parse_delivery(&delivery(json!([with_group, failed, no_outcome]))).unwrap();
        let actions: Vec<&Action> = events.iter().map(|e| &e.action).collect();
        assert_eq!(
            actions,
            [
                &Action::Remove {
                    user_id: "a@example.com".into()
                },
                &Action::IgnoreUnsuccessful,
                &Action::Remove {
                    user_id: "c@example.com".into()
                },
            ]
        );
    }

    #[test]
    fn bodies_keygate_cannot_read_are_invalid_request() {
        let removal = |edit: &dyn Fn(&mut Value)| {
            let mut e = event("u-1", "user.lifecycle.deactivate", "a@example.com");
            edit(&mut e);
            delivery(json!([e]))
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty"),
            (b"{".to_vec(), "not valid JSON"),
            (b"[]".to_vec(), "JSON object"),
            (br#"{"eventType": "com.okta.event_hook"}"#.to_vec(), "`data`"),
            (
                br#"{"eventType": "com.okta.event_hook", "data": {"events": {}}}"#.to_vec(),
                "wrong type",
            ),
            (
                br#"{"eventType": "com.okta.event_hook", "data": {}}"#.to_vec(),
                "`events`",
            ),
            (
                br#"{"eventType": "com.okta.inline_hook", "data": {"events": []}}"#.to_vec(),
                "com.okta.event_hook",
            ),
            (
                br#"{"eventType": "com.okta.event_hook", "eventType": "com.okta.event_hook", "data": {"events": []}}"#.to_vec(),
                "more than once",
            ),
            (delivery(json!([7])), "events[0]`: an event must be"),
            (delivery(json!([{"eventType": "user.session.start"}])), "`uuid`"),
            (delivery(json!([{"uuid": "u-1"}])), "`eventType`"),
            (delivery(json!([{"uuid": "", "eventType": "x"}])), "`uuid` must"),
            (delivery(json!([{"uuid": 7, "eventType": "x"}])), "wrong type"),
            (
                delivery(json!([{"uuid": "u".repeat(101), "eventType": "x"}])),
                "`uuid` must",
            ),
            (
                delivery(json!([{"uuid": "a\nb", "eventType": "x"}])),
                "`uuid` must",
            ),
            (removal(&|e| e["target"] = json!([])), "exactly one target"),
            (
                removal(&|e| {
                    e.as_object_mut().unwrap().remove("target");
                }),
                "exactly one target",
            ),
            (
                removal(&|e| {
                    let second = e["target"][0].clone();
                    e["target"].as_array_mut().unwrap().push(second);
                }),
                "(it has 2)",
            ),
            (
                removal(&|e| e["target"][0]["type"] = json!("user")),
                "exactly one target",
            ),
            (
                removal(&|e| e["target"][0]["alternateId"] = json!("")),
                "`alternateId`",
            ),
            (
                removal(&|e| e["target"][0]["alternateId"] = json!("u".repeat(201))),
                "`alternateId`",
            ),
            (
                removal(&|e| e["target"][0]["alternateId"] = Value::Null),
                "`alternateId`",
            ),
            (
                removal(&|e| e["target"][0]["alternateId"] = json!(42)),
                "wrong type",
            ),
            (removal(&|e| e["target"] = json!("User")), "wrong type"),
            (removal(&|e| e["outcome"] = json!("SUCCESS")), "wrong type"),
        ];
        for (body, expected) in cases {
            let detail = invalid(&body);
            assert!(
                detail.contains(expected),
                "{}: {detail:?} lacks {expected:?}",
                String::from_utf8_lossy(&body)
            );
        }
        // A bad event anywhere refuses the delivery; the index is named.
        let mixed = delivery(json!([
            event("u-1", "user.lifecycle.deactivate", "a@example.com"),
            {"uuid": "u-2", "eventType": "user.lifecycle.delete.initiated"},
        ]));
        assert!(invalid(&mixed).starts_with("`data.events[1]`"));
    }

    struct World {
        kv: MemoryKeyValue,
        sql: FailingSql<SqliteSql>,
    }

    impl World {
        fn new() -> Self {
            Self {
                kv: MemoryKeyValue::new(),
                sql: FailingSql::new(SqliteSql::new()),
            }
        }

        fn service(&self) -> KeyService<'_> {
            KeyService::new(&self.kv, &self.sql)
        }

        fn create(&self, owner: &str, name: &str) -> String {
            let new = NewKey {
                name: name.into(),
                description: None,
                expires_at: None,
                owner: None,
            };
            let created = self
                .service()
                .create_key(&ActingUser::named_by_portal(owner), new, NOW)
                .unwrap();
            created.secret.expose_secret().to_owned()
        }

        fn verify(&self, secret: &str) -> Result<(), Error> {
            self.service()
                .verify(Some(secret), &VerifyContext::default(), NOW)
                .map(|_| ())
        }

        fn audit(&self, action: &str) -> usize {
            let q = parse_audit_query(&format!("action={action}&per_page=100")).unwrap();
            let admin = ActingUser::named_by_portal("admin");
            self.service().list_audit(&admin, &q).unwrap().items.len()
        }

        fn deliver(&self, events: Value) -> Result<Value, Error> {
            let events = parse_delivery(&delivery(events)).unwrap();
            let answer = deliver(&self.service(), &events, NOW)?;
            Ok(serde_json::to_value(answer).unwrap())
        }
    }

    #[test]
    fn a_removal_revokes_the_users_keys_once_per_event_uuid() {
        let w = World::new();
        let johns = [
            w.create("john.doe@example.com", "a"),
            w.create("John.Doe@example.com", "b"),
        ];
        let other = w.create("jane@example.com", "c");
        let events = json!([
            event("u-1", "user.session.start", "x"),
            event("u-2", "user.lifecycle.deactivate", "john.doe@example.com"),
        ]);
        let first = w.deliver(events.clone()).unwrap();
        assert_eq!(
            first,
            json!({"events": [
                {"uuid": "u-1", "event_type": "user.session.start", "result": "ignored"},
                {"uuid": "u-2", "event_type": "user.lifecycle.deactivate", "result": "removed",
                 "user_id": "john.doe@example.com", "revoked_keys": 2},
            ]})
        );
        for secret in &johns {
            assert!(matches!(w.verify(secret), Err(Error::RevokedKey)));
        }
        w.verify(&other).unwrap();
        let trail = (w.audit("user.removed"), w.audit("key.revoked"));
        assert_eq!(trail, (1, 2));

        // Okta's retry, or the same event again: the same answer, nothing more.
        assert_eq!(w.deliver(events).unwrap(), first);
        assert_eq!((w.audit("user.removed"), w.audit("key.revoked")), trail);
        // Another event for the same user (delete after deactivate): nothing more.
        let later = w
            .deliver(json!([event(
                "u-3",
                "user.lifecycle.delete.initiated",
                "JOHN.DOE@example.com"
            )]))
            .unwrap();
        assert_eq!(later["events"][0]["revoked_keys"], 0);
        assert_eq!((w.audit("user.removed"), w.audit("key.revoked")), trail);
    }

    #[test]
    fn a_storage_failure_part_way_is_finished_by_the_retry() {
        let w = World::new();
        let alices: Vec<String> = (0..3)
            .map(|i| w.create("alice@example.com", &format!("a{i}")))
            .collect();
        let bobs = w.create("bob@example.com", "b");
        let events = json!([
            event("u-1", "user.lifecycle.deactivate", "alice@example.com"),
            event("u-2", "user.lifecycle.deactivate", "bob@example.com"),
        ]);
        // Alice's removal completes; Bob's fails at its first revocation.
        w.sql.fail_nth_matching("UPDATE api_keys SET revoked_at", 4);
        assert!(matches!(w.deliver(events.clone()), Err(Error::Storage(_))));
        for secret in &alices {
            assert!(matches!(w.verify(secret), Err(Error::RevokedKey)));
        }
        w.verify(&bobs).unwrap();

        let retried = w.deliver(events.clone()).unwrap();
        assert_eq!(retried["events"][0]["revoked_keys"], 3);
        assert_eq!(retried["events"][1]["revoked_keys"], 1);
        assert!(matches!(w.verify(&bobs), Err(Error::RevokedKey)));
        assert_eq!((w.audit("user.removed"), w.audit("key.revoked")), (2, 4));
        assert_eq!(w.deliver(events).unwrap(), retried);
    }
}
