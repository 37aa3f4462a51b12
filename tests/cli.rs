//! The binary as users run it: `replay`, `run` with a config, `validate`, and shutdown.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::repo;
use serde_json::Value;

fn bin() -> Command {
    common::auditbridge()
}

/// A run that must have succeeded; a failure shows what auditbridge said.
fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn summary(stderr: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("summary line");
    serde_json::from_str(line).unwrap()
}

#[test]
fn replay_prints_one_ecs_document_per_record() {
    let out = bin()
        .args(["replay", "--format", "ecs", "samples/cloudtrail/218007301253_CloudTrail_us-east-1_20230710T1230Z_ZtUNbBkwAu98FPZb.json.gz"])
        .output()
        .unwrap();
    succeeded(&out);
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let s = summary(&out.stderr);
    assert_eq!(s["records_emitted"].as_u64().unwrap() as usize, lines.len());
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l["ecs"]["version"] == "9.4.0"));
    assert_eq!(s["dead_lettered"], 0);
}

/// `replay --format raw` prints each vendor record of the real corpora (CloudTrail and
/// Entra, NDJSON, gzip, envelopes, pretty-printed arrays, Log Analytics rows) JSON-equal
/// to the record in the file, one per line.
#[test]
fn replay_format_raw_returns_every_corpus_record_json_equal() {
    let inputs = [
        common::shared("data/corpus/cloudtrail_real_union.ndjson.gz"),
        common::shared("data/corpus/entra_real_union.ndjson.gz"),
        common::shared("data/cloudtrail/stratus/detonation-logs"),
        repo("samples/cloudtrail"),
        repo("samples/entra"),
    ];
    let mut expected: Vec<String> = inputs
        .iter()
        .flat_map(|p| common::vendor_records(p))
        .filter(|r| r.is_object())
        .map(|r| r.to_string())
        .collect();
    let out = bin()
        .args(["replay", "--format", "raw"])
        .args(&inputs)
        .output()
        .unwrap();
    succeeded(&out);
    let s = summary(&out.stderr);
    assert_eq!(s["dead_lettered"], 0, "{s}");
    let mut got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap().to_string())
        .collect();
    assert!(got.len() > 3000, "{}", got.len());
    expected.sort();
    got.sort();
    assert_eq!(got.len(), expected.len(), "{s}");
    assert!(got == expected, "a raw record differs from its input");
}

/// One CloudTrail record and, on line 2, a line that is not JSON.
const ONE_GOOD_ONE_BAD: &str =
    "{\"eventName\":\"CreateUser\",\"eventSource\":\"iam.amazonaws.com\"}\nnot json\n";

/// `run`, from `dir`, of a config that reads `input` and writes `format` to a file sink,
/// with dead letters at `dead_letter`: what the process printed, and the sink's file.
fn run_files(
    dir: &Path,
    format: &str,
    dead_letter: &str,
    input: &Path,
) -> (std::process::Output, PathBuf) {
    let out_path = dir.join("out/records.ndjson");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nformat = \"{format}\"\n[dead_letter]\npath = \"{dead_letter}\"\n[sources.in]\ntype = \"file\"\npaths = [\"{}\"]\n[sinks.out]\ntype = \"file\"\npath = \"{}\"\n",
            input.display(),
            out_path.display()
        ),
    )
    .unwrap();
    let out = bin()
        .current_dir(dir)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    (out, out_path)
}

#[test]
fn run_writes_records_and_dead_letters_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(
        repo("samples/cloudtrail/stratus-aws.persistence.iam-backdoor-user.json"),
        input.join("good.json"),
    )
    .unwrap();
    std::fs::write(input.join("bad.ndjson"), ONE_GOOD_ONE_BAD).unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let (out, out_path) = run_files(dir.path(), "ocsf", &dlq.display().to_string(), &input);
    succeeded(&out);
    let records = std::fs::read_to_string(&out_path).unwrap();
    let docs: Vec<Value> = records
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The record in good.json (CreateAccessKey) plus the valid line of bad.ndjson
    // (CreateUser), all OCSF: each activity is tagged, so each brings a finding.
    assert_eq!(docs.len(), 4);
    assert_eq!(docs.iter().filter(|d| d["class_uid"] == 2004).count(), 2);
    assert!(docs.iter().all(|d| d["metadata"]["version"] == "1.8.0"));
    let letters: Vec<Value> = std::fs::read_to_string(&dlq)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["kind"], "invalid_json");
    assert_eq!(letters[0]["line"], 2);
    assert_eq!(letters[0]["original"], "not json");
    assert_eq!(
        letters[0]["origin"],
        format!("file {}", input.join("bad.ndjson").display())
    );
    let s = summary(&out.stderr);
    assert_eq!(s["dead_letter_reasons"]["invalid_json"], 1);
    assert_eq!(s["batches_acked"], 2);
}

/// `dead_letter.path = "-"`: dead letters are lines on standard output, where a container
/// platform's log collector takes them, and logs stay on standard error.
#[test]
fn dead_letters_can_go_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.ndjson");
    std::fs::write(&input, ONE_GOOD_ONE_BAD).unwrap();
    let (out, out_path) = run_files(dir.path(), "ecs", "-", &input);
    succeeded(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let letters: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{stdout}");
    assert_eq!(letters[0]["kind"], "invalid_json");
    assert_eq!(letters[0]["line"], 2);
    assert_eq!(letters[0]["original"], "not json");
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap().lines().count(),
        1
    );
    assert!(
        !dir.path().join("-").exists(),
        "`-` is standard output, not a file"
    );
    assert_eq!(
        summary(&out.stderr)["dead_letter_reasons"]["invalid_json"],
        1
    );
}

#[test]
fn validate_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[sources.in]\ntype = \"file\"\npaths = [\"x\"]\n[sinks.out]\ntype = \"stdout\"\nformat = \"ecs\"\n").unwrap();
    let out = bin()
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `format`, expected `formats`") && err.contains("line 4"),
        "{err}"
    );

    let out = bin()
        .args(["validate", "--config", "config/local.toml"])
        .output()
        .unwrap();
    succeeded(&out);
}

/// A HEC token over `http://` to another machine: `validate` refuses it, naming the key,
/// the risk and the opt-in; with the opt-in it passes with a warning, and `run` logs the
/// same warning at start.
#[test]
fn a_token_in_cleartext_is_refused_unless_allowed_and_then_logged() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let text = |extra: &str| {
        format!("[sources.in]\ntype = \"file\"\npaths = [\"{}/none\"]\n[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"http://splunk.invalid:8088\"\ntoken = \"${{HEC_TOKEN}}\"\nindexer_ack = false\nallow_without_ack = true\n{extra}", dir.path().display())
    };
    std::fs::write(&config, text("")).unwrap();
    let validate = || {
        bin()
            .env("HEC_TOKEN", "tok-SECRET-11")
            .args(["validate", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = validate();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`sinks.hec.endpoint` sends the HEC token in cleartext to splunk.invalid")
            && err.contains("set sinks.hec.allow_cleartext_token = true"),
        "{err}"
    );
    assert!(!err.contains("tok-SECRET-11"));

    std::fs::write(&config, text("allow_cleartext_token = true\n")).unwrap();
    let out = validate();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("warning: sinks.hec.endpoint: the HEC token goes in cleartext to splunk.invalid (allowed by configuration)"),
        "{said}"
    );
    let out = bin()
        .env("HEC_TOKEN", "tok-SECRET-11")
        .env("AUDITBRIDGE_LOG", "warn")
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("sinks.hec.endpoint: the HEC token goes in cleartext to splunk.invalid"),
        "{logs}"
    );
    assert!(!logs.contains("tok-SECRET-11"));
}

/// With `AUDITBRIDGE_LOG_FORMAT=json` every stderr line of a run is one JSON log record,
/// the run summary included, its counts and dead-letter reasons as fields; without it,
/// no line carries colour codes (stderr is not a terminal here).
#[test]
fn json_logs_carry_the_run_summary_as_fields() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"eventName\": }\nnot json\n").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[dead_letter]\npath = \"{}/dlq.ndjson\"\n[sources.in]\ntype = \"file\"\npaths = [\"{}\"]\n[sinks.out]\ntype = \"file\"\npath = \"{}/out.ndjson\"\n",
            dir.path().display(),
            input.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let run = |json: bool| {
        let mut cmd = bin();
        if json {
            cmd.env("AUDITBRIDGE_LOG_FORMAT", "json");
        }
        cmd.args(["run", "--config"]).arg(&config).output().unwrap()
    };
    let out = run(true);
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = lines
        .iter()
        .find(|l| l["fields"]["message"] == "run summary")
        .expect("a run summary record");
    assert_eq!(summary["level"], "INFO");
    assert_eq!(summary["fields"]["dead_lettered"], 2);
    assert_eq!(summary["fields"]["dead_letter_reasons"]["invalid_json"], 2);
    let plain = run(false);
    assert!(!String::from_utf8_lossy(&plain.stderr).contains('\u{1b}'));
}

#[test]
fn help_teaches_the_commands() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["run", "validate", "replay"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[cfg(unix)]
#[test]
fn sigterm_stops_intake_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("never-written.json");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nshutdown_grace_secs = 1\n[dead_letter]\npath = \"{}\"\n[sources.in]\ntype = \"file\"\npaths = [\"{}\"]\n[sinks.out]\ntype = \"stdout\"\n",
            dir.path().join("dlq.ndjson").display(),
            fifo.display()
        ),
    )
    .unwrap();
    let child = bin()
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(summary(&out.stderr)["records_emitted"], 0);
}

#[test]
fn rules_test_and_coverage_commands() {
    let out = bin().args(["rules", "test"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with(" 0 failed\n"), "{text}");
    let out = bin().args(["rules", "coverage"]).output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8(out.stdout).unwrap().contains("MISSING"));
    let sigma = common::shared("sigma/rules/cloud/aws");
    let out = bin()
        .args(["rules", "coverage", "--sigma"])
        .arg(&sigma)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "sigma ({}): 57 rules loaded, 0 unsupported\n",
            sigma.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "Extra access keys | T1098.001 | -; by parent T1098: AWS IAM Backdoor Users Keys, "
        ),
        "{text}"
    );
}

#[test]
fn a_broken_rules_directory_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[rule]]\nid = \"x\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"low\"\nprovider = \"aws\"\ntechniques = [\"T1098.999\"]\n[rule.match]\nevent_name = [\"X\"]\n",
    )
    .unwrap();
    for args in [vec!["rules", "test", "--rules"], vec!["replay", "--rules"]] {
        let mut cmd = bin();
        cmd.args(&args).arg(dir.path());
        if args[0] == "replay" {
            cmd.arg("samples");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "bad.toml:7: rule `x`: `T1098.999` is not an ATT&CK Enterprise v18.1 technique id"
            ),
            "{err}"
        );
    }
}

/// Every example in `config/` parses and passes the checks, with its environment
/// variables set to placeholder values.
#[test]
fn every_example_config_validates() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml")
            || path.ends_with("founding-techniques.toml")
        {
            continue;
        }
        let out = bin()
            .args(["validate", "--config"])
            .arg(&path)
            .env("SQS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/111122223333/trail")
            .env("KAFKA_BROKERS", "kafka:9092")
            .env("KAFKA_USER", "auditbridge")
            .env("KAFKA_PASSWORD", "placeholder")
            .env("SPLUNK_HEC_URL", "https://splunk.example.com:8088")
            .env("SPLUNK_HEC_TOKEN", "placeholder")
            .env("EVENTHUB_NAMESPACE", "contoso.servicebus.windows.net")
            .env("EVENTHUB_NAME", "insights-logs-auditlogs")
            .env("GCP_SUBSCRIPTION", "projects/p/subscriptions/auditbridge")
            .env(
                "STORAGE_CONNECTION_STRING",
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5;EndpointSuffix=core.windows.net",
            )
            .env(
                "EVENTHUB_CONNECTION_STRING",
                "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey=k;EntityPath=h",
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} example configs found");
}
