//! The SQS message-shape parser (S3, SNS, EventBridge, CloudTrail notifications) and the
//! S3 key classifier.
#![no_main]
use auditbridge::sources::sqs::notification::{self, Notification};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Notification::Objects(objects) = notification::parse(body) {
        for o in objects {
            let _ = notification::key_kind(&o.key);
            let _ = notification::key_account(&o.key);
        }
    }
});
