// Included by the decoder targets: turn arbitrary bytes into a JSON object, decode it and,
// when it decodes, normalize it to ECS and OCSF.
use auditbridge::transforms::decode::{self, Decoded};
use auditbridge::transforms::normalize::{self, OutputFormat};
use serde_json::{Map, Value};

pub fn decode_as(data: &[u8], shape: impl Fn(&mut Map<String, Value>)) {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    shape(&mut map);
    let text = Value::Object(map).to_string();
    let now = chrono::Utc::now();
    if let Ok(Decoded::Record(record)) = decode::decode(&text, 4 << 20, now) {
        let _ = normalize::normalize(record, OutputFormat::Both, || "fuzz".into(), now);
    }
}
