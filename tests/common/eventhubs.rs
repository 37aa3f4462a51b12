//! A small Event Hubs endpoint over real AMQP 1.0, for the Event Hubs tests.
//!
//! No Event Hubs emulator runs here (Microsoft's is a container image), so this speaks
//! the part of the protocol the real `azure_messaging_eventhubs` client needs, on
//! fe2o3-amqp's acceptor: SASL ANONYMOUS, `$cbs` put-token (answered 202), `$management`
//! READ of the hub and its partitions, partition receive links with the selector
//! filter, events with the `x-opt-*` annotations, owner-level (epoch) displacement,
//! and detach/close answered. Test controls append events and force-detach links.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor, SupportedSenderSettleModes,
};
use fe2o3_amqp::types::definitions::SenderSettleMode;
use fe2o3_amqp::types::definitions::{self, LinkError};
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Message, MessageAnnotations, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, OrderedMap, SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Receiver, Sender};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const OFFSET_STEP: i64 = 100;

struct Stored {
    enqueued_ms: i64,
    body: Vec<u8>,
}

struct Partition {
    events: Mutex<Vec<Stored>>,
    len: watch::Sender<usize>,
}

struct Link {
    id: u64,
    partition: usize,
    group: String,
    epoch: Option<i64>,
    control: mpsc::UnboundedSender<LinkError>,
}

struct Inner {
    name: String,
    partitions: Vec<Partition>,
    links: Mutex<Vec<Link>>,
    next_link: AtomicU64,
    attaches: AtomicU64,
}

/// One event hub with `n` partitions, listening on 127.0.0.1.
pub struct Hub {
    inner: Arc<Inner>,
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hub {
    pub async fn start(name: &str, partitions: usize) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Inner {
            name: name.to_string(),
            partitions: (0..partitions)
                .map(|_| Partition {
                    events: Mutex::new(Vec::new()),
                    len: watch::channel(0).0,
                })
                .collect(),
            links: Mutex::new(Vec::new()),
            next_link: AtomicU64::new(0),
            attaches: AtomicU64::new(0),
        });
        let task = tokio::spawn(listen(listener, Arc::clone(&inner)));
        Hub { inner, port, task }
    }

    /// The AMQP address the client dials (`custom_endpoint`).
    pub fn endpoint(&self) -> String {
        format!("amqp://127.0.0.1:{}", self.port)
    }

    /// A SAS connection string naming this hub (the key is not checked).
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://auditbridge-test.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=dGVzdC1rZXk=;EntityPath={}",
            self.inner.name
        )
    }

    pub fn append(&self, partition: usize, bodies: impl IntoIterator<Item = Vec<u8>>) {
        let p = &self.inner.partitions[partition];
        let mut events = p.events.lock().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        events.extend(bodies.into_iter().map(|body| Stored {
            enqueued_ms: now,
            body,
        }));
        p.len.send_replace(events.len());
    }

    /// Detach every receive link on `partition` with `amqp:link:detach-forced`, as the
    /// service does during an upgrade. Returns how many links were detached.
    pub fn force_detach(&self, partition: usize) -> usize {
        self.kick(partition, None, LinkError::DetachForced)
    }

    fn kick(&self, partition: usize, group: Option<&str>, error: LinkError) -> usize {
        let links = self.inner.links.lock().unwrap();
        links
            .iter()
            .filter(|l| l.partition == partition && group.is_none_or(|g| g == l.group))
            .filter(|l| l.control.send(error.clone()).is_ok())
            .count()
    }

    /// Receive links currently attached to `partition`.
    pub fn links(&self, partition: usize) -> usize {
        let links = self.inner.links.lock().unwrap();
        links.iter().filter(|l| l.partition == partition).count()
    }

    /// Partition links attached since the start.
    pub fn attaches(&self) -> u64 {
        self.inner.attaches.load(Ordering::Relaxed)
    }
}

async fn listen(listener: TcpListener, inner: Arc<Inner>) {
    let acceptor = ConnectionAcceptor::builder()
        .container_id("auditbridge-test-eventhubs")
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    let acceptor = Arc::new(acceptor);
    while let Ok((stream, _)) = listener.accept().await {
        let acceptor = Arc::clone(&acceptor);
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let Ok(mut connection) = acceptor.accept(stream).await else {
                return;
            };
            while let Some(incoming) = connection.next_incoming_session().await {
                let Ok(session) = SessionAcceptor::new()
                    .accept_incoming_session(incoming, &mut connection)
                    .await
                else {
                    break;
                };
                tokio::spawn(serve_session(session, Arc::clone(&inner)));
            }
            let _ = connection.close().await;
        });
    }
}

/// Reply links of this session by node (`$cbs`, `$management`).
type Replies = Arc<tokio::sync::Mutex<Vec<(String, Sender)>>>;

async fn serve_session(mut session: ListenerSessionHandle, inner: Arc<Inner>) {
    // Events go pre-settled, as from the service: the client's receive loop does not
    // need to answer each one before the next is sent.
    let acceptor = LinkAcceptor::builder()
        .supported_sender_settle_modes(SupportedSenderSettleModes::Settled)
        .fallback_sender_settle_mode(SenderSettleMode::Settled)
        .build();
    let replies: Replies = Arc::default();
    while let Ok(link) = acceptor.accept(&mut session).await {
        match link {
            LinkEndpoint::Receiver(receiver) => {
                tokio::spawn(serve_requests(
                    receiver,
                    Arc::clone(&replies),
                    Arc::clone(&inner),
                ));
            }
            LinkEndpoint::Sender(sender) => {
                let address = source_address(&sender);
                if address.starts_with('$') {
                    replies.lock().await.push((address, sender));
                } else {
                    tokio::spawn(serve_partition(sender, address, Arc::clone(&inner)));
                }
            }
        }
    }
    let _ = session.end().await;
}

fn source_address(sender: &Sender) -> String {
    sender
        .source()
        .as_ref()
        .and_then(|s| s.address.clone())
        .unwrap_or_default()
}

fn text(props: &ApplicationProperties, key: &str) -> String {
    match props.0.get(key) {
        Some(SimpleValue::String(s)) => s.clone(),
        Some(SimpleValue::Symbol(s)) => s.0.clone(),
        _ => String::new(),
    }
}

/// Answer `$cbs` and `$management` requests on the matching reply link.
async fn serve_requests(mut receiver: Receiver, replies: Replies, inner: Arc<Inner>) {
    let node = receiver
        .target()
        .as_ref()
        .and_then(|t| t.address.clone())
        .unwrap_or_default();
    loop {
        let delivery = match receiver.recv::<Body<Value>>().await {
            Ok(d) => d,
            Err(_) => break,
        };
        let _ = receiver.accept(&delivery).await;
        let message = delivery.into_message();
        let props = message.application_properties.clone().unwrap_or_default();
        let request_id = message
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone());
        let (status, body) = match node.as_str() {
            "$cbs" => (202, Value::Null),
            _ => match text(&props, "type").as_str() {
                "com.microsoft:eventhub" => (200, hub_properties(&inner)),
                "com.microsoft:partition" => match text(&props, "partition").parse::<usize>() {
                    Ok(p) if p < inner.partitions.len() => (200, partition_properties(&inner, p)),
                    _ => (404, Value::Null),
                },
                _ => (400, Value::Null),
            },
        };
        let reply = Message::builder()
            .properties(Properties {
                correlation_id: request_id,
                ..Default::default()
            })
            .application_properties(
                ApplicationProperties::builder()
                    .insert("status-code", SimpleValue::Int(status))
                    .insert("status-description", SimpleValue::String("OK".into()))
                    .build(),
            )
            .value(body)
            .build();
        let mut replies = replies.lock().await;
        if let Some((_, sender)) = replies.iter_mut().find(|(a, _)| *a == node) {
            let _ = sender.send(reply).await;
        }
    }
    let _ = receiver.close().await;
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = OrderedMap::new();
    for (k, v) in entries {
        m.insert(Value::String(k.to_string()), v);
    }
    Value::Map(m)
}

fn hub_properties(inner: &Inner) -> Value {
    let ids: Vec<Value> = (0..inner.partitions.len())
        .map(|i| Value::String(i.to_string()))
        .collect();
    map(vec![
        ("name", Value::String(inner.name.clone())),
        (
            "created_at",
            Value::Timestamp(Timestamp::from_milliseconds(0)),
        ),
        ("partition_count", Value::Int(inner.partitions.len() as i32)),
        ("partition_ids", Value::Array(ids.into())),
    ])
}

fn partition_properties(inner: &Inner, p: usize) -> Value {
    let events = inner.partitions[p].events.lock().unwrap();
    let last = events.len() as i64 - 1;
    let last_time = events.last().map_or(0, |e| e.enqueued_ms);
    map(vec![
        ("name", Value::String(inner.name.clone())),
        ("partition", Value::String(p.to_string())),
        ("begin_sequence_number", Value::Long(0)),
        ("last_enqueued_sequence_number", Value::Long(last)),
        (
            "last_enqueued_offset",
            Value::String((last * OFFSET_STEP).to_string()),
        ),
        (
            "last_enqueued_time_utc",
            Value::Timestamp(Timestamp::from_milliseconds(last_time)),
        ),
        ("is_partition_empty", Value::Bool(events.is_empty())),
        ("last_enqueued_sequence_number_epoch", Value::Long(0)),
    ])
}

fn epoch_of(sender: &Sender) -> Option<i64> {
    sender.properties(|p| {
        p.as_ref().and_then(|fields| {
            fields
                .iter()
                .find(|(k, _)| k.0 == "com.microsoft:epoch")
                .and_then(|(_, v)| match v {
                    Value::Long(n) => Some(*n),
                    Value::Int(n) => Some(i64::from(*n)),
                    _ => None,
                })
        })
    })
}

/// The selector filter's expression, e.g. `amqp.annotation.x-opt-offset > '-1'`.
fn selector(sender: &Sender) -> String {
    let Some(filter) = sender.source().as_ref().and_then(|s| s.filter.as_ref()) else {
        return String::new();
    };
    filter
        .values()
        .find_map(|v| match v {
            Value::Described(d) => match &d.value {
                Value::String(s) => Some(s.clone()),
                _ => None,
            },
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The index of the first event the selector admits.
fn start_index(expression: &str, events: &[Stored]) -> usize {
    let Some(at) = expression.find("x-opt-") else {
        return 0;
    };
    let rest = &expression[at + "x-opt-".len()..];
    let field = rest.split_whitespace().next().unwrap_or_default();
    let inclusive = rest.contains(">=");
    let value = rest.split('\'').nth(1).unwrap_or_default();
    if value == "@latest" {
        return events.len();
    }
    let Ok(n) = value.parse::<i64>() else {
        return 0;
    };
    let admits = |i: usize, e: &Stored| {
        let key = match field {
            "offset" => i as i64 * OFFSET_STEP,
            "sequence-number" => i as i64,
            "enqueued-time" => e.enqueued_ms,
            _ => return true,
        };
        if inclusive {
            key >= n
        } else {
            key > n
        }
    };
    events
        .iter()
        .enumerate()
        .position(|(i, e)| admits(i, e))
        .unwrap_or(events.len())
}

fn event_message(index: usize, stored: &Stored) -> Message<Data> {
    Message::builder()
        .message_annotations(
            MessageAnnotations::builder()
                .insert(
                    fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(
                        "x-opt-sequence-number".into(),
                    ),
                    Value::Long(index as i64),
                )
                .insert(
                    fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(
                        "x-opt-offset".into(),
                    ),
                    Value::String((index as i64 * OFFSET_STEP).to_string()),
                )
                .insert(
                    fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(
                        "x-opt-enqueued-time".into(),
                    ),
                    Value::Timestamp(Timestamp::from_milliseconds(stored.enqueued_ms)),
                )
                .build(),
        )
        .data(Binary::from(stored.body.clone()))
        .build()
}

async fn serve_partition(mut sender: Sender, address: String, inner: Arc<Inner>) {
    let group = address
        .split("/ConsumerGroups/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("$Default")
        .to_string();
    let Some(partition) = address
        .rsplit("/Partitions/")
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<usize>().ok())
        .filter(|p| *p < inner.partitions.len())
    else {
        let _ = sender
            .close_with_error(definitions::Error::new(
                definitions::AmqpError::NotFound,
                format!("no partition at {address}"),
                None,
            ))
            .await;
        return;
    };
    inner.attaches.fetch_add(1, Ordering::Relaxed);
    let epoch = epoch_of(&sender);
    let id = inner.next_link.fetch_add(1, Ordering::Relaxed);
    let (control_tx, mut control) = mpsc::unbounded_channel();
    {
        let mut links = inner.links.lock().unwrap();
        // A receiver with an owner level displaces those of the same or a lower one.
        if let Some(e) = epoch {
            for l in links.iter() {
                if l.partition == partition && l.group == group && l.epoch.is_none_or(|o| o <= e) {
                    let _ = l.control.send(LinkError::Stolen);
                }
            }
        }
        links.push(Link {
            id,
            partition,
            group,
            epoch,
            control: control_tx,
        });
    }
    let log = &inner.partitions[partition];
    let mut next = start_index(&selector(&sender), &log.events.lock().unwrap());
    let mut grew = log.len.subscribe();
    let kicked = loop {
        if let Ok(error) = control.try_recv() {
            break Some(error);
        }
        let message = {
            let events = log.events.lock().unwrap();
            events.get(next).map(|e| event_message(next, e))
        };
        if let Some(message) = message {
            if sender.send(message).await.is_err() {
                break None;
            }
            next += 1;
            continue;
        }
        tokio::select! {
            error = control.recv() => break error,
            _ = grew.changed() => {}
            _ = sender.on_detach() => break None,
        }
    };
    inner.links.lock().unwrap().retain(|l| l.id != id);
    match kicked {
        Some(error) => {
            let text = format!("{error:?}");
            let _ = sender
                .close_with_error(definitions::Error::new(error, text, None))
                .await;
        }
        None => {
            let _ = sender.close().await;
        }
    }
}
