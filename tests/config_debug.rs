//! A config's `Debug` text (what a panic, a `dbg!` or a debug log of the settings would
//! print) holds no secret: for every example config with its secrets set, and for every
//! kind of secret a config can carry. Its own test binary, because it sets the process
//! environment the configs are interpolated from.

use auditbridge::config::Config;

/// The secret part of each value below.
const SECRETS: &[&str] = &[
    "hec-SECRET-0b7c",
    "sasl-SECRET-51aa",
    "c3RvcmFnZS1TRUNSRVQ=",
    "eh-SECRET-9f0e",
    "app-SECRET-77d2",
    "oauth-SECRET-e310",
    "keypass-SECRET-2c4b",
];

fn set_environment() {
    for (var, value) in [
        ("SPLUNK_HEC_TOKEN", "hec-SECRET-0b7c".to_string()),
        ("KAFKA_PASSWORD", "sasl-SECRET-51aa".into()),
        (
            "STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c3RvcmFnZS1TRUNSRVQ=;EndpointSuffix=core.windows.net".into(),
        ),
        (
            "EVENTHUB_CONNECTION_STRING",
            "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey=eh-SECRET-9f0e;EntityPath=h".into(),
        ),
        ("APP_CLIENT_SECRET", "app-SECRET-77d2".into()),
        ("OAUTH_SECRET", "oauth-SECRET-e310".into()),
        ("KEY_PASSWORD", "keypass-SECRET-2c4b".into()),
        (
            "SQS_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/111122223333/trail".into(),
        ),
        ("KAFKA_BROKERS", "kafka:9093".into()),
        ("KAFKA_USER", "auditbridge".into()),
        ("SPLUNK_HEC_URL", "https://splunk.example.com:8088".into()),
        ("EVENTHUB_NAMESPACE", "contoso.servicebus.windows.net".into()),
        ("EVENTHUB_NAME", "insights-logs-auditlogs".into()),
        (
            "GCP_SUBSCRIPTION",
            "projects/p/subscriptions/auditbridge".into(),
        ),
    ] {
        std::env::set_var(var, value);
    }
}

fn assert_no_secret(what: &str, config: &Config) -> String {
    let text = format!("{config:?} {config:#?}");
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what}: Debug printed {secret}:\n{text}"
        );
    }
    text
}

/// Every secret a config can hold, in one config: an Entra app's client secret, a
/// storage connection string, Kafka credentials librdkafka flags as sensitive.
const EVERY_KIND: &str = r#"
[sources.entra]
type = "eventhubs"
namespace = "contoso.servicebus.windows.net"
event_hub = "hub"
[sources.entra.auth]
method = "client_secret"
tenant_id = "00000000-0000-0000-0000-000000000001"
client_id = "00000000-0000-0000-0000-000000000002"
client_secret = "${APP_CLIENT_SECRET}"
[sources.entra.checkpoint_store]
type = "blob"
container = "checkpoints"
connection_string = "${STORAGE_CONNECTION_STRING}"
[sources.hub]
type = "eventhubs"
[sources.hub.auth]
method = "connection_string"
connection_string = "${EVENTHUB_CONNECTION_STRING}"
[sources.hub.checkpoint_store]
type = "file"
dir = "/var/lib/auditbridge/checkpoints"
[sinks.splunk]
type = "splunk_hec"
endpoint = "https://splunk.example.com:8088"
token = "${SPLUNK_HEC_TOKEN}"
[sinks.lake]
type = "kafka"
brokers = "kafka:9093"
properties = { "security.protocol" = "SASL_SSL", "sasl.mechanisms" = "OAUTHBEARER", "sasl.oauthbearer.method" = "oidc", "sasl.oauthbearer.client.id" = "auditbridge", "sasl.oauthbearer.client.secret" = "${OAUTH_SECRET}", "ssl.key.password" = "${KEY_PASSWORD}", "sasl.password" = "${KAFKA_PASSWORD}" }
"#;

#[test]
fn debug_of_a_config_prints_no_secret() {
    set_environment();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut examples = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml")
            || path.ends_with("founding-techniques.toml")
        {
            continue;
        }
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_no_secret(&path.display().to_string(), &config);
        examples += 1;
    }
    assert!(examples >= 8, "only {examples} example configs found");

    let text = assert_no_secret(
        "every kind of secret",
        &Config::parse(EVERY_KIND, "every-kind.toml").unwrap(),
    );
    // Only the secrets are hidden: the settings around them stay readable.
    assert_eq!(text.matches("[redacted]").count(), 2 * 7, "{text}");
    assert!(text.contains("Plain(\"SASL_SSL\")"), "{text}");
    assert!(text.contains("splunk.example.com"), "{text}");
}
