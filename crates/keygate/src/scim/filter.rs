//! SCIM filters (RFC 7644 §3.4.2.2), as far as keygate needs them: the list
//! filters identity providers send (`userName eq "…"`, `externalId eq "…"`,
//! `id eq "…"`), and the value filters of PATCH paths (`emails[type eq
//! "work"]`): comparisons `eq ne co sw ew pr`, joined by `and` / `or`
//! (left to right, `and` first). Attribute names and operators match
//! case-insensitively; values are JSON literals.

use serde_json::Value;

use super::error::ScimError;

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The attribute path as written (`userName`, `name.givenName`, a URN-prefixed one).
    pub attr: String,
    pub op: Op,
    /// `None` for `pr`.
    pub value: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Pr,
}

/// `a or b and c` is `a or (b and c)`: a disjunction of conjunctions.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter(pub Vec<Vec<Comparison>>);

pub fn parse(text: &str) -> Result<Filter, ScimError> {
    let mut tokens = Tokens::new(text);
    let mut any = vec![vec![comparison(&mut tokens, text)?]];
    while let Some(word) = tokens.word() {
        let next = comparison(&mut tokens, text)?;
        if word.eq_ignore_ascii_case("and") {
            any.last_mut().expect("one at least").push(next);
        } else if word.eq_ignore_ascii_case("or") {
            any.push(vec![next]);
        } else {
            return Err(unsupported(text));
        }
    }
    Ok(Filter(any))
}

fn unsupported(text: &str) -> ScimError {
    ScimError::invalid_filter(format!(
        "cannot read the filter {text:?}: keygate supports comparisons (eq, ne, co, sw, ew, pr) \
         joined by and/or, without parentheses or not()"
    ))
}

fn comparison(tokens: &mut Tokens<'_>, text: &str) -> Result<Comparison, ScimError> {
    let attr = tokens.word().ok_or_else(|| unsupported(text))?;
    if attr.starts_with('(') || attr.eq_ignore_ascii_case("not") || attr.contains('[') {
        return Err(unsupported(text));
    }
    let op = tokens.word().ok_or_else(|| unsupported(text))?;
    let op = match op.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "co" => Op::Co,
        "sw" => Op::Sw,
        "ew" => Op::Ew,
        "pr" => Op::Pr,
        "gt" | "ge" | "lt" | "le" => {
            return Err(ScimError::invalid_filter(format!(
                "the operator {op} is not supported (eq, ne, co, sw, ew, pr are)"
            )));
        }
        _ => return Err(unsupported(text)),
    };
    let value = if op == Op::Pr {
        None
    } else {
        Some(tokens.literal().ok_or_else(|| unsupported(text))?)
    };
    Ok(Comparison {
        attr: attr.to_owned(),
        op,
        value,
    })
}

struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens { rest: text }
    }

    fn word(&mut self) -> Option<&'a str> {
        self.rest = self.rest.trim_start();
        if self.rest.is_empty() {
            return None;
        }
        let end = self
            .rest
            .find(char::is_whitespace)
            .unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(word)
    }

    /// A JSON string (escapes included), number, `true`, `false` or `null`.
    fn literal(&mut self) -> Option<Value> {
        self.rest = self.rest.trim_start();
        if self.rest.starts_with('"') {
            let bytes = self.rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        let (lit, rest) = self.rest.split_at(i + 1);
                        self.rest = rest;
                        return serde_json::from_str(lit).ok();
                    }
                    _ => i += 1,
                }
            }
            return None;
        }
        let word = self.word()?;
        let value: Value = serde_json::from_str(word).ok()?;
        (!value.is_array() && !value.is_object()).then_some(value)
    }
}

impl Filter {
    /// Whether a (complex) value matches; attribute names case-insensitively,
    /// strings compared case-insensitively unless `case_exact` says otherwise.
    pub fn matches(&self, item: &Value) -> bool {
        self.0.iter().any(|all| all.iter().all(|c| c.matches(item)))
    }
}

impl Comparison {
    pub fn matches(&self, item: &Value) -> bool {
        let found = item.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&self.attr))
                .map(|(_, v)| v)
        });
        let found = match found {
            None | Some(Value::Null) => return self.op == Op::Ne,
            Some(v) => v,
        };
        let Some(want) = &self.value else {
            return !matches!(found, Value::String(s) if s.is_empty());
        };
        match (found, want) {
            (Value::String(a), Value::String(b)) => {
                let (a, b) = (a.to_lowercase(), b.to_lowercase());
                match self.op {
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                    Op::Co => a.contains(&b),
                    Op::Sw => a.starts_with(&b),
                    Op::Ew => a.ends_with(&b),
                    Op::Pr => true,
                }
            }
            (a, b) => match self.op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                _ => false,
            },
        }
    }
}

/// The list filters keygate answers from its index: one `eq` on `userName`
/// (case-insensitively), `externalId` (exactly) or `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListFilter {
    UserName(String),
    ExternalId(String),
    Id(String),
}

pub fn parse_list_filter(text: &str) -> Result<ListFilter, ScimError> {
    let filter = parse(text)?;
    let only = match filter.0.as_slice() {
        [all] if all.len() == 1 => &all[0],
        _ => return Err(list_unsupported(text)),
    };
    let attr = only
        .attr
        .strip_prefix(super::discovery::USER_URN)
        .and_then(|a| a.strip_prefix(':'))
        .unwrap_or(&only.attr);
    let value = match (&only.op, &only.value) {
        (Op::Eq, Some(Value::String(v))) => v.clone(),
        _ => return Err(list_unsupported(text)),
    };
    if attr.eq_ignore_ascii_case("userName") {
        Ok(ListFilter::UserName(value))
    } else if attr.eq_ignore_ascii_case("externalId") {
        Ok(ListFilter::ExternalId(value))
    } else if attr.eq_ignore_ascii_case("id") {
        Ok(ListFilter::Id(value))
    } else {
        Err(list_unsupported(text))
    }
}

fn list_unsupported(text: &str) -> ScimError {
    ScimError::invalid_filter(format!(
        "unsupported filter {text:?}: keygate lists users by userName eq \"…\", \
         externalId eq \"…\" or id eq \"…\""
    ))
}
