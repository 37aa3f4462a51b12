//! Detection rules as data: which CloudTrail call or Entra activity is which MITRE ATT&CK
//! technique. Rules are TOML files (`config/rules/`), validated at load time (unknown keys,
//! unknown or retired technique ids and bad patterns are errors with file and line), and
//! matched through an event-name index so most records are checked against few rules.

pub mod attack;
pub mod condition;
pub mod coverage;
pub mod model;
pub mod sigma;
pub mod testing;

use rustc_hash::FxHashMap as HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::transforms::decode::tree::{Map, Value};

use crate::transforms::decode::SourceRecord;
use attack::{Tactic, Technique};
use condition::{Condition, FieldPath, Pattern};
use model::{ConditionSpec, ProviderName, RuleFile, RuleSpec, Severity};
use serde::Deserialize;
use sigma::{Detection, SigmaRule, SigmaSet, ValueIndex};

/// The rule files built into the binary, so the default pipeline tags without any setup.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "config/rules/aws-iam.toml",
        include_str!("../../config/rules/aws-iam.toml"),
    ),
    (
        "config/rules/aws-compute.toml",
        include_str!("../../config/rules/aws-compute.toml"),
    ),
    (
        "config/rules/aws-serverless.toml",
        include_str!("../../config/rules/aws-serverless.toml"),
    ),
    (
        "config/rules/aws-storage-dns.toml",
        include_str!("../../config/rules/aws-storage-dns.toml"),
    ),
    (
        "config/rules/entra.toml",
        include_str!("../../config/rules/entra.toml"),
    ),
    (
        "config/rules/azure-activity.toml",
        include_str!("../../config/rules/azure-activity.toml"),
    ),
    (
        "config/rules/gcp.toml",
        include_str!("../../config/rules/gcp.toml"),
    ),
];

/// A rule file problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// A test event carried by a rule.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    pub expect: bool,
    pub event: String,
    pub context: Map<'static>,
}

/// A validated, compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub provider: ProviderName,
    pub techniques: Vec<Technique>,
    pub tactics: Vec<Tactic>,
    pub file: String,
    matcher: Matcher,
    pub tests: Vec<RuleTest>,
}

/// How a rule decides: one of ours, or a Sigma detection.
#[derive(Debug, Clone)]
enum Matcher {
    Native(Box<Native>),
    Sigma(Arc<Detection>),
}

/// The match of one of our rule files.
#[derive(Debug, Clone)]
struct Native {
    event_source: Vec<Pattern>,
    event_name: Vec<Pattern>,
    category: Vec<Pattern>,
    activity: Vec<Pattern>,
    all: Vec<Condition>,
    any: Vec<Condition>,
}

impl Rule {
    /// The rule set the rule comes from (ECS `rule.ruleset`).
    pub fn ruleset(&self) -> &'static str {
        match self.matcher {
            Matcher::Native(_) => "auditbridge",
            Matcher::Sigma(_) => "sigma",
        }
    }

    /// A Sigma rule's own id (ECS `rule.uuid`).
    pub fn sigma_id(&self) -> Option<&str> {
        match &self.matcher {
            Matcher::Sigma(_) => Some(&self.id),
            Matcher::Native(_) => None,
        }
    }

    /// A condition reads the enrichment context (`context.…`). Sigma rules read only the
    /// record.
    fn reads_context(&self) -> bool {
        match &self.matcher {
            Matcher::Native(n) => n.all.iter().chain(&n.any).any(|c| c.field.in_context()),
            Matcher::Sigma(_) => false,
        }
    }
}

/// Why a rule did or did not match one record, for `rules test` diffs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub matched: bool,
    pub steps: Vec<(String, bool)>,
}

/// What every rule reads first, looked up once per record instead of once per rule.
struct Subject<'a> {
    record: &'a SourceRecord<'a>,
    /// `event_source`, `event_name`, `category`, `activity` ("" where the provider has none;
    /// a GCP record's service and method are its event source and name).
    values: [&'a str; 4],
}

impl<'a> Subject<'a> {
    fn of(record: &'a SourceRecord<'a>) -> Self {
        let values = match record {
            SourceRecord::CloudTrail(r) => [r.event_source(), r.event_name(), "", ""],
            SourceRecord::Azure(r) => ["", "", r.category(), r.activity()],
            SourceRecord::Gcp(r) => [r.service(), r.method(), "", ""],
        };
        Subject { record, values }
    }
}

impl Rule {
    /// Evaluate step by step; with `full`, every step is recorded even after a miss.
    /// `context` holds enrichment context (`context.…` fields).
    pub fn explain(&self, record: &SourceRecord, context: &Map<'_>, full: bool) -> Explanation {
        self.explain_subject(&Subject::of(record), context, full)
    }

    fn explain_subject(&self, subject: &Subject<'_>, context: &Map<'_>, full: bool) -> Explanation {
        let record = subject.record;
        let native = match &self.matcher {
            Matcher::Native(n) => n,
            Matcher::Sigma(detection) => {
                let matched = detection.matches(record);
                let steps = if full {
                    vec![(format!("Sigma rule {} matches", self.file), matched)]
                } else {
                    Vec::new()
                };
                return Explanation { matched, steps };
            }
        };
        let mut steps = Vec::new();
        let mut matched = true;
        // Labels are built only when asked for: matching runs for every record, and
        // formatting them there cost more than the matching itself.
        let mut step = |label: &dyn Fn() -> String, ok: bool, steps: &mut Vec<(String, bool)>| {
            matched &= ok;
            if full {
                steps.push((label(), ok));
            }
            matched || full
        };
        let provider_ok = matches!(
            (self.provider, record),
            (ProviderName::Aws, SourceRecord::CloudTrail(_))
                | (ProviderName::Azure, SourceRecord::Azure(_))
                | (ProviderName::Gcp, SourceRecord::Gcp(_))
        );
        if !step(
            &|| format!("provider is {:?}", self.provider),
            provider_ok,
            &mut steps,
        ) {
            return Explanation { matched, steps };
        }
        let any_of = |patterns: &[Pattern], value: &str| {
            patterns.is_empty() || patterns.iter().any(|p| p.matches(value))
        };
        let texts = |patterns: &[Pattern]| {
            patterns
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let keys: [(&str, &[Pattern]); 4] = [
            ("event_source", &native.event_source),
            ("event_name", &native.event_name),
            ("category", &native.category),
            ("activity", &native.activity),
        ];
        for ((key, patterns), value) in keys.into_iter().zip(subject.values) {
            if patterns.is_empty() {
                continue;
            }
            let label = || format!("{key} `{value}` matches {}", texts(patterns));
            if !step(&label, any_of(patterns, value), &mut steps) {
                return Explanation { matched, steps };
            }
        }
        // Only rules whose names matched get this far.
        let (fields, account) = match record {
            SourceRecord::CloudTrail(r) => (r.fields(), r.account_id()),
            SourceRecord::Azure(r) => (r.fields(), r.account()),
            SourceRecord::Gcp(r) => (r.fields(), r.project_id()),
        };
        for c in &native.all {
            if !step(
                &|| describe(c),
                c.holds(fields, context, account),
                &mut steps,
            ) {
                return Explanation { matched, steps };
            }
        }
        if !native.any.is_empty() {
            let ok = native.any.iter().any(|c| c.holds(fields, context, account));
            let label = || {
                format!(
                    "any of: {}",
                    native
                        .any
                        .iter()
                        .map(describe)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            step(&label, ok, &mut steps);
        }
        Explanation { matched, steps }
    }
}

fn describe(c: &Condition) -> String {
    match &c.value {
        Some(v) => format!("{} {:?} {v}", c.field.text, c.op),
        None => format!("{} {:?}", c.field.text, c.op),
    }
}

/// All loaded rules with the indexes used to find candidates quickly.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_event_name: HashMap<String, Vec<usize>>,
    /// CloudTrail rules whose event names are patterns, by the event sources they require:
    /// scanned for every record, they cost more than the rest of the matching.
    by_event_source: HashMap<String, Vec<usize>>,
    by_activity: HashMap<String, Vec<usize>>,
    /// CloudTrail Sigma rules by a field's value they require (lower case: Sigma
    /// compares values ignoring case), one table per field.
    sigma_by_value: Vec<(Vec<String>, ValueIndex)>,
    aws_scan: Vec<usize>,
    azure_scan: Vec<usize>,
    /// GCP rules by the method names they require.
    by_method: HashMap<String, Vec<usize>>,
    gcp_scan: Vec<usize>,
    /// Some rule reads the enrichment context.
    read_context: bool,
}

impl RuleSet {
    /// The rules built into the binary.
    pub fn builtin() -> Result<RuleSet, RuleError> {
        let files = BUILTIN
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string(), None))
            .collect();
        RuleSet::from_sources(files)
    }

    /// Every `*.toml` file of a directory, in name order.
    pub fn from_dir(dir: &Path) -> Result<RuleSet, RuleError> {
        let err = |message: String| RuleError {
            file: dir.display().to_string(),
            line: 0,
            message,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| err(format!("cannot read the rules directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(err("holds no *.toml rule files".into()));
        }
        let mut files = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| RuleError {
                file: p.display().to_string(),
                line: 0,
                message: e.to_string(),
            })?;
            files.push((p.display().to_string(), text, Some(dir.to_path_buf())));
        }
        RuleSet::from_sources(files)
    }

    /// Compile rule files given as (name, text, directory for test `path`s).
    pub fn from_sources(
        files: Vec<(String, String, Option<PathBuf>)>,
    ) -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::default();
        for (name, text, dir) in files {
            let file: RuleFile = toml::from_str(&text).map_err(|e| RuleError {
                file: name.clone(),
                line: e.span().map_or(0, |s| line_of(&text, s.start)),
                message: e.message().to_string(),
            })?;
            for spec in file.rule {
                let rule = compile(spec, &name, &text, dir.as_deref())?;
                if set.rules.iter().any(|r| r.id == rule.id) {
                    return Err(RuleError {
                        file: name.clone(),
                        line: 0,
                        message: format!("duplicate rule id `{}`", rule.id),
                    });
                }
                set.add(rule);
            }
        }
        Ok(set)
    }

    /// Add the Sigma rules of a set (their ids must not clash with loaded rules).
    pub fn add_sigma(&mut self, set: SigmaSet) -> Result<(), RuleError> {
        for sigma in set.rules {
            let SigmaRule {
                id,
                title,
                description,
                severity,
                techniques,
                tactics,
                file,
                tests,
                detection,
            } = sigma;
            if self.rules.iter().any(|r| r.id == id) {
                return Err(RuleError {
                    file: file.display().to_string(),
                    line: 0,
                    message: format!("duplicate rule id `{id}`"),
                });
            }
            self.add(Rule {
                id,
                title,
                description,
                severity,
                provider: detection.scope().provider(),
                techniques,
                tactics,
                file: file.display().to_string(),
                tests: tests
                    .into_iter()
                    .map(|(name, expect, event)| RuleTest {
                        name,
                        expect,
                        event,
                        context: Map::new(),
                    })
                    .collect(),
                matcher: Matcher::Sigma(Arc::new(detection)),
            });
        }
        Ok(())
    }

    /// The rules a `[rules]` section names: a directory or the built-in rules, and the
    /// Sigma rules of `sigma_dirs`. A Sigma rule that cannot be loaded is logged with its
    /// file, line and reason, and the others are used.
    pub fn load(config: &RulesConfig) -> Result<RuleSet, RuleError> {
        let mut set = match &config.dir {
            Some(dir) => RuleSet::from_dir(dir)?,
            None => RuleSet::builtin()?,
        };
        for dir in &config.sigma_dirs {
            let mut sigma = SigmaSet::load(dir).map_err(|e| RuleError {
                file: dir.display().to_string(),
                line: 0,
                message: format!("cannot read the Sigma rules: {e}"),
            })?;
            let before = sigma.rules.len();
            if let Some(min) = config.sigma_min_level {
                sigma.rules.retain(|r| r.severity >= min);
            }
            for u in &sigma.unsupported {
                tracing::warn!(rule = %u, "Sigma rule not loaded");
            }
            tracing::info!(
                dir = %dir.display(),
                loaded = sigma.rules.len(),
                unsupported = sigma.unsupported.len(),
                below_min_level = before - sigma.rules.len(),
                "Sigma rules"
            );
            set.add_sigma(sigma)?;
        }
        Ok(set)
    }

    fn add(&mut self, rule: Rule) {
        let i = self.rules.len();
        self.read_context |= rule.reads_context();
        let native = match &rule.matcher {
            Matcher::Native(native) => native,
            Matcher::Sigma(detection) => {
                match (detection.index_key(), rule.provider) {
                    (Some(key), _) => {
                        let at = match self.sigma_by_value.iter().position(|(p, _)| *p == key.path)
                        {
                            Some(at) => at,
                            None => {
                                self.sigma_by_value.push((key.path, ValueIndex::default()));
                                self.sigma_by_value.len() - 1
                            }
                        };
                        self.sigma_by_value[at].1.add(key.values, i);
                    }
                    (None, provider) => self.scan(provider).push(i),
                }
                self.rules.push(rule);
                return;
            }
        };
        let name = |p: &str| p.to_string();
        let indexed = match rule.provider {
            ProviderName::Aws => {
                index(&mut self.by_event_name, &native.event_name, name, i)
                    || index(&mut self.by_event_source, &native.event_source, name, i)
            }
            ProviderName::Azure => index(&mut self.by_activity, &native.activity, activity_key, i),
            ProviderName::Gcp => index(&mut self.by_method, &native.event_name, name, i),
        };
        if !indexed {
            self.scan(rule.provider).push(i);
        }
        self.rules.push(rule);
    }

    /// The rules of `provider` tried on every one of its records.
    fn scan(&mut self, provider: ProviderName) -> &mut Vec<usize> {
        match provider {
            ProviderName::Aws => &mut self.aws_scan,
            ProviderName::Azure => &mut self.azure_scan,
            ProviderName::Gcp => &mut self.gcp_scan,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Our rules tried on `record`: those listed under its event name or activity, those
    /// under its event source, and those tried on every record of its provider.
    fn candidates(&self, record: &SourceRecord<'_>) -> impl Iterator<Item = &usize> {
        let (indexed, by_source, scan) = match record {
            SourceRecord::CloudTrail(r) => (
                self.by_event_name.get(r.event_name()),
                self.by_event_source.get(r.event_source()),
                &self.aws_scan,
            ),
            SourceRecord::Azure(r) => (
                self.by_activity.get(&activity_key(r.activity())),
                None,
                &self.azure_scan,
            ),
            SourceRecord::Gcp(r) => (self.by_method.get(r.method()), None, &self.gcp_scan),
        };
        indexed.into_iter().chain(by_source).flatten().chain(scan)
    }

    /// A rule that reads the enrichment context (`context.…`) is tried on `record`. Key
    /// age makes the context only then: made for every record, it cost more than the rest
    /// of key age.
    pub fn may_read_context(&self, record: &SourceRecord<'_>) -> bool {
        self.read_context
            && self
                .candidates(record)
                .any(|&i| self.rules[i].reads_context())
    }

    /// The rules that match a record, in load order.
    pub fn evaluate(&self, record: &SourceRecord<'_>, context: &Map<'_>) -> Vec<&Rule> {
        self.matching(record, context)
            .into_iter()
            .map(|i| &self.rules[i])
            .collect()
    }

    /// The places in [`rules`](Self::rules) of the rules that match a record, in order.
    pub fn matching(&self, record: &SourceRecord<'_>, context: &Map<'_>) -> Vec<usize> {
        let subject = Subject::of(record);
        let mut sigma: Vec<&[usize]> = Vec::new();
        if let SourceRecord::CloudTrail(r) = record {
            for (path, index) in &self.sigma_by_value {
                index.lookup(path, r.fields(), &mut |rules| sigma.push(rules));
            }
        }
        let mut hits: Vec<usize> = self
            .candidates(record)
            .chain(sigma.into_iter().flatten())
            .copied()
            .filter(|&i| {
                self.rules[i]
                    .explain_subject(&subject, context, false)
                    .matched
            })
            .collect();
        hits.sort_unstable();
        hits.dedup();
        hits
    }
}

/// Lists rule `i` in `table` under each of `patterns`, by `key`, when every one is a plain
/// name; whether it did (a rule with a pattern among them is scanned instead).
fn index(
    table: &mut HashMap<String, Vec<usize>>,
    patterns: &[Pattern],
    key: impl Fn(&str) -> String,
    i: usize,
) -> bool {
    let names = !patterns.is_empty() && patterns.iter().all(Pattern::is_literal);
    if names {
        for p in patterns {
            table.entry(key(&p.text)).or_default().push(i);
        }
    }
    names
}

fn activity_key(s: &str) -> String {
    s.trim()
        .replace(['\u{2013}', '\u{2014}'], "-")
        .to_lowercase()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn compile(spec: RuleSpec, file: &str, text: &str, dir: Option<&Path>) -> Result<Rule, RuleError> {
    let err = |offset: usize, message: String| RuleError {
        file: file.to_string(),
        line: line_of(text, offset),
        message,
    };
    let at = spec.id.span().start;
    let id = spec.id.into_inner();
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(err(
            at,
            format!("rule id `{id}` must be non-empty letters, digits, `-`, `_` or `.`"),
        ));
    }
    let ctx = |m: String| format!("rule `{id}`: {m}");
    if spec.techniques.is_empty() {
        return Err(err(at, ctx("names no ATT&CK technique".into())));
    }
    let mut techniques = Vec::new();
    for t in &spec.techniques {
        techniques.push(
            attack::technique(t.get_ref()).map_err(|e| err(t.span().start, ctx(e.to_string())))?,
        );
    }
    let mut tactics: Vec<Tactic> = Vec::new();
    if spec.tactics.is_empty() {
        for t in &techniques {
            for short in &t.tactics {
                if let Some(tac) = attack::tactic(short) {
                    if !tactics.contains(&tac) {
                        tactics.push(tac);
                    }
                }
            }
        }
    } else {
        for t in &spec.tactics {
            let tac = attack::tactic(t.get_ref()).ok_or_else(|| {
                err(
                    t.span().start,
                    ctx(format!("unknown tactic `{}`", t.get_ref())),
                )
            })?;
            tactics.push(tac);
        }
    }
    let m = spec.matcher;
    let aws_keys = !m.event_source.is_empty() || !m.event_name.is_empty();
    let azure_keys = !m.category.is_empty() || !m.activity.is_empty();
    match spec.provider {
        ProviderName::Aws if azure_keys => {
            return Err(err(
                at,
                ctx(
                    "`category`/`activity` apply to azure rules; use `event_source`/`event_name`"
                        .into(),
                ),
            ))
        }
        ProviderName::Azure if aws_keys => {
            return Err(err(
                at,
                ctx(
                    "`event_source`/`event_name` apply to aws rules; use `category`/`activity`"
                        .into(),
                ),
            ))
        }
        ProviderName::Aws if m.event_name.is_empty() && m.event_source.is_empty() => {
            return Err(err(
                at,
                ctx("an aws rule needs `event_name` or `event_source`".into()),
            ))
        }
        ProviderName::Azure if m.activity.is_empty() && m.category.is_empty() => {
            return Err(err(
                at,
                ctx("an azure rule needs `activity` or `category`".into()),
            ))
        }
        _ => {}
    }
    let patterns = |list: &[toml::Spanned<String>], ci: bool| -> Result<Vec<Pattern>, RuleError> {
        list.iter()
            .map(|p| {
                Pattern::new(p.get_ref(), ci).map_err(|e| {
                    err(
                        p.span().start,
                        ctx(format!("bad pattern `{}`: {e}", p.get_ref())),
                    )
                })
            })
            .collect()
    };
    let conditions = |list: &[ConditionSpec]| -> Result<Vec<Condition>, RuleError> {
        list.iter().map(|c| condition(c, &err, &ctx)).collect()
    };
    let mut tests = Vec::new();
    for t in spec.tests {
        let event = match (t.event, t.path) {
            (Some(e), None) => e,
            (None, Some(p)) => {
                let base = dir.ok_or_else(|| {
                    err(
                        at,
                        ctx(format!(
                            "test `{}`: built-in rules carry their test events inline",
                            t.name
                        )),
                    )
                })?;
                std::fs::read_to_string(base.join(&p)).map_err(|e| {
                    err(
                        at,
                        ctx(format!("test `{}`: cannot read `{p}`: {e}", t.name)),
                    )
                })?
            }
            _ => {
                return Err(err(
                    at,
                    ctx(format!(
                        "test `{}` needs exactly one of `event` or `path`",
                        t.name
                    )),
                ))
            }
        };
        let context = t
            .context
            .map(|c| model::to_json(&toml::Value::Table(c)))
            .and_then(|v| match Value::from(v) {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .unwrap_or_default();
        tests.push(RuleTest {
            name: t.name,
            expect: t.expect,
            event,
            context,
        });
    }
    Ok(Rule {
        title: spec.title,
        description: spec.description,
        severity: spec.severity,
        provider: spec.provider,
        techniques,
        tactics,
        file: file.to_string(),
        matcher: Matcher::Native(Box::new(Native {
            event_source: patterns(&m.event_source, false)?,
            event_name: patterns(&m.event_name, false)?,
            category: patterns(&m.category, true)?,
            activity: patterns(&m.activity, true)?,
            all: conditions(&m.all)?,
            any: conditions(&m.any)?,
        })),
        tests,
        id,
    })
}

fn condition(
    c: &ConditionSpec,
    err: &dyn Fn(usize, String) -> RuleError,
    ctx: &dyn Fn(String) -> String,
) -> Result<Condition, RuleError> {
    use model::Op;
    let at = c.field.span().start;
    let field = c.field.get_ref();
    if field.is_empty() || field.split('.').any(str::is_empty) {
        return Err(err(at, ctx(format!("bad field path `{field}`"))));
    }
    let value = c.value.as_ref().map(|v| Value::from(model::to_json(v)));
    let needs_value = !matches!(c.op, Op::Exists | Op::Missing | Op::ForeignPrincipal);
    match (&value, needs_value) {
        (None, true) => {
            return Err(err(
                at,
                ctx(format!("`{field}` {:?} needs a `value`", c.op)),
            ))
        }
        (Some(_), false) => {
            return Err(err(
                at,
                ctx(format!("`{field}` {:?} takes no `value`", c.op)),
            ))
        }
        _ => {}
    }
    let glob = match (c.op, &value) {
        (Op::Glob, Some(Value::String(p))) => Some(
            Pattern::new(p, false).map_err(|e| err(at, ctx(format!("bad pattern `{p}`: {e}"))))?,
        ),
        (Op::Glob, _) => {
            return Err(err(
                at,
                ctx(format!("`{field}` glob needs a string pattern")),
            ))
        }
        _ => None,
    };
    if c.op == Op::In && !value.as_ref().is_some_and(Value::is_array) {
        return Err(err(at, ctx(format!("`{field}` in needs a list value"))));
    }
    if matches!(c.op, Op::Gt | Op::Gte | Op::Lt | Op::Lte)
        && !value.as_ref().is_some_and(Value::is_number)
    {
        return Err(err(at, ctx(format!("`{field}` {:?} needs a number", c.op))));
    }
    Ok(Condition {
        field: FieldPath::parse(field),
        op: c.op,
        value,
        glob,
    })
}

/// The `[rules]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Directory of rule files (`*.toml`) used instead of the built-in rules.
    pub dir: Option<PathBuf>,
    /// Directories of Sigma rules (`*.yml`, searched recursively) evaluated beside them.
    pub sigma_dirs: Vec<PathBuf>,
    /// Sigma rules below this `level` are not loaded (SigmaHQ's `low` and
    /// `informational` rules are hunting aids more than alerts).
    pub sigma_min_level: Option<Severity>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<RuleSet, RuleError> {
        RuleSet::from_sources(vec![("t.toml".into(), text.into(), None)])
    }

    const HEAD: &str = "[[rule]]\nid = \"r1\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"low\"\nprovider = \"aws\"\n";

    #[test]
    fn unknown_technique_is_an_error_with_its_line() {
        let text = format!("{HEAD}techniques = [\"T9999\"]\n[rule.match]\nevent_name = [\"X\"]\n");
        let e = load(&text).unwrap_err();
        assert_eq!(e.line, 7);
        assert_eq!(
            e.to_string(),
            "t.toml:7: rule `r1`: `T9999` is not an ATT&CK Enterprise v18.1 technique id"
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let text = format!("{HEAD}techniques = [\"T1098\"]\n[rule.match]\nevent_nam = [\"X\"]\n");
        let e = load(&text).unwrap_err();
        assert_eq!(e.line, 9);
        assert!(e.message.contains("unknown field `event_nam`"), "{e}");
    }

    #[test]
    fn bad_pattern_and_missing_value_are_errors() {
        let text =
            format!("{HEAD}techniques = [\"T1098\"]\n[rule.match]\nevent_name = [\"Create[\"]\n");
        assert!(load(&text)
            .unwrap_err()
            .message
            .contains("bad pattern `Create[`"));
        let text = format!("{HEAD}techniques = [\"T1098\"]\n[rule.match]\nevent_name = [\"X\"]\n[[rule.match.all]]\nfield = \"a\"\nop = \"equals\"\n");
        let e = load(&text).unwrap_err();
        assert_eq!(e.line, 11);
        assert!(e.message.contains("needs a `value`"), "{e}");
    }

    #[test]
    fn rules_are_found_by_name_by_source_and_by_scan() {
        let rule = |id: &str, source: &str, name: &str| {
            let source = if source.is_empty() {
                String::new()
            } else {
                format!("event_source = [\"{source}\"]\n")
            };
            format!("[[rule]]\nid = \"{id}\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"low\"\nprovider = \"aws\"\ntechniques = [\"T1098\"]\n[rule.match]\n{source}event_name = [\"{name}\"]\n")
        };
        let text = [
            rule("named", "", "CreateUser"),
            rule("by-source", "iam.amazonaws.com", "Create*"),
            rule("scanned", "", "*User"),
        ]
        .concat();
        let set = load(&text).unwrap();
        let hits = |source: &str, name: &str| {
            let text = format!(
                r#"{{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"{source}","eventName":"{name}"}}"#
            );
            let record = match crate::transforms::decode::decode(&text, 1 << 20, chrono::Utc::now())
            {
                Ok(crate::transforms::decode::Decoded::Record(r)) => r,
                other => panic!("{other:?}"),
            };
            set.evaluate(&record, &Map::new())
                .iter()
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            hits("iam.amazonaws.com", "CreateUser"),
            ["named", "by-source", "scanned"]
        );
        assert_eq!(hits("iam.amazonaws.com", "CreateRole"), ["by-source"]);
        assert_eq!(
            hits("sso.amazonaws.com", "CreateRole"),
            Vec::<String>::new()
        );
        assert_eq!(
            hits("sso.amazonaws.com", "CreateUser"),
            ["named", "scanned"]
        );
        assert_eq!(
            hits("IAM.amazonaws.com", "CreateUser"),
            ["named", "scanned"]
        );
    }

    #[test]
    fn the_context_is_asked_for_only_where_a_rule_that_reads_it_is_tried() {
        let rule = |id: &str, names: &str, field: &str| {
            format!("[[rule]]\nid = \"{id}\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"low\"\nprovider = \"aws\"\ntechniques = [\"T1098\"]\n[rule.match]\n{names}\n[[rule.match.all]]\nfield = \"{field}\"\nop = \"exists\"\n")
        };
        let asks = |set: &RuleSet, source: &str, name: &str| {
            let text = format!(
                r#"{{"eventTime":"2024-01-02T03:04:05Z","eventSource":"{source}","eventName":"{name}"}}"#
            );
            match crate::transforms::decode::decode(&text, 1 << 20, chrono::Utc::now()) {
                Ok(crate::transforms::decode::Decoded::Record(r)) => set.may_read_context(&r),
                other => panic!("{other:?}"),
            }
        };
        let text = [
            rule(
                "named",
                "event_name = [\"CreateUser\"]",
                "context.key.age_days",
            ),
            rule(
                "by-source",
                "event_source = [\"iam.amazonaws.com\"]\nevent_name = [\"Put*\"]",
                "context.key.over_max_age",
            ),
            rule(
                "record",
                "event_name = [\"ListUsers\"]",
                "requestParameters",
            ),
        ]
        .concat();
        let set = load(&text).unwrap();
        assert!(asks(&set, "iam.amazonaws.com", "CreateUser"));
        assert!(asks(&set, "iam.amazonaws.com", "ListUsers"));
        assert!(asks(&set, "sso.amazonaws.com", "CreateUser"));
        assert!(!asks(&set, "sso.amazonaws.com", "ListUsers"));
        assert!(!asks(&set, "s3.amazonaws.com", "GetObject"));

        let scanned = load(&rule(
            "scanned",
            "event_name = [\"*\"]",
            "context.session.age_seconds",
        ))
        .unwrap();
        assert!(asks(&scanned, "s3.amazonaws.com", "GetObject"));
        let none = load(&rule("record", "event_name = [\"*\"]", "eventName")).unwrap();
        assert!(!asks(&none, "iam.amazonaws.com", "CreateUser"));
    }

    #[test]
    fn builtin_rules_load_and_every_file_is_built_in() {
        let set = RuleSet::builtin().unwrap();
        assert!(set.rules().len() >= 20);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| format!("config/rules/{}", e.unwrap().file_name().to_string_lossy()))
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut built: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        built.sort();
        assert_eq!(
            on_disk, built,
            "every rule file in config/rules must be listed in BUILTIN"
        );
    }
}
