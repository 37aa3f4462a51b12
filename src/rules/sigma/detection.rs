//! A Sigma search (`selection:` and the like) compiled once: field tests with their
//! modifiers and values, evaluated on the vendor's own record.
//!
//! Values follow the specification: case-insensitive unless `|cased`, `*` and `?` as
//! wildcards with `\` escaping them, a list of values is any one of them (all of them
//! with `|all`), a list of maps is any one map, and within a map every field must match.

use base64::Engine;
use memchr::memmem;
use regex::Regex;
use regex_syntax::hir::{Hir, HirKind};
use serde_json::{Map, Value};

use crate::transforms::decode::tree;

use super::fields::{self, Field};
use super::Scope;

/// One search of a rule.
#[derive(Debug)]
pub enum Search {
    /// Any one map, each map's fields all matching.
    Maps(Vec<Vec<FieldTest>>),
    /// Keywords: any one value found in any text field of the record.
    Keywords(Vec<TextPattern>),
}

/// A field, its modifiers and the values it is compared with.
#[derive(Debug)]
pub struct FieldTest {
    field: Field,
    all: bool,
    values: Vec<Test>,
    /// The values in lower case when each is a whole text with no wildcard: what the
    /// field must equal, ignoring case, for the test to hold (an index key).
    literals: Option<Vec<String>>,
}

#[derive(Debug)]
enum Test {
    /// `null`: the field is missing or null.
    Null,
    Exists(bool),
    /// A value with no wildcard, compared without a regex: most of SigmaHQ's values are
    /// names (`CreateAccessKey`), and a regex per test cost more than the rest of Sigma.
    Plain(Plain),
    Text(TextPattern),
    Number(Cmp, f64),
    Cidr(std::net::IpAddr, u8),
    FieldRef(Vec<String>),
}

/// A regular expression, and bytes that every text it matches holds, when it has such:
/// looking for them first rules out most texts at a fraction of the search's cost.
/// SigmaHQ's `userIdentity.arn|re: '.+:assumed-role/aws:.+'` is tried on every CloudTrail
/// record, and the search cost it more than the rest of the record's Sigma matching.
#[derive(Debug)]
pub struct TextPattern {
    re: Regex,
    /// Boxed: a finder is larger than the other tests a value can be.
    needs: Option<Box<memmem::Finder<'static>>>,
}

impl TextPattern {
    fn new(pattern: &str) -> Result<TextPattern, regex::Error> {
        let re = Regex::new(pattern)?;
        // Parsed as the regex crate parses it, with its default settings.
        let needs = regex_syntax::parse(pattern)
            .ok()
            .and_then(|hir| required(&hir).map(|b| Box::new(memmem::Finder::new(b).into_owned())));
        Ok(TextPattern { re, needs })
    }

    fn is_match(&self, text: &str) -> bool {
        self.needs
            .as_ref()
            .is_none_or(|needs| needs.find(text.as_bytes()).is_some())
            && self.re.is_match(text)
    }
}

/// The longest run of literal bytes that every match of `hir` holds: the expression
/// itself when it is a literal, else the longest literal among the parts it concatenates.
/// Letters compared ignoring case are classes, not literals, so they are never required.
fn required(hir: &Hir) -> Option<&[u8]> {
    match hir.kind() {
        HirKind::Literal(literal) => Some(&literal.0),
        HirKind::Capture(capture) => required(&capture.sub),
        HirKind::Concat(parts) => parts.iter().filter_map(required).max_by_key(|b| b.len()),
        _ => None,
    }
}

#[derive(Debug)]
struct Plain {
    /// In lower case unless `cased`; ASCII whenever case is ignored.
    text: String,
    anchor: Anchor,
    cased: bool,
}

impl Plain {
    /// The plain test for a value, when it has no wildcard and its case can be folded
    /// byte by byte.
    fn of(text: &str, anchor: Anchor, cased: bool) -> Option<Plain> {
        if text.contains(['*', '?', '\\']) || !(cased || text.is_ascii()) {
            return None;
        }
        Some(Plain {
            text: if cased {
                text.to_string()
            } else {
                text.to_ascii_lowercase()
            },
            anchor,
            cased,
        })
    }

    fn matches(&self, s: &str) -> bool {
        let (hay, needle) = (s.as_bytes(), self.text.as_bytes());
        let same = |a: &[u8]| {
            if self.cased {
                a == needle
            } else {
                a.eq_ignore_ascii_case(needle)
            }
        };
        let n = needle.len();
        match self.anchor {
            Anchor::Whole => hay.len() == n && same(hay),
            Anchor::Starts => hay.len() >= n && same(&hay[..n]),
            Anchor::Ends => hay.len() >= n && same(&hay[hay.len() - n..]),
            Anchor::Contains => n == 0 || hay.windows(n).any(same),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Which text test a value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Whole,
    Contains,
    Starts,
    Ends,
}

impl Search {
    /// Compile a search's YAML value, for rules on the records of `scope`.
    pub fn compile(value: &Value, scope: Scope) -> Result<Search, String> {
        match value {
            Value::Object(map) => Ok(Search::Maps(vec![compile_map(map, scope)?])),
            Value::Array(items) if items.iter().all(Value::is_object) => Ok(Search::Maps(
                items
                    .iter()
                    .filter_map(Value::as_object)
                    .map(|m| compile_map(m, scope))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Array(items) => Ok(Search::Keywords(
                items
                    .iter()
                    .map(|v| text_regex(&[scalar_text(v)?], Anchor::Contains, false))
                    .collect::<Result<_, _>>()?,
            )),
            Value::String(s) => Ok(Search::Keywords(vec![text_regex(
                std::slice::from_ref(s),
                Anchor::Contains,
                false,
            )?])),
            other => Err(format!("a search must be a map or a list, found {other}")),
        }
    }

    /// The fields that every alternative of the search tests against whole values, each
    /// with those values in lower case: a record whose field holds none of them fails
    /// the search.
    pub fn literal_fields(&self) -> Vec<(&[String], Vec<String>)> {
        let Search::Maps(maps) = self else {
            return Vec::new();
        };
        let Some(first) = maps.first() else {
            return Vec::new();
        };
        first
            .iter()
            .filter_map(|test| test.field.path())
            .filter_map(|path| {
                let mut values = Vec::new();
                for fields in maps {
                    let test = fields
                        .iter()
                        .find(|f| f.field.path() == Some(path) && !f.all)?;
                    values.extend(test.literals.clone()?);
                }
                Some((path, values))
            })
            .collect()
    }

    pub fn matches(&self, record: &tree::Map<'_>) -> bool {
        match self {
            Search::Maps(maps) => maps
                .iter()
                .any(|fields| fields.iter().all(|f| f.matches(record))),
            Search::Keywords(words) => words.iter().any(|w| any_text(record, w)),
        }
    }
}

fn any_text(map: &tree::Map<'_>, re: &TextPattern) -> bool {
    fn walk(v: &tree::Value<'_>, re: &TextPattern) -> bool {
        match v {
            tree::Value::String(s) => re.is_match(s),
            tree::Value::Array(items) => items.iter().any(|i| walk(i, re)),
            tree::Value::Object(m) => m.values().any(|i| walk(i, re)),
            _ => false,
        }
    }
    map.values().any(|v| walk(v, re))
}

fn compile_map(map: &Map<String, Value>, scope: Scope) -> Result<Vec<FieldTest>, String> {
    map.iter()
        .map(|(k, v)| FieldTest::compile(k, v, scope))
        .collect()
}

impl FieldTest {
    fn compile(key: &str, value: &Value, scope: Scope) -> Result<FieldTest, String> {
        let mut parts = key.split('|');
        let field = fields::field(scope, parts.next().unwrap_or_default())
            .map_err(|why| format!("`{key}`: {why}"))?;
        let (mut anchor, mut all, mut cased, mut re, mut cidr, mut exists, mut fieldref) =
            (Anchor::Whole, false, false, false, false, false, false);
        let mut cmp = None;
        let mut transform: Option<&str> = None;
        let mut re_flags = String::new();
        for m in parts {
            match m {
                "contains" => anchor = Anchor::Contains,
                "startswith" => anchor = Anchor::Starts,
                "endswith" => anchor = Anchor::Ends,
                "all" => all = true,
                "cased" => cased = true,
                "re" => re = true,
                "cidr" => cidr = true,
                "exists" => exists = true,
                "fieldref" => fieldref = true,
                "gt" => cmp = Some(Cmp::Gt),
                "gte" => cmp = Some(Cmp::Gte),
                "lt" => cmp = Some(Cmp::Lt),
                "lte" => cmp = Some(Cmp::Lte),
                "windash" | "base64" | "base64offset" => transform = Some(m),
                // Flags for `re`, which the regex crate takes inline.
                "i" | "m" | "s" if re => re_flags.push_str(m),
                other => return Err(format!("`{key}`: unknown modifier `{other}`")),
            }
        }
        let items: Vec<&Value> = match value {
            Value::Array(list) => list.iter().collect(),
            v => vec![v],
        };
        let plain = !(exists || fieldref || cmp.is_some() || re || cidr || transform.is_some())
            && anchor == Anchor::Whole;
        let literals = items
            .iter()
            .map(|v| match v {
                Value::String(t) if plain && !t.contains(['*', '?', '\\']) => {
                    Some(t.to_lowercase())
                }
                _ => None,
            })
            .collect::<Option<Vec<String>>>();
        let mut values = Vec::new();
        for item in items {
            if exists {
                let Value::Bool(b) = item else {
                    return Err(format!("`{key}`: `exists` takes true or false"));
                };
                values.push(Test::Exists(*b));
                continue;
            }
            if item.is_null() {
                values.push(Test::Null);
                continue;
            }
            let text = scalar_text(item).map_err(|e| format!("`{key}`: {e}"))?;
            if fieldref {
                values.push(Test::FieldRef(
                    text.split('.').map(str::to_string).collect(),
                ));
            } else if let Some(c) = cmp {
                let n = text
                    .parse::<f64>()
                    .map_err(|_| format!("`{key}`: `{text}` is not a number"))?;
                values.push(Test::Number(c, n));
            } else if re {
                let flags = if re_flags.is_empty() {
                    String::new()
                } else {
                    format!("(?{re_flags})")
                };
                let r = TextPattern::new(&format!("{flags}{text}"))
                    .map_err(|e| format!("`{key}`: bad regular expression: {e}"))?;
                values.push(Test::Text(r));
            } else if cidr {
                let (ip, bits) = text
                    .split_once('/')
                    .and_then(|(ip, bits)| Some((ip.parse().ok()?, bits.parse().ok()?)))
                    .ok_or_else(|| format!("`{key}`: `{text}` is not a CIDR range"))?;
                values.push(Test::Cidr(ip, bits));
            } else {
                // An encoded value is found inside the field.
                let a = match transform {
                    Some("base64offset") => Anchor::Contains,
                    _ => anchor,
                };
                // The forms a transform makes of one value are alternatives: one test, so
                // that `|all` still asks for every value, not for every form.
                let plain = transform.is_none().then(|| Plain::of(&text, a, cased));
                values.push(match plain.flatten() {
                    Some(p) => Test::Plain(p),
                    None => Test::Text(text_regex(&transformed(&text, transform), a, cased)?),
                });
            }
        }
        Ok(FieldTest {
            field,
            all,
            values,
            literals,
        })
    }

    fn matches(&self, record: &tree::Map<'_>) -> bool {
        let found = self.field.values(record);
        let one = |t: &Test| match t {
            Test::Null => found.iter().all(|v| v.is_null()),
            Test::Exists(want) => found.iter().any(|v| !v.is_null()) == *want,
            Test::FieldRef(other) => {
                let theirs = fields::resolve(record, other);
                found.iter().any(|v| theirs.contains(&v.as_ref()))
            }
            _ => found.iter().any(|v| test_value(t, v)),
        };
        if self.all {
            self.values.iter().all(one)
        } else {
            self.values.iter().any(one)
        }
    }
}

fn test_value(t: &Test, v: &tree::Value<'_>) -> bool {
    use tree::Value;
    match (t, v) {
        (Test::Plain(p), Value::String(s)) => p.matches(s),
        (Test::Plain(p), Value::Number(_) | Value::Bool(_)) => p.matches(&v.to_string()),
        (Test::Text(re), Value::String(s)) => re.is_match(s),
        (Test::Text(re), Value::Number(_) | Value::Bool(_)) => re.is_match(&v.to_string()),
        (Test::Number(c, n), _) => {
            let x = match v {
                Value::Number(x) => x.as_f64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            x.is_some_and(|x| match c {
                Cmp::Gt => x > *n,
                Cmp::Gte => x >= *n,
                Cmp::Lt => x < *n,
                Cmp::Lte => x <= *n,
            })
        }
        (Test::Cidr(net, bits), Value::String(s)) => s
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| in_range(ip, *net, *bits)),
        _ => false,
    }
}

fn in_range(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u8) -> bool {
    use std::net::IpAddr::{V4, V6};
    match (ip, net) {
        (V4(a), V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (V6(a), V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn scalar_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("`{other}` is not a value to compare with")),
    }
}

/// The forms a value takes after `windash`, `base64` or `base64offset`.
fn transformed(text: &str, transform: Option<&str>) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    match transform {
        Some("windash") => ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"]
            .iter()
            .map(|dash| text.replace('-', dash))
            .collect(),
        Some("base64") => vec![engine.encode(text)],
        // The text at each of the three offsets a longer encoded string may hold it,
        // without the characters that depend on the bytes around it.
        Some("base64offset") => (0..3usize)
            .map(|offset| {
                let mut bytes = vec![0u8; offset];
                bytes.extend_from_slice(text.as_bytes());
                let encoded = engine.encode(&bytes);
                let start = [0, 2, 3][offset];
                let end = encoded.len() - [0, 3, 2][(text.len() + offset) % 3];
                encoded[start..end.max(start)].to_string()
            })
            .collect(),
        _ => vec![text.to_string()],
    }
}

/// The forms of a value as one regular expression, any form matching: `*` any text, `?`
/// one character, `\*`, `\?` and `\\` themselves.
fn text_regex(forms: &[String], anchor: Anchor, cased: bool) -> Result<TextPattern, String> {
    let mut body = String::from("(?:");
    for (i, text) in forms.iter().enumerate() {
        if i > 0 {
            body.push('|');
        }
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                    body.push_str(&regex::escape(&chars.next().unwrap_or('\\').to_string()));
                }
                '*' => body.push_str(".*"),
                '?' => body.push('.'),
                c => body.push_str(&regex::escape(&c.to_string())),
            }
        }
    }
    body.push(')');
    let (start, end) = match anchor {
        Anchor::Whole => ("^", "$"),
        Anchor::Contains => ("", ""),
        Anchor::Starts => ("^", ""),
        Anchor::Ends => ("", "$"),
    };
    let flags = if cased { "(?s)" } else { "(?is)" };
    TextPattern::new(&format!("{flags}{start}{body}{end}")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn search(yaml_like: Value) -> Search {
        Search::compile(&yaml_like, Scope::CloudTrail).unwrap()
    }

    fn record(v: Value) -> tree::Map<'static> {
        match tree::Value::from(v) {
            tree::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// One case per modifier, after the Sigma specification's examples.
    #[test]
    fn modifiers_of_the_specification() {
        let r = record(json!({
            "CommandLine": "C:\\Windows\\System32\\cmd.exe /c whoami /all",
            "eventName": "CreateAccessKey",
            "sourceIPAddress": "10.1.2.3",
            "count": 7,
            "multi": "first\nsecond",
            "userIdentity": {"type": "Root", "arn": "arn:aws:iam::111122223333:root"},
            "requestParameters": {"policyDocument": "{\"Effect\":\"Allow\"}"},
            "encoded": "cGF5bG9hZDpldmlsIGNvbW1hbmQ=",
            "resources": [{"type": "AWS::IAM::User"}, {"type": "AWS::IAM::AccessKey"}],
            "errorCode": null
        }));
        let m = |v: Value| search(v).matches(&r);
        assert!(
            m(json!({"eventName": "createaccesskey"})),
            "case-insensitive"
        );
        assert!(!m(json!({"eventName|cased": "createaccesskey"})));
        assert!(m(json!({"eventName|contains": "Access"})));
        assert!(m(json!({"eventName|startswith": "Create"})));
        assert!(m(json!({"eventName|endswith": "Key"})));
        assert!(m(
            json!({"CommandLine|contains|all": ["cmd.exe", "whoami"]})
        ));
        assert!(!m(
            json!({"CommandLine|contains|all": ["cmd.exe", "net user"]})
        ));
        assert!(m(json!({"CommandLine|windash|contains": "-all"})));
        assert!(
            m(json!({"CommandLine|windash|contains|all": ["-all", "whoami"]})),
            "`all` over the values, each in any of its forms"
        );
        assert!(m(json!({"CommandLine|re|i": "WHOAMI /ALL$"})));
        assert!(
            !m(json!({"CommandLine|re": "WHOAMI"})),
            "`re` is case-sensitive"
        );
        assert!(m(json!({"multi|re|s": "first.second"})), "`s`: `.` is any");
        assert!(!m(json!({"multi|re": "first.second"})));
        assert!(
            m(json!({"multi|re|m": "^second$"})),
            "`m`: `^`/`$` per line"
        );
        assert!(!m(json!({"multi|re": "^second$"})));
        assert!(m(json!({"eventName|re": "^Create(Access|Login)"})));
        assert!(m(json!({"sourceIPAddress|cidr": "10.0.0.0/8"})));
        assert!(!m(json!({"sourceIPAddress|cidr": "192.168.0.0/16"})));
        assert!(m(json!({"count|gt": 5})) && m(json!({"count|lte": 7})));
        assert!(!m(json!({"count|lt": 7})));
        assert!(m(json!({"userIdentity.type|exists": true})));
        assert!(m(json!({"missing|exists": false})));
        assert!(m(json!({"errorCode": null})) && m(json!({"missing": null})));
        assert!(m(json!({"encoded|base64": "payload:evil command"})));
        assert!(m(json!({"encoded|base64offset|contains": "evil"})));
        assert!(m(json!({"userIdentity.arn|endswith": ":root"})), "nested");
        assert!(
            m(json!({"resources.type": "AWS::IAM::AccessKey"})),
            "arrays"
        );
        assert!(m(
            json!({"requestParameters.policyDocument|contains": "\"Allow\""})
        ));
        assert!(
            m(json!({"eventName": ["DeleteUser", "Create*Key"]})),
            "wildcard"
        );
        assert!(m(json!({"eventName": "CreateAccess???"})));
        assert!(!m(json!({"eventName": "Create\\*"})), "escaped wildcard");
        assert!(
            m(json!([{"eventName": "nope"}, {"count": 7}])),
            "list of maps"
        );
        assert!(m(json!(["whoami"])), "keywords");
        assert!(m(json!({"eventName|fieldref": "eventName"})));
        assert!(
            Search::compile(&json!({"eventName|sounds_like": "x"}), Scope::CloudTrail)
                .unwrap_err()
                .contains("unknown modifier `sounds_like`")
        );
    }

    /// A value without wildcards is compared without a regex, exactly as its regex would.
    #[test]
    fn plain_values_match_as_their_regexes_do() {
        let hays = [
            "CreateAccessKey",
            "createaccesskey",
            "xCreateAccessKeyx",
            "Create",
            "",
        ];
        for anchor in [
            Anchor::Whole,
            Anchor::Contains,
            Anchor::Starts,
            Anchor::Ends,
        ] {
            for cased in [false, true] {
                for value in ["CreateAccessKey", "access", "Create", ""] {
                    let plain = Plain::of(value, anchor, cased).unwrap();
                    let re = text_regex(&[value.to_string()], anchor, cased).unwrap();
                    for hay in hays {
                        assert_eq!(
                            plain.matches(hay),
                            re.is_match(hay),
                            "{value:?} {anchor:?} cased={cased} on {hay:?}"
                        );
                    }
                }
            }
        }
        assert!(Plain::of("Create*", Anchor::Whole, false).is_none());
        assert!(
            Plain::of("Grüße", Anchor::Whole, false).is_none(),
            "non-ASCII folds by regex"
        );
        assert!(Plain::of("Grüße", Anchor::Whole, true).is_some());
    }

    #[test]
    fn azure_columns_are_found_whatever_their_case_and_under_properties() {
        let r = record(json!({"operationName": "Add user", "properties": {"result": "success"}}));
        let s = Search::compile(
            &json!({"OperationName": "Add user", "Result": "success"}),
            Scope::EntraAudit,
        );
        assert!(s.unwrap().matches(&r));
    }

    /// The bytes a pattern cannot match without are its literal runs, never letters
    /// compared ignoring case; looking for them first changes no answer.
    #[test]
    fn a_pattern_is_looked_for_by_the_bytes_it_needs_and_answers_as_its_regex() {
        let needs = |pattern: &str| {
            let hir = regex_syntax::parse(pattern).unwrap();
            required(&hir).map(|b| String::from_utf8(b.to_vec()).unwrap())
        };
        assert_eq!(
            needs(".+:assumed-role/aws:.+").as_deref(),
            Some(":assumed-role/aws:")
        );
        assert_eq!(needs("(?s)^(?:abc)$").as_deref(), Some("abc"));
        assert_eq!(needs("(x)y.*longer").as_deref(), Some("longer"));
        assert_eq!(needs("(?is)^(?:ab.*)$"), None);
        assert_eq!(needs("(?is)(?:a-b)").as_deref(), Some("-"));
        assert_eq!(needs("a|b"), None);
        assert_eq!(needs("(?:ab)?c").as_deref(), Some("c"));

        let arn = TextPattern::new(".+:assumed-role/aws:.+").unwrap();
        assert!(arn.needs.is_some());
        for (text, want) in [
            ("arn:aws:sts::1:assumed-role/aws:ec2-instance/i-1", true),
            (":assumed-role/aws:x", false),
            ("arn:aws:sts::1:assumed-role/admin/alice", false),
            ("arn:aws:sts::1:ASSUMED-ROLE/aws:x", false),
            ("", false),
        ] {
            assert_eq!(arn.is_match(text), want, "{text}");
            assert_eq!(arn.re.is_match(text), want, "{text}");
        }
        let folded = text_regex(&["*Assumed-Role*".to_string()], Anchor::Contains, false).unwrap();
        assert!(folded.is_match("arn:aws:sts::1:ASSUMED-ROLE/x"));
        assert!(!folded.is_match("arn:aws:sts::1:assumed_role/x"));
    }
}
