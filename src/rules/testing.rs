//! `auditbridge rules test`: every rule's own test events, through the real decoder.

use chrono::Utc;
use serde_json::value::RawValue;

use super::{Explanation, Rule, RuleSet};
use crate::transforms::decode::{self, Decoded};

/// One failed expectation.
#[derive(Debug)]
pub struct Failure {
    pub rule: String,
    pub test: String,
    pub message: String,
    pub explanation: Option<Explanation>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "FAIL {} / {}: {}", self.rule, self.test, self.message)?;
        if let Some(e) = &self.explanation {
            for (step, ok) in &e.steps {
                writeln!(f, "    {} {step}", if *ok { "+" } else { "-" })?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failures: Vec<Failure>,
}

/// Run every test of every rule. One of our rules without both a positive and a negative
/// test fails; a Sigma rule is tested with whatever events its set carries.
pub fn run(set: &RuleSet) -> Report {
    let mut report = Report::default();
    for rule in set.rules() {
        let required: &[(bool, &str)] = match rule.ruleset() {
            "sigma" => &[],
            _ => &[(true, "positive"), (false, "negative")],
        };
        for &(want, label) in required {
            if !rule.tests.iter().any(|t| t.expect == want) {
                report.failures.push(Failure {
                    rule: rule.id.clone(),
                    test: format!("({label} test)"),
                    message: format!("the rule has no {label} test event"),
                    explanation: None,
                });
            }
        }
        for test in &rule.tests {
            match check(rule, &test.event, &test.context, test.expect) {
                Ok(()) => report.passed += 1,
                Err((message, explanation)) => report.failures.push(Failure {
                    rule: rule.id.clone(),
                    test: test.name.clone(),
                    message,
                    explanation,
                }),
            }
        }
    }
    report
}

type CheckError = (String, Option<Explanation>);

fn check(
    rule: &Rule,
    event: &str,
    context: &crate::transforms::decode::tree::Map<'_>,
    expect: bool,
) -> Result<(), CheckError> {
    let raw: &RawValue = serde_json::from_str(event)
        .map_err(|e| (format!("the test event is not JSON: {e}"), None))?;
    let record = match decode::decode(raw.get(), usize::MAX, Utc::now()) {
        Ok(Decoded::Record(r)) => r,
        Ok(Decoded::Special(s)) => {
            return Err((
                format!("the test event decodes as {}, not a record", s.as_str()),
                None,
            ))
        }
        Err(e) => return Err((format!("the test event does not decode: {e}"), None)),
    };
    let explanation = rule.explain(&record, context, true);
    if explanation.matched == expect {
        Ok(())
    } else if expect {
        Err((
            "expected a match, the rule did not match".into(),
            Some(explanation),
        ))
    } else {
        Err((
            "expected no match, the rule matched".into(),
            Some(explanation),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_rule_passes_its_own_tests() {
        let set = RuleSet::builtin().unwrap();
        let report = run(&set);
        let text: String = report.failures.iter().map(ToString::to_string).collect();
        assert!(report.failures.is_empty(), "{text}");
        assert!(report.passed >= 2 * set.rules().len());
    }

    #[test]
    fn a_failing_test_explains_each_step() {
        let text = r#"[[rule]]
id = "r"
title = "t"
description = "d"
severity = "low"
provider = "aws"
techniques = ["T1098.001"]
[rule.match]
event_name = ["CreateAccessKey"]
[[rule.match.all]]
field = "requestParameters.userName"
op = "exists"
[[rule.tests]]
name = "self-service key"
expect = true
event = '{"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","eventTime":"2024-01-01T00:00:00Z"}'
[[rule.tests]]
name = "other"
expect = false
event = '{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","eventTime":"2024-01-01T00:00:00Z"}'
"#;
        let set = RuleSet::from_sources(vec![("t.toml".into(), text.into(), None)]).unwrap();
        let report = run(&set);
        assert_eq!(report.passed, 1);
        assert_eq!(
            report.failures[0].to_string(),
            "FAIL r / self-service key: expected a match, the rule did not match\n    + provider is Aws\n    + event_name `CreateAccessKey` matches CreateAccessKey\n    - requestParameters.userName Exists\n"
        );
    }
}
