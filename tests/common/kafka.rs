//! Helpers for tests against the Kafka-compatible broker (Tansu) that
//! `scripts/test-servers.sh` starts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

/// The broker address, from the environment `scripts/test.sh` sets up.
pub fn broker() -> String {
    std::env::var("AUDITBRIDGE_TEST_KAFKA").expect(
        "AUDITBRIDGE_TEST_KAFKA is not set: run the suite with scripts/test.sh, which starts Tansu",
    )
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Create topics (Tansu does not auto-create them).
pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// A consumed message.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Read a topic from the start until `expected` messages arrived and then nothing more
/// for `settle` (so duplicates would be seen), or until `timeout`.
pub async fn consume(
    topic: &str,
    expected: usize,
    settle: Duration,
    timeout: Duration,
) -> Vec<Consumed> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique_topic("test-consumer"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    loop {
        let wait = if out.len() >= expected {
            settle
        } else {
            Duration::from_secs(2)
        };
        if start.elapsed() > timeout {
            break;
        }
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(m)) => out.push(Consumed {
                key: m.key().map(|k| String::from_utf8_lossy(k).to_string()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|hd| {
                                (
                                    hd.key.to_string(),
                                    String::from_utf8_lossy(hd.value.unwrap_or_default())
                                        .to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Ok(Err(e)) => panic!("consuming {topic}: {e}"),
            Err(_) if out.len() >= expected => break,
            Err(_) => {}
        }
    }
    out
}
