//! Secrets (HEC token, Event Hubs SAS key, Kafka SASL password, AWS secret key) come from
//! the environment and never appear in logs, errors, `validate` output or `--help`, even
//! when everything they guard is unreachable and logging is at debug level.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HEC_TOKEN: &str = "hec-SECRET-8d1f3a77";
const SAS_KEY: &str = "sasSECRETc2VjcmV0LWtleQ==";
const SASL_PASSWORD: &str = "sasl-SECRET-4b2e";
const AWS_SECRET: &str = "aws-SECRET-wJalrXUtnFEMI";

fn with_secrets(cmd: &mut Command) -> &mut Command {
    cmd.env("HEC_TOKEN", HEC_TOKEN)
        .env(
            "EH_CONNECTION_STRING",
            format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={SAS_KEY};EntityPath=hub"),
        )
        .env("SASL_PASSWORD", SASL_PASSWORD)
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AUDITBRIDGE_LOG", "debug")
}

/// Run auditbridge with the secrets in its environment.
fn run_with_secrets(args: &[&str], config: &std::path::Path) -> Output {
    with_secrets(common::auditbridge().args(args).arg(config))
        .output()
        .unwrap()
}

fn assert_clean(what: &str, out: &Output) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in [HEC_TOKEN, SAS_KEY, SASL_PASSWORD, AWS_SECRET] {
        assert!(!text.contains(secret), "{what} printed a secret:\n{text}");
    }
}

fn config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"[pipeline]
shutdown_grace_secs = 2
[dead_letter]
path = "{dir}/dlq.ndjson"
[sources.trail]
type = "sqs"
queue_url = "http://127.0.0.1:9/000000000000/trail"
endpoint = "http://127.0.0.1:9"
region = "us-east-1"
wait_time_secs = 1
[sources.entra]
type = "eventhubs"
custom_endpoint = "amqp://127.0.0.1:9"
[sources.entra.auth]
method = "connection_string"
connection_string = "${{EH_CONNECTION_STRING}}"
[sources.entra.checkpoint_store]
type = "file"
dir = "{dir}/checkpoints"
[sinks.splunk]
type = "splunk_hec"
endpoint = "http://127.0.0.1:9"
token = "${{HEC_TOKEN}}"
[sinks.kafka]
type = "kafka"
brokers = "127.0.0.1:9"
topic = "t"
properties = {{ "security.protocol" = "SASL_PLAINTEXT", "sasl.mechanism" = "PLAIN", "sasl.username" = "u", "sasl.password" = "${{SASL_PASSWORD}}" }}
{extra}
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_wrong_config_names_the_key_not_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    // A secret interpolated into a key that wants a number.
    let path = config(dir.path(), "[limits]\nmax_record_bytes = \"${HEC_TOKEN}\"");
    let out = run_with_secrets(&["validate", "--config"], &path);
    assert_eq!(out.status.code(), Some(1));
    assert_clean("validate", &out);
    let out = run_with_secrets(&["run", "--config"], &path);
    assert_eq!(out.status.code(), Some(1));
    assert_clean("run with a wrong config", &out);
}

#[test]
fn help_and_a_valid_config_print_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "");
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["validate", "--help"],
    ] {
        let out = with_secrets(common::auditbridge().args(&args))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_clean("--help", &out);
    }
    let out = run_with_secrets(&["validate", "--config"], &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean("validate", &out);
}

#[test]
fn running_against_unreachable_services_logs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "");
    let mut child = with_secrets(common::auditbridge().args(["run", "--config"]).arg(&path))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough for every client to try, fail and retry with debug logging on.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() > 5, "expected debug logs:\n{stderr}");
    assert_clean("run", &out);
    // The SQS source has no allow-list: said once, at start.
    assert_eq!(
        stderr
            .matches(
                "bucket_allowlist and account_allowlist are empty: whoever can send to this queue"
            )
            .count(),
        1,
        "{stderr}"
    );
}

/// At the most verbose log level, a collector that refuses the token: the run ends with
/// the sink fault, and the token is in none of stdout, stderr or the dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_at_trace_level_is_never_printed() {
    let hec = common::hec::HecReceiver::start(common::hec::Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (corpus, _) = common::replayed_corpus(20);
    // Bad lines first, so dead letters are written while the sink is refusing.
    let input = format!(
        "{{\"eventVersion\": 1.08\nnot json\n{}",
        corpus.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    std::fs::write(dir.path().join("in.ndjson"), input).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[pipeline]\nshutdown_grace_secs = 2\nsink_fault_timeout_secs = 3\n[dead_letter]\npath = \"{dir}/dlq.ndjson\"\n[sources.in]\ntype = \"file\"\npaths = [\"{dir}/in.ndjson\"]\n[sinks.splunk]\ntype = \"splunk_hec\"\nendpoint = \"{url}\"\ntoken = \"${{HEC_TOKEN}}\"\nretry_max_delay_secs = 1\n",
            dir = dir.path().display(),
            url = hec.url()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        with_secrets(common::auditbridge().args(["run", "--config"]).arg(&path))
            .env("AUDITBRIDGE_LOG", "trace")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a sink fault:\n{stderr}");
    assert!(
        stderr.contains("the collector refused the token"),
        "{stderr}"
    );
    assert!(
        stderr.lines().filter(|l| l.contains("TRACE")).count() > 10,
        "expected trace logs:\n{stderr}"
    );
    assert_clean("a run with a refused token", &out);
    let dead = std::fs::read_to_string(dir.path().join("dlq.ndjson")).unwrap();
    assert_eq!(dead.lines().count(), 2, "{dead}");
    assert!(!dead.contains(HEC_TOKEN), "{dead}");
    assert!(hec.events().is_empty());
}
