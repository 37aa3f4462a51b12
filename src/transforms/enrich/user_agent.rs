//! User-agent parsing with the uap-core regexes, as Elastic's `user_agent` processor does:
//! `user_agent.name`, `.version`, `.os.*` and `.device.name` on the ECS document. Off
//! unless `enrich.user_agent` is set: a thousand regexes cost more than the rest of a
//! record's normalization.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::OnceLock;

use ua_parser::{Extractor, Regexes};

use super::Enricher;
use crate::transforms::normalize::Normalized;

/// uap-core 0.18.0 `regexes.yaml` as JSON (`config/uap-core/README.md`).
const REGEXES: &str = include_str!("../../../config/uap-core/regexes.json");

/// The extractor, built once per process on first use.
fn extractor() -> &'static Extractor<'static> {
    static EXTRACTOR: OnceLock<Extractor<'static>> = OnceLock::new();
    EXTRACTOR.get_or_init(|| {
        let regexes: Regexes<'static> =
            serde_json::from_str(REGEXES).expect("the bundled uap-core regexes are valid JSON");
        Extractor::try_from(regexes).expect("the bundled uap-core regexes compile")
    })
}

/// `1.16.248` from the parts a parser found.
fn dotted<'a>(parts: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let parts: Vec<&str> = parts.into_iter().map_while(|p| p).collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

/// What the regexes make of one user agent.
struct Parsed {
    name: String,
    version: Option<String>,
    os: Option<(String, Option<String>)>,
    device: String,
}

fn parse(agent: &str) -> Parsed {
    let (ua, os, device) = extractor().extract(agent);
    let ua = ua.unwrap_or_default();
    Parsed {
        name: if ua.family.is_empty() {
            "Other".into()
        } else {
            ua.family.into_owned()
        },
        version: dotted([ua.major, ua.minor, ua.patch]),
        os: os.filter(|o| o.os != "Other").map(|o| {
            let version = dotted([o.major.as_deref(), o.minor.as_deref(), o.patch.as_deref()]);
            (o.os.into_owned(), version)
        }),
        device: device
            .map(|d| d.device.into_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "Other".into()),
    }
}

/// Agents seen lately on this thread, with what they parsed to: a trail repeats a few
/// hundred agents, and one lookup costs far less than a thousand regexes. Bounded: at
/// most this many entries of at most `CACHED_LEN` bytes each, then it starts over.
const CACHE_ENTRIES: usize = 4096;
const CACHED_LEN: usize = 512;

thread_local! {
    static CACHE: RefCell<HashMap<String, Rc<Parsed>>> = RefCell::new(HashMap::new());
}

fn parsed(agent: &str) -> Rc<Parsed> {
    if agent.len() > CACHED_LEN {
        return Rc::new(parse(agent));
    }
    CACHE.with(|cache| {
        if let Some(p) = cache.borrow().get(agent) {
            return Rc::clone(p);
        }
        let p = Rc::new(parse(agent));
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(agent.to_string(), Rc::clone(&p));
        p
    })
}

pub struct UserAgent;

impl UserAgent {
    /// Build the parser now, so the first record does not pay for it.
    pub fn build() -> Self {
        extractor();
        UserAgent
    }
}

impl Enricher for UserAgent {
    fn enrich(&self, record: &mut Normalized) {
        let Some(ecs) = record.ecs.as_mut() else {
            return;
        };
        let Some(original) = record.source.user_agent() else {
            return;
        };
        let p = parsed(original);
        ecs.put("user_agent.name", p.name.as_str());
        if let Some(v) = &p.version {
            ecs.put("user_agent.version", v.as_str());
        }
        if let Some((name, version)) = &p.os {
            ecs.put("user_agent.os.name", name.as_str());
            if let Some(v) = version {
                ecs.put("user_agent.os.full", format!("{name} {v}"));
                ecs.put("user_agent.os.version", v.as_str());
            }
        }
        ecs.put("user_agent.device.name", p.device.as_str());
    }
}
