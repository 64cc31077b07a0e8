//! Fault injection for tests: make a chosen storage call fail, or make the
//! request trap right after a chosen call succeeded (a crash mid-operation).
//!
//! Rules come from `keygate-host up --fail <call>:<which>` and
//! `--crash-after <call>:<which>` (repeatable) and from `KEYGATE_FAULTS`
//! (`fail=kv.set:2;crash-after=sqlite.execute:~INSERT`). `<call>` is
//! `kv.get`, `kv.set`, `kv.delete`, `kv.exists`, `kv.get-keys`,
//! `sqlite.execute` or `*` (any of them). `<which>` is `n` (the n-th matching
//! call, counted across the whole process from 1), `~text` (the first call
//! whose statement, or key for `kv.*`, contains `text`) or `n~text` (the n-th
//! such call).
//!
//! Each rule fires exactly once, on the call it names; every other call,
//! before and after, behaves normally. So a test can inject one failure,
//! look at what it left behind and retry on the same runner. A failed call
//! returns the capability's own error to the guest (`error::other` for
//! key-value, `io` for SQLite) without reaching the store, as a real backend
//! error would. A crash lets the call reach the store and succeed, then traps
//! the instance: the request gets a `500` and nothing after that call runs.
//!
//! With no rule configured, the capabilities carry `None` and pay one branch.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, anyhow, bail};

/// A host call a rule can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    KvGet,
    KvSet,
    KvDelete,
    KvExists,
    KvGetKeys,
    SqliteExecute,
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Call::KvGet => "kv.get",
            Call::KvSet => "kv.set",
            Call::KvDelete => "kv.delete",
            Call::KvExists => "kv.exists",
            Call::KvGetKeys => "kv.get-keys",
            Call::SqliteExecute => "sqlite.execute",
        }
    }

    const ALL: [Call; 6] = [
        Call::KvGet,
        Call::KvSet,
        Call::KvDelete,
        Call::KvExists,
        Call::KvGetKeys,
        Call::SqliteExecute,
    ];
}

/// What a rule does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The call returns an error instead of reaching the store.
    Fail,
    /// The call succeeds, then the request traps.
    CrashAfter,
}

impl Effect {
    fn flag(self) -> &'static str {
        match self {
            Effect::Fail => "--fail",
            Effect::CrashAfter => "--crash-after",
        }
    }
}

/// One rule: which call, and what happens to it.
#[derive(Debug)]
pub struct Rule {
    pub effect: Effect,
    /// `None` is `*`: any storage call.
    pub call: Option<Call>,
    /// The n-th matching call fires (1-based).
    pub nth: u64,
    /// Only calls whose statement (or key) contains this match.
    pub containing: Option<String>,
    /// Matching calls seen so far.
    seen: AtomicU64,
}

impl Rule {
    /// Parses `<call>:<n|~text|n~text>` for `effect`.
    pub fn parse(effect: Effect, spec: &str) -> Result<Rule> {
        let usage = || {
            anyhow!(
                "{} {spec:?}: expected <call>:<n>, <call>:~<text> or <call>:<n>~<text>, \
                 where <call> is * or one of {}",
                effect.flag(),
                Call::ALL.map(Call::name).join(", ")
            )
        };
        let (call, which) = spec.split_once(':').ok_or_else(usage)?;
        let call = match call.trim() {
            "*" => None,
            name => Some(
                Call::ALL
                    .into_iter()
                    .find(|c| c.name() == name)
                    .ok_or_else(usage)?,
            ),
        };
        let (count, containing) = match which.split_once('~') {
            Some((count, text)) if !text.is_empty() => (count, Some(text.to_owned())),
            Some(_) => return Err(usage()),
            None => (which, None),
        };
        let nth = match count.trim() {
            "" if containing.is_some() => 1,
            n => n.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(usage)?,
        };
        Ok(Rule {
            effect,
            call,
            nth,
            containing,
            seen: AtomicU64::new(0),
        })
    }

    /// Counts `call` if it matches; true when this is the call to fire on.
    fn fires(&self, call: Call, subject: &str) -> bool {
        let matches = self.call.is_none_or(|c| c == call)
            && self
                .containing
                .as_deref()
                .is_none_or(|text| subject.contains(text));
        matches && self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.nth
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = self.call.map_or("*", Call::name);
        write!(f, "{} {call}:{}", self.effect.flag(), self.nth)?;
        if let Some(text) = &self.containing {
            write!(f, "~{text}")?;
        }
        Ok(())
    }
}

/// The configured rules; shared by every component of the app.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<Rule>,
}

impl Faults {
    /// The rules from flags and from `KEYGATE_FAULTS` (entries separated by
    /// `;`, each `fail=<spec>` or `crash-after=<spec>`). `None` when there are none.
    pub fn from_flags(
        fail: &[String],
        crash_after: &[String],
        env: Option<&str>,
    ) -> Result<Option<Faults>> {
        let mut rules = Vec::new();
        for spec in fail {
            rules.push(Rule::parse(Effect::Fail, spec)?);
        }
        for spec in crash_after {
            rules.push(Rule::parse(Effect::CrashAfter, spec)?);
        }
        for entry in env.unwrap_or_default().split(';').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            rules.push(match entry.split_once('=') {
                Some(("fail", spec)) => Rule::parse(Effect::Fail, spec)?,
                Some(("crash-after", spec)) => Rule::parse(Effect::CrashAfter, spec)?,
                _ => bail!(
                    "KEYGATE_FAULTS {entry:?}: expected fail=<call>:<which> or crash-after=<call>:<which>"
                ),
            });
        }
        Ok((!rules.is_empty()).then_some(Faults { rules }))
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Before a call: the error message to return instead, if a `--fail` rule fires.
    pub fn fail_before(&self, call: Call, subject: &str) -> Option<String> {
        let rule = self
            .rules
            .iter()
            .filter(|r| r.effect == Effect::Fail)
            .find(|r| r.fires(call, subject))?;
        eprintln!(
            "keygate-host: fault injected: {} failed ({rule})",
            call.name()
        );
        Some(format!("fault injected: {} failed", call.name()))
    }

    /// After a call: its `result` for the guest, or the trap to raise if it
    /// succeeded and a `--crash-after` rule fires.
    fn after<T, E>(
        &self,
        call: Call,
        subject: &str,
        result: Result<T, E>,
    ) -> wasmtime::Result<Result<T, E>> {
        if result.is_err() {
            return Ok(result);
        }
        let Some(rule) = self
            .rules
            .iter()
            .filter(|r| r.effect == Effect::CrashAfter)
            .find(|r| r.fires(call, subject))
        else {
            return Ok(result);
        };
        eprintln!(
            "keygate-host: fault injected: crash after {} ({rule})",
            call.name()
        );
        Err(wasmtime::Error::msg(format!(
            "fault injected: crash after {}",
            call.name()
        )))
    }
}

/// Runs one host call under `faults`: `Ok(result)` for the guest, or `Err`
/// to trap the instance. The subject (statement or key) is matched, never logged.
pub fn guard<T, E>(
    faults: Option<&Faults>,
    call: Call,
    subject: &str,
    injected: impl FnOnce(String) -> E,
    run: impl FnOnce() -> Result<T, E>,
) -> wasmtime::Result<Result<T, E>> {
    let Some(faults) = faults else {
        return Ok(run());
    };
    if let Some(message) = faults.fail_before(call, subject) {
        return Ok(Err(injected(message)));
    }
    faults.after(call, subject, run())
}

/// [`guard`] for a host call that awaits (a SQLite write waiting for its
/// group commit).
pub async fn guard_async<T, E>(
    faults: Option<&Faults>,
    call: Call,
    subject: &str,
    injected: impl FnOnce(String) -> E,
    run: impl Future<Output = Result<T, E>>,
) -> wasmtime::Result<Result<T, E>> {
    let Some(faults) = faults else {
        return Ok(run.await);
    };
    if let Some(message) = faults.fail_before(call, subject) {
        return Ok(Err(injected(message)));
    }
    faults.after(call, subject, run.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(spec: &str) -> Rule {
        Rule::parse(Effect::Fail, spec).unwrap()
    }

    #[test]
    fn parses_counts_substrings_and_wildcards() {
        let r = fail("kv.set:2");
        assert_eq!(
            (r.call, r.nth, r.containing.as_deref()),
            (Some(Call::KvSet), 2, None)
        );
        let r = fail("sqlite.execute:~INSERT INTO api_keys");
        assert_eq!(
            (r.call, r.nth, r.containing.as_deref()),
            (Some(Call::SqliteExecute), 1, Some("INSERT INTO api_keys"))
        );
        let r = fail("sqlite.execute:3~audit_log");
        assert_eq!((r.nth, r.containing.as_deref()), (3, Some("audit_log")));
        let r = Rule::parse(Effect::CrashAfter, "*:7").unwrap();
        assert_eq!((r.effect, r.call, r.nth), (Effect::CrashAfter, None, 7));
        assert_eq!(r.to_string(), "--crash-after *:7");
        assert_eq!(fail("kv.get-keys:1").call, Some(Call::KvGetKeys));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "kv.set",
            "kv.set:",
            "kv.set:0",
            "kv.set:-1",
            "kv.set:x",
            "kv.put:1",
            "kv.set:~",
            "kv.set:2~",
            ":1",
            "sqlite:1",
        ] {
            let e = Rule::parse(Effect::Fail, bad).unwrap_err().to_string();
            assert!(
                e.contains("--fail") && e.contains("kv.set, kv.delete"),
                "{bad}: {e}"
            );
        }
        let e = Faults::from_flags(&[], &[], Some("explode=kv.set:1")).unwrap_err();
        assert!(e.to_string().contains("KEYGATE_FAULTS"), "{e}");
    }

    #[test]
    fn flags_and_environment_combine_and_nothing_configured_is_none() {
        assert!(Faults::from_flags(&[], &[], None).unwrap().is_none());
        assert!(Faults::from_flags(&[], &[], Some(" ; ")).unwrap().is_none());
        let faults = Faults::from_flags(
            &["kv.set:1".into()],
            &["kv.delete:1".into()],
            Some("fail=*:3; crash-after=sqlite.execute:~DELETE"),
        )
        .unwrap()
        .unwrap();
        let shown: Vec<String> = faults.rules().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "--fail kv.set:1",
                "--crash-after kv.delete:1",
                "--fail *:3",
                "--crash-after sqlite.execute:1~DELETE"
            ]
        );
    }

    #[test]
    fn a_rule_fires_once_on_the_nth_matching_call() {
        let faults = Faults::from_flags(&["sqlite.execute:2~INSERT".into()], &[], None)
            .unwrap()
            .unwrap();
        let run = |statement: &str| {
            guard(
                Some(&faults),
                Call::SqliteExecute,
                statement,
                |m| m,
                || Ok::<_, String>(()),
            )
            .unwrap()
        };
        assert_eq!(run("INSERT INTO t VALUES (1)"), Ok(()));
        assert_eq!(run("SELECT 1"), Ok(()), "other statements are not counted");
        assert!(
            run("INSERT INTO t VALUES (2)")
                .unwrap_err()
                .contains("sqlite.execute failed")
        );
        assert_eq!(run("INSERT INTO t VALUES (3)"), Ok(()), "fires once");
        // Other calls are never affected.
        let kv = guard(
            Some(&faults),
            Call::KvSet,
            "INSERT",
            |m| m,
            || Ok::<_, String>(()),
        );
        assert_eq!(kv.unwrap(), Ok(()));
    }

    #[test]
    fn a_crash_comes_after_the_call_ran_and_only_when_it_succeeded() {
        let faults = Faults::from_flags(&[], &["*:2".into()], None)
            .unwrap()
            .unwrap();
        let ran = std::cell::Cell::new(0);
        let call = |ok: bool| {
            guard(
                Some(&faults),
                Call::KvDelete,
                "key:x",
                |m| m,
                || {
                    ran.set(ran.get() + 1);
                    if ok {
                        Ok(())
                    } else {
                        Err("backend down".to_owned())
                    }
                },
            )
        };
        assert!(call(true).is_ok());
        assert!(
            matches!(call(false), Ok(Err(_))),
            "a failed call does not count"
        );
        let trap = call(true).unwrap_err();
        assert!(trap.to_string().contains("crash after kv.delete"), "{trap}");
        assert_eq!(ran.get(), 3, "the call itself ran before the crash");
        assert!(matches!(call(true), Ok(Ok(()))), "fires once");
    }

    #[test]
    fn no_faults_runs_the_call_untouched() {
        let r = guard(None, Call::KvGet, "k", |m| m, || Ok::<_, String>(5));
        assert_eq!(r.unwrap(), Ok(5));
    }
}
