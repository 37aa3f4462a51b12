//! Compiled conditions and their evaluation against a record.

use crate::transforms::decode::tree::{Map, Value};
use globset::{GlobBuilder, GlobMatcher};

use super::model::Op;

/// A field path, split once at load time.
#[derive(Debug, Clone)]
pub struct FieldPath {
    pub text: String,
    parts: Vec<String>,
    context: bool,
}

impl FieldPath {
    pub fn parse(text: &str) -> FieldPath {
        let (context, rest) = match text.strip_prefix("context.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        FieldPath {
            text: text.to_string(),
            parts: rest.split('.').map(str::to_string).collect(),
            context,
        }
    }

    /// The path reads the enrichment context (`context.…`), not the record.
    pub fn in_context(&self) -> bool {
        self.context
    }

    /// Every value at this path; arrays on the way are searched element-wise.
    pub fn values<'a>(&self, record: &'a Map<'a>, context: &'a Map<'a>) -> Vec<&'a Value<'a>> {
        let root = if self.context { context } else { record };
        let mut current: Vec<&Value> = match root.get(&self.parts[0]) {
            Some(v) => vec![v],
            None => return Vec::new(),
        };
        for part in &self.parts[1..] {
            let mut next = Vec::new();
            for v in current {
                collect(v, part, &mut next);
            }
            current = next;
        }
        current
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            })
            .filter(|v| !v.is_null())
            .collect()
    }
}

fn collect<'a>(v: &'a Value<'a>, key: &str, out: &mut Vec<&'a Value<'a>>) {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(key) {
                out.push(x);
            }
        }
        Value::Array(items) => {
            if let Ok(i) = key.parse::<usize>() {
                if let Some(x) = items.get(i) {
                    out.push(x);
                }
            } else {
                for item in items {
                    collect(item, key, out);
                }
            }
        }
        _ => {}
    }
}

/// A wildcard pattern (`*`, `?`), optionally case-insensitive.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    fold_dashes: bool,
    shape: Shape,
}

/// How a case-sensitive pattern can be matched without its glob: every record is tested
/// against dozens of patterns, and most are a name (`CreateUser`), a prefix (`Put*`), a
/// suffix (`*.CreateOauthClient`) or both around one star (`Put*Policy`), which a
/// comparison answers in a fraction of a glob match. Only the others compile their glob:
/// compiling builds a regex, and doing so for every rule's names was most of the time it
/// took to load the rules.
#[derive(Debug, Clone)]
enum Shape {
    Exact,
    /// A case-insensitive name (Entra activities), in lower case.
    ExactIgnoringCase(String),
    Prefix,
    Suffix,
    /// A prefix and a suffix around one star, at this byte.
    Around(usize),
    Glob(GlobMatcher),
}

impl Shape {
    fn of(text: &str, case_insensitive: bool, glob: &globset::Glob) -> Shape {
        let special = |t: &str| t.contains(['*', '?', '[', ']', '{', '}', '\\']);
        match (case_insensitive, special(text)) {
            (true, false) => return Shape::ExactIgnoringCase(fold(text).to_lowercase()),
            (true, true) => return Shape::Glob(glob.compile_matcher()),
            (false, false) => return Shape::Exact,
            (false, true) => {}
        }
        match (text.strip_suffix('*'), text.strip_prefix('*')) {
            (Some(prefix), _) if !special(prefix) => Shape::Prefix,
            (_, Some(suffix)) if !special(suffix) => Shape::Suffix,
            _ => match text.split_once('*') {
                Some((prefix, suffix)) if !special(prefix) && !special(suffix) => {
                    Shape::Around(prefix.len())
                }
                _ => Shape::Glob(glob.compile_matcher()),
            },
        }
    }
}

impl Pattern {
    pub fn new(text: &str, case_insensitive: bool) -> Result<Pattern, globset::Error> {
        let fold_dashes = case_insensitive;
        let source = if fold_dashes {
            fold(text)
        } else {
            text.to_string()
        };
        // Built for every pattern, so a malformed one is refused whatever its shape.
        let glob = GlobBuilder::new(&source)
            .case_insensitive(case_insensitive)
            .literal_separator(false)
            .backslash_escape(true)
            .build()?;
        Ok(Pattern {
            text: text.to_string(),
            fold_dashes,
            shape: Shape::of(text, case_insensitive, &glob),
        })
    }

    pub fn is_literal(&self) -> bool {
        !self.text.contains(['*', '?', '[', '{'])
    }

    pub fn matches(&self, s: &str) -> bool {
        let matcher = match &self.shape {
            Shape::Exact => return s == self.text,
            Shape::ExactIgnoringCase(lower) => return fold(s.trim()).to_lowercase() == *lower,
            Shape::Prefix => return s.starts_with(&self.text[..self.text.len() - 1]),
            Shape::Suffix => return s.ends_with(&self.text[1..]),
            // The length keeps the prefix and the suffix from sharing bytes.
            Shape::Around(star) => {
                return s.len() >= self.text.len() - 1
                    && s.starts_with(&self.text[..*star])
                    && s.ends_with(&self.text[star + 1..])
            }
            Shape::Glob(m) => m,
        };
        if !self.fold_dashes {
            return matcher.is_match(s);
        }
        let s = s.trim();
        if s.contains(DASHES) {
            matcher.is_match(fold(s))
        } else {
            matcher.is_match(s)
        }
    }
}

/// Entra writes activity names with en dashes and trailing spaces; rule authors type
/// hyphens.
const DASHES: [char; 2] = ['\u{2013}', '\u{2014}'];

fn fold(s: &str) -> String {
    s.replace(DASHES, "-")
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    pub field: FieldPath,
    pub op: Op,
    pub value: Option<Value<'static>>,
    pub glob: Option<Pattern>,
}

impl Condition {
    /// Evaluate against a record's fields; `account` is the event's own account, used by
    /// `foreign_principal`.
    pub fn holds(&self, record: &Map<'_>, context: &Map<'_>, account: Option<&str>) -> bool {
        let values = self.field.values(record, context);
        match self.op {
            Op::Exists => !values.is_empty(),
            Op::Missing => values.is_empty(),
            Op::NotEquals => !values.iter().any(|v| self.equals(v)),
            Op::Equals => values.iter().any(|v| self.equals(v)),
            Op::In => values.iter().any(|v| {
                self.value
                    .as_ref()
                    .and_then(Value::as_array)
                    .is_some_and(|opts| opts.iter().any(|o| loosely_equal(v, o)))
            }),
            Op::Glob => values.iter().any(|v| {
                v.as_str()
                    .zip(self.glob.as_ref())
                    .is_some_and(|(s, g)| g.matches(s))
            }),
            Op::Contains => values.iter().any(|v| {
                let needle = self.value.as_ref().and_then(Value::as_str).unwrap_or("");
                match v {
                    Value::String(s) => s.contains(needle),
                    other => other.to_string().contains(needle),
                }
            }),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => values.iter().any(|v| {
                let (Some(a), Some(b)) = (number(v), self.value.as_ref().and_then(number)) else {
                    return false;
                };
                match self.op {
                    Op::Gt => a > b,
                    Op::Gte => a >= b,
                    Op::Lt => a < b,
                    _ => a <= b,
                }
            }),
            Op::ForeignPrincipal => values
                .iter()
                .any(|v| is_foreign_principal(v, account) || grants_foreign(v, account)),
        }
    }

    fn equals(&self, v: &Value<'_>) -> bool {
        self.value
            .as_ref()
            .is_some_and(|want| loosely_equal(v, want))
    }
}

/// Equal as JSON, or equal as text when one side is a string (CloudTrail writes some
/// booleans and numbers as strings).
fn loosely_equal(a: &Value<'_>, b: &Value<'_>) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::String(s), Value::Bool(b)) | (Value::Bool(b), Value::String(s)) => {
            s.eq_ignore_ascii_case(if *b { "true" } else { "false" })
        }
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.parse::<f64>().ok() == n.as_f64()
        }
        _ => false,
    }
}

fn number(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Does any policy document in `v` (an object with `Statement`, or JSON text holding one,
/// searched recursively) allow a principal outside `account`?
pub fn grants_foreign(v: &Value<'_>, account: Option<&str>) -> bool {
    match v {
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                Value::parse(s).is_ok_and(|doc| grants_foreign(&doc, account))
            } else {
                false
            }
        }
        Value::Array(items) => items.iter().any(|i| grants_foreign(i, account)),
        Value::Object(m) => {
            if m.contains_key("Principal") && statement_grants_foreign(v, account) {
                return true;
            }
            if let Some(statements) = m.get("Statement") {
                let list: Vec<&Value> = match statements {
                    Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                if list.iter().any(|s| statement_grants_foreign(s, account)) {
                    return true;
                }
            }
            m.values().any(|x| grants_foreign(x, account))
        }
        _ => false,
    }
}

/// A field that holds a principal itself (Lambda's `principal`): `*`, or an account id or
/// ARN of another account.
fn is_foreign_principal(v: &Value<'_>, account: Option<&str>) -> bool {
    v.as_str()
        .is_some_and(|p| p == "*" || principal_account(p).is_some_and(|a| Some(a) != account))
}

fn statement_grants_foreign(statement: &Value<'_>, account: Option<&str>) -> bool {
    let allows = statement
        .get("Effect")
        .and_then(Value::as_str)
        .is_none_or(|e| e.eq_ignore_ascii_case("allow"));
    if !allows {
        return false;
    }
    let Some(principal) = statement.get("Principal") else {
        return false;
    };
    principals(principal)
        .into_iter()
        .any(|p| p == "*" || principal_account(p).is_some_and(|a| Some(a) != account))
}

/// AWS principals of a policy `Principal` (`"*"`, `{"AWS": …}`); service and federated
/// principals are not accounts.
fn principals<'v>(p: &'v Value<'_>) -> Vec<&'v str> {
    match p {
        Value::String(s) => vec![s.as_str()],
        Value::Object(m) => match m.get("AWS") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The account of a principal: a bare 12-digit id or the account field of an ARN.
fn principal_account(p: &str) -> Option<&str> {
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Some(p);
    }
    let mut parts = p.split(':');
    if parts.next() != Some("arn") {
        return None;
    }
    parts.nth(3).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::tree::json;

    #[test]
    fn foreign_principals() {
        let trust = |p: Value| json!({"Statement": [{"Effect": "Allow", "Principal": p, "Action": "sts:AssumeRole"}]});
        let own = Some("111111111111");
        assert!(!grants_foreign(
            &trust(json!({"AWS": "arn:aws:iam::111111111111:root"})),
            own
        ));
        assert!(grants_foreign(
            &trust(json!({"AWS": "arn:aws:iam::222222222222:root"})),
            own
        ));
        assert!(grants_foreign(
            &trust(json!({"AWS": ["111111111111", "222222222222"]})),
            own
        ));
        assert!(grants_foreign(&trust(json!("*")), own));
        assert!(!grants_foreign(
            &trust(json!({"Service": "ec2.amazonaws.com"})),
            own
        ));
        let text = Value::from(trust(json!({"AWS": "222222222222"})).to_string());
        assert!(grants_foreign(&json!({"policyDocument": text}), own));
        let deny = json!({"Statement": {"Effect": "Deny", "Principal": "*"}});
        assert!(!grants_foreign(&deny, own));
    }

    #[test]
    fn patterns() {
        let p = Pattern::new("CreateFunction*", false).unwrap();
        assert!(p.matches("CreateFunction20150331"));
        assert!(!p.matches("createfunction20150331"));
        let a = Pattern::new(
            "Update application - Certificates and secrets management",
            true,
        )
        .unwrap();
        assert!(a.matches("Update application \u{2013} Certificates and secrets management "));
    }

    #[test]
    fn names_prefixes_and_suffixes_match_as_their_globs_do() {
        let texts = [
            "CreateUser",
            "CreateUserX",
            "createuser",
            "Create",
            "Put",
            "PutBucketPolicy",
            "Put*",
            "",
            "a/b",
            "google.iam.admin.v1.CreateUser",
            "PutPolicy",
            "PutRolePolicy",
            "PutPolicyX",
            "CreateUserUser",
            "Abc",
            "Abbc",
            "A/b/bc",
        ];
        let kind = |shape: &Shape| match shape {
            Shape::Exact => "exact",
            Shape::ExactIgnoringCase(_) => "exact, any case",
            Shape::Prefix => "prefix",
            Shape::Suffix => "suffix",
            Shape::Around(_) => "around",
            Shape::Glob(_) => "glob",
        };
        for (pattern, shape) in [
            ("CreateUser", "exact"),
            ("Put*", "prefix"),
            ("*", "prefix"),
            ("*User", "suffix"),
            ("*.CreateUser", "suffix"),
            ("*Put*", "glob"),
            ("Create*User", "around"),
            ("Put*Policy", "around"),
            ("Ab*bc", "around"),
            ("Put*Policy*", "glob"),
            ("Put?", "glob"),
            ("Put\\*", "glob"),
            ("[CP]ut*", "glob"),
        ] {
            let p = Pattern::new(pattern, false).unwrap();
            assert_eq!(kind(&p.shape), shape, "{pattern}");
            let glob = GlobBuilder::new(pattern)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .unwrap()
                .compile_matcher();
            for text in texts {
                assert_eq!(
                    p.matches(text),
                    glob.is_match(text),
                    "{pattern} against {text}"
                );
            }
        }
        let folded = Pattern::new("Update application - Certificates", true).unwrap();
        assert_eq!(kind(&folded.shape), "exact, any case");
        assert!(folded.matches("update APPLICATION \u{2013} certificates "));
        assert!(!folded.matches("Update application - Certificates and secrets"));
        let wild = Pattern::new("Add * to role", true).unwrap();
        assert_eq!(kind(&wild.shape), "glob");
        assert!(wild.matches("add member to role"));
    }

    #[test]
    fn paths_search_arrays() {
        let rec = json!({"properties": {"targetResources": [{"type": "User"}, {"type": "Role", "displayName": "Global Administrator"}]}});
        let rec = rec.as_object().unwrap();
        let ctx = Map::new();
        let p = FieldPath::parse("properties.targetResources.displayName");
        assert_eq!(p.values(rec, &ctx), vec![&json!("Global Administrator")]);
        let p = FieldPath::parse("properties.targetResources.0.type");
        assert_eq!(p.values(rec, &ctx), vec![&json!("User")]);
    }
}
