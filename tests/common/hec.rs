//! A strict Splunk HTTP Event Collector for tests: it follows real Splunk where receivers
//! differ (no metadata carry-over, closed envelope, prefix acceptance, forget-after-true)
//! and can be told to misbehave (ack delay and loss, busy storms, poison events).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// How a token is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Ack,
    NoAck,
    Disabled,
}

#[derive(Debug, Default)]
struct Channel {
    next_id: u64,
    /// Ack id → when it becomes true.
    ready: HashMap<u64, Instant>,
}

#[derive(Debug)]
pub struct Behaviour {
    pub tokens: HashMap<String, Token>,
    /// Largest decompressed body; more is 413.
    pub max_body: usize,
    pub ack_delay: Duration,
    /// The first this-many ack ids never become true.
    pub lose_acks: u64,
    /// Answer 503 code 9 until then.
    pub busy_until: Option<Instant>,
    /// An event whose JSON contains this text is invalid (code 6).
    pub poison: Option<String>,
    /// Count accepted envelopes (one per line) instead of checking and keeping them, so
    /// a benchmark measures the sender rather than this receiver's JSON parsing.
    pub count_only: bool,
}

impl Behaviour {
    /// The default receiver, making each indexer acknowledgement true `delay` after its
    /// request: a Splunk whose indexers are slow.
    pub fn acking_after(delay: Duration) -> Self {
        Behaviour {
            ack_delay: delay,
            ..Behaviour::default()
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            tokens: HashMap::from([
                ("good-token".to_string(), Token::Ack),
                ("noack-token".to_string(), Token::NoAck),
                ("disabled-token".to_string(), Token::Disabled),
            ]),
            max_body: 800 << 20,
            ack_delay: Duration::ZERO,
            lose_acks: 0,
            busy_until: None,
            poison: None,
            count_only: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct State {
    /// Every accepted envelope, in arrival order.
    pub events: Vec<Value>,
    /// Envelopes accepted with `count_only`.
    pub counted: u64,
    /// When the last accepted request arrived.
    pub last_accepted: Option<Instant>,
    pub requests: u64,
    pub busy_replies: u64,
    pub too_large_replies: u64,
    pub ack_polls: u64,
    lost: HashSet<(String, u64)>,
    issued: u64,
    channels: HashMap<String, Channel>,
}

pub struct HecReceiver {
    pub addr: SocketAddr,
    pub behaviour: Arc<Mutex<Behaviour>>,
    pub state: Arc<Mutex<State>>,
}

impl HecReceiver {
    pub async fn start(behaviour: Behaviour) -> HecReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let state = Arc::new(Mutex::new(State::default()));
        let (b, s) = (Arc::clone(&behaviour), Arc::clone(&state));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (b, s) = (Arc::clone(&b), Arc::clone(&s));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, Arc::clone(&b), Arc::clone(&s))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HecReceiver {
            addr,
            behaviour,
            state,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `event` of every accepted envelope.
    pub fn events(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|e| e["event"].clone())
            .collect()
    }
}

/// The record id of a `raw` event (the HEC sink's default document): CloudTrail's
/// `eventID`, Entra's `properties.id`.
pub fn raw_id(event: &Value) -> String {
    event["eventID"]
        .as_str()
        .or_else(|| event["properties"]["id"].as_str())
        .unwrap_or_else(|| panic!("a raw event without an id: {event}"))
        .to_string()
}

fn reply(status: u16, body: Value) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

fn code(status: u16, code: u32, text: &str) -> Result<Response<Full<Bytes>>, Infallible> {
    reply(status, json!({"text": text, "code": code}))
}

async fn handle(
    req: Request<Incoming>,
    behaviour: Arc<Mutex<Behaviour>>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/services/collector/health" {
        return code(200, 17, "HEC is healthy");
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let channel = req
        .headers()
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let Some(auth) = auth else {
        return code(401, 2, "Token is required");
    };
    let Some(token) = auth.strip_prefix("Splunk ") else {
        return code(401, 3, "Invalid authorization");
    };
    let mode = behaviour.lock().unwrap().tokens.get(token).copied();
    let mode = match mode {
        None => return code(403, 4, "Invalid token"),
        Some(Token::Disabled) => return code(403, 1, "Token disabled"),
        Some(m) => m,
    };
    if mode == Token::Ack {
        match &channel {
            None => return code(400, 10, "Data channel is missing"),
            Some(c) if uuid::Uuid::parse_str(c).is_err() => {
                return code(400, 11, "Invalid data channel")
            }
            _ => {}
        }
    }
    let body = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return code(400, 6, "Invalid data format");
        }
        out
    } else {
        raw.to_vec()
    };
    match path.as_str() {
        "/services/collector/ack" => ack(mode, channel, &body, &state),
        "/services/collector/event" => event(mode, channel, &body, &behaviour, &state),
        _ => code(404, 404, "The requested URL was not found on this server."),
    }
}

fn ack(
    mode: Token,
    channel: Option<String>,
    body: &[u8],
    state: &Mutex<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if mode == Token::NoAck {
        return code(400, 14, "ACK is disabled");
    }
    let Some(channel) = channel else {
        return code(400, 10, "Data channel is missing");
    };
    let query: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.ack_polls += 1;
    let lost = s.lost.clone();
    let ch = s.channels.entry(channel.clone()).or_default();
    let mut answers = serde_json::Map::new();
    for id in query["acks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
    {
        let ready = !lost.contains(&(channel.clone(), id))
            && ch.ready.get(&id).is_some_and(|t| *t <= Instant::now());
        if ready {
            // Splunk forgets an id once it has answered true.
            ch.ready.remove(&id);
        }
        answers.insert(id.to_string(), Value::Bool(ready));
    }
    reply(200, json!({ "acks": answers }))
}

/// Why envelope `v` would be refused by Splunk, if it would.
fn invalid(v: &Value, poison: Option<&str>) -> Option<(u32, &'static str)> {
    let Some(obj) = v.as_object() else {
        return Some((6, "Invalid data format"));
    };
    const KEYS: &[&str] = &[
        "time",
        "host",
        "source",
        "sourcetype",
        "index",
        "event",
        "fields",
    ];
    if obj.keys().any(|k| !KEYS.contains(&k.as_str())) {
        return Some((6, "Invalid data format"));
    }
    match obj.get("event") {
        None => return Some((12, "Event field is required")),
        Some(Value::Null) | Some(Value::Bool(false)) => return Some((6, "Invalid data format")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Some((13, "Event field cannot be blank"))
        }
        _ => {}
    }
    if let Some(t) = obj.get("time") {
        let text = t.to_string();
        let seconds = t.as_f64().is_some_and(|x| x > 0.0 && x < 1e11);
        let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
        if !seconds || decimals > 6 {
            return Some((6, "Invalid data format"));
        }
    }
    if let Some(fields) = obj.get("fields") {
        let flat = fields.as_object().is_some_and(|f| {
            f.values().all(|x| {
                x.is_string() || x.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            })
        });
        if !flat {
            return Some((15, "Error in handling indexed fields"));
        }
    }
    if poison.is_some_and(|p| obj["event"].to_string().contains(p)) {
        return Some((6, "Invalid data format"));
    }
    None
}

fn event(
    mode: Token,
    channel: Option<String>,
    body: &[u8],
    behaviour: &Mutex<Behaviour>,
    state: &Mutex<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let b = behaviour.lock().unwrap();
    let mut s = state.lock().unwrap();
    s.requests += 1;
    if b.busy_until.is_some_and(|t| Instant::now() < t) {
        s.busy_replies += 1;
        return code(503, 9, "Server is busy");
    }
    if body.len() > b.max_body {
        s.too_large_replies += 1;
        return Ok(Response::builder()
            .status(413)
            .body(Full::new(Bytes::from("Content too large")))
            .unwrap());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return code(400, 5, "No data");
    }
    if b.count_only {
        s.counted += body
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
    } else if let Some(refused) = check_and_keep(body, &b, &mut s) {
        return refused;
    }
    s.last_accepted = Some(Instant::now());
    if mode == Token::NoAck {
        return code(200, 0, "Success");
    }
    let channel = channel.expect("checked above");
    s.issued += 1;
    let lose = s.issued <= b.lose_acks;
    let ch = s.channels.entry(channel.clone()).or_default();
    let id = ch.next_id;
    ch.next_id += 1;
    ch.ready.insert(id, Instant::now() + b.ack_delay);
    if lose {
        s.lost.insert((channel, id));
    }
    reply(200, json!({"text": "Success", "code": 0, "ackId": id}))
}

/// Keep the body's envelopes the way Splunk would: up to the first invalid one, which
/// is refused with its number.
fn check_and_keep(
    body: &[u8],
    b: &Behaviour,
    s: &mut State,
) -> Option<Result<Response<Full<Bytes>>, Infallible>> {
    let mut accepted = Vec::new();
    for (i, item) in serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .enumerate()
    {
        let problem = match &item {
            Ok(v) => invalid(v, b.poison.as_deref()),
            Err(_) => Some((6, "Invalid data format")),
        };
        if let Some((c, text)) = problem {
            // Splunk indexed everything before the bad event.
            s.events.extend(accepted);
            return Some(reply(
                400,
                json!({"text": text, "code": c, "invalid-event-number": i}),
            ));
        }
        accepted.push(item.unwrap());
    }
    s.events.extend(accepted);
    None
}
