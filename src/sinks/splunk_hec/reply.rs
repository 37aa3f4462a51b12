//! What an HEC reply means for the batch that was sent, by body code first and HTTP
//! status second (Splunk's error-code table).

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default, rename = "ackId")]
    ack_id: Option<u64>,
    #[serde(default, rename = "invalid-event-number")]
    invalid_event: Option<usize>,
}

/// The meaning of one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Indexed (200 mode) or queued for indexing under `ack_id` (ack mode).
    Accepted { ack_id: Option<u64> },
    /// Events before `index` were indexed, event `index` is bad, the rest was not read.
    Partial { index: usize, reason: String },
    /// 413: the body is over the collector's size limit.
    TooLarge,
    /// Worth retrying later (busy, unavailable, network); `busy` lowers the send rate.
    Retry { reason: String, busy: bool },
    /// A configuration problem (token, channel, endpoint): a sink fault.
    Fault(String),
    /// The whole request is unusable and retrying will not help.
    Rejected(String),
}

pub fn classify(status: u16, body: &str) -> Reply {
    let b: Body = serde_json::from_str(body).unwrap_or_default();
    let what = |fallback: &str| {
        let text = if b.text.is_empty() {
            fallback
        } else {
            b.text.as_str()
        };
        match b.code {
            Some(c) => format!("HTTP {status}, code {c}: {text}"),
            None => format!("HTTP {status}: {text}"),
        }
    };
    match (status, b.code) {
        (200, Some(0) | None) => Reply::Accepted { ack_id: b.ack_id },
        (_, Some(1 | 2 | 3 | 4 | 16 | 21 | 22)) | (401 | 403, _) => Reply::Fault(format!(
            "the collector refused the token ({}); check the token and that it is enabled",
            what("unauthorized")
        )),
        (_, Some(10 | 11)) => Reply::Fault(format!(
            "the collector refused the request channel ({})",
            what("channel")
        )),
        (_, Some(6 | 7 | 12 | 13 | 15)) => match b.invalid_event {
            Some(index) => Reply::Partial {
                index,
                reason: what("invalid event"),
            },
            None => Reply::Rejected(what("invalid data")),
        },
        (_, Some(5)) => Reply::Rejected(what("no data")),
        (413, _) => Reply::TooLarge,
        (_, Some(9 | 18 | 19 | 20)) | (503 | 429, _) => Reply::Retry {
            reason: what("busy"),
            busy: true,
        },
        (500..=599, _) | (_, Some(8)) => Reply::Retry {
            reason: what("server error"),
            busy: false,
        },
        _ => Reply::Fault(format!(
            "unexpected reply ({}); check the endpoint URL",
            what("unexpected")
        )),
    }
}

/// Answers of an ack poll: `{"acks":{"0":true,"1":false}}`.
#[derive(Debug, Deserialize)]
pub struct AckReply {
    pub acks: std::collections::HashMap<String, bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_come_first() {
        assert_eq!(
            classify(200, r#"{"text":"Success","code":0,"ackId":3}"#),
            Reply::Accepted { ack_id: Some(3) }
        );
        assert_eq!(
            classify(
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#
            ),
            Reply::Partial {
                index: 2,
                reason: "HTTP 400, code 6: Invalid data format".into()
            }
        );
        assert!(matches!(
            classify(403, r#"{"text":"Invalid token","code":4}"#),
            Reply::Fault(_)
        ));
        assert!(matches!(
            classify(503, r#"{"text":"Server is busy","code":9}"#),
            Reply::Retry { busy: true, .. }
        ));
        assert!(matches!(
            classify(502, "bad gateway"),
            Reply::Retry { busy: false, .. }
        ));
        assert_eq!(classify(413, ""), Reply::TooLarge);
        assert!(matches!(
            classify(400, r#"{"text":"No data","code":5}"#),
            Reply::Rejected(_)
        ));
        assert!(matches!(
            classify(404, r#"{"text":"not found","code":404}"#),
            Reply::Fault(_)
        ));
    }
}
