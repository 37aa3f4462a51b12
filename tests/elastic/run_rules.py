"""Run Elastic Security's prebuilt detection rules on ECS documents, without Elasticsearch.

The rules and their KQL library are read from a detection-rules checkout (not copied into
this repository: Elastic License 2.0); KQL is evaluated with that library and single-event
EQL with the PyPI `eql` package, the way the rules' own unit tests do.

    python run_rules.py DETECTION_RULES_DIR NAME=DOCS.ndjson [NAME=DOCS.ndjson ...]

Prints one JSON object: the rules that were evaluated, those skipped and why, and for each
named document file the rules that fired on it with how many documents each matched.
"""

import json
import sys
import tomllib
from pathlib import Path

# Rules the KQL library could not evaluate on some document, and how often.
ERRORS = {}

# Only the datasets auditbridge writes.
DATASETS = (
    "logs-aws.cloudtrail",
    "logs-azure.signinlogs",
    "logs-azure.auditlogs",
    "logs-azure.activitylogs",
)


def load_rules(root):
    import eql
    import kql

    rules, skipped = [], {}
    for path in sorted(root.glob("rules*/**/*.toml")):
        rule = tomllib.loads(path.read_text()).get("rule", {})
        if not any(i.startswith(DATASETS) for i in rule.get("index", [])):
            continue
        name = rule.get("name", path.stem)
        language, query = rule.get("language"), rule.get("query", "")
        if rule.get("type") == "threshold":
            skipped[name] = "threshold: counts over time"
            continue
        try:
            if language == "kuery":
                check = kql.get_evaluator(kql.parse(query))
                rules.append((name, "kql", check, None))
            elif language == "eql":
                parsed = eql.parse_query(query, implied_any=True)
                if not isinstance(parsed.first, eql.ast.EventQuery):
                    skipped[name] = "eql sequence: needs several events"
                    continue
                override = rule.get("event_category_override", "event.category")
                rules.append((name, "eql", parsed, override))
            else:
                skipped[name] = f"{language}: needs Elasticsearch"
        except Exception as e:  # a rule this library cannot parse is reported, not fatal
            skipped[name] = f"unparsed: {type(e).__name__}: {e}"
    return rules, skipped


def get(doc, dotted):
    value = doc
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def fires(rule, doc):
    import eql

    name, kind, check, override = rule
    if kind == "kql":
        try:
            return bool(check(doc))
        except TypeError:
            # The library compares a wildcard with an object value (`field: *` on an
            # object); Elasticsearch would treat it as "exists". Counted, not fatal.
            ERRORS[name] = ERRORS.get(name, 0) + 1
            return False
    categories = get(doc, override)
    if not isinstance(categories, list):
        categories = [categories]
    hits = []
    engine = eql.PythonEngine()
    engine.add_query(check)
    engine.add_output_hook(hits.append)
    engine.stream_events(
        [eql.Event(str(category), 0, doc) for category in categories if category is not None]
    )
    return bool(hits)


def main():
    root = Path(sys.argv[1])
    sys.path.insert(0, str(root / "lib" / "kql"))
    import eql

    # Elastic's rules are written in Elasticsearch's EQL dialect (`:` for case-insensitive
    # matching, `like~`, …), as detection-rules itself parses them.
    with eql.parser.elasticsearch_syntax:
        run(root)


def run(root):
    rules, skipped = load_rules(root)
    report = {"rules": len(rules), "skipped": skipped, "files": {}}
    for arg in sys.argv[2:]:
        label, _, path = arg.partition("=")
        docs = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
        fired = {}
        for rule in rules:
            n = sum(1 for doc in docs if fires(rule, doc))
            if n:
                fired[rule[0]] = n
        report["files"][label] = fired
    report["evaluation_errors"] = ERRORS
    json.dump(report, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
