//! A normalized document: the fields the normalizer and the enrichers wrote, plus the
//! sections copied from the source record, which are written straight from the record at
//! serialization instead of being cloned into the document first.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::json;
use super::sections::Part;
use super::taxonomy::{EcsCategories, OcsfClass};
use crate::transforms::decode::fields::{str_of, string_of};
use crate::transforms::decode::tree::same_key;
use crate::transforms::decode::{tree, SourceRecord};

/// An ECS or OCSF document under construction.
///
/// Objects are small vectors keyed by field names that are mostly `&'static str`: building
/// `serde_json::Map` trees with a `String` per key, and dropping them again, was a fifth of
/// the transform stage's work. Keys come out in the order first written.
#[derive(Debug, Clone, Default)]
pub struct Document {
    root: Vec<(Key, Node)>,
    /// Fields written straight from the record instead, which `root` lies over.
    base: Option<Base>,
}

type Key = Cow<'static, str>;

thread_local! {
    /// Documents are written here, then leave in one copy. Strings are written after
    /// reserving six times their length: into a fresh buffer per document, that grew it
    /// several times per document and left slack to trim; this one grows once.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The largest scratch buffer a thread keeps between documents.
const SCRATCH_KEPT: usize = 1 << 20;

thread_local! {
    /// The texts of this thread's latest documents, one after the other in one block.
    static TEXTS: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// The block [`TEXTS`] takes at a time: room for about twenty documents of the corpus.
/// A text this long or longer gets a block of its own.
const TEXTS_BLOCK: usize = 64 << 10;

#[derive(Debug, Clone)]
enum Node {
    Value(Value),
    /// A constant text (`event`, `aws.cloudtrail`): written as it is, never allocated.
    Static(&'static str),
    /// Constant texts (`event.category`), then one more when there is one (the `info`
    /// Elastic adds to some `event.type`s), as a list: made from constant lists, never
    /// allocated.
    Statics(&'static [&'static str], Option<&'static str>),
    /// A time, written as RFC 3339 text with milliseconds.
    Time(DateTime<Utc>),
    /// An object placed whole, or a field's value that fields were put into later.
    Object(Vec<(Key, Node)>),
    /// An object made by putting a field below a path where there was nothing: over a
    /// document's [`Base`], it merges with the object the base writes there.
    Branch(Vec<(Key, Node)>),
    /// A list made by [`Document::push`] where there was nothing: over a document's
    /// [`Base`], it continues the list the base writes there.
    Pushed(Vec<Node>),
    /// Written from the source record at serialization.
    Part(Part),
    /// A value written earlier as JSON text, shared by the documents that hold it: the
    /// ATT&CK fields of one set of matched rules, which many records repeat.
    Text(Bytes),
}

/// `node`, with a value held as text made nodes again, in the text's order, for a write
/// below or after it.
fn opened(node: Node) -> Node {
    match node {
        // The text was written by this program from a value, so it parses.
        Node::Text(text) => std::str::from_utf8(&text)
            .ok()
            .and_then(|text| tree::Value::parse_written(text).ok())
            .map_or(Node::Value(Value::Null), |value| node_of(&value)),
        other => other,
    }
}

/// A decoded value as nodes: objects as nodes in their order, the rest as values.
fn node_of(value: &tree::Value<'_>) -> Node {
    match value {
        tree::Value::Object(map) => Node::Object(
            map.iter()
                .map(|(k, v)| (Cow::Owned(k.to_string()), node_of(v)))
                .collect(),
        ),
        other => Node::Value(other.to_json()),
    }
}

/// The object at dotted `parent` below `level` (`""` is `level` itself), made (or made an
/// object) as needed; `key` turns a segment into a stored key.
fn object_at<'a, 'p>(
    mut level: &'a mut Vec<(Key, Node)>,
    parent: &'p str,
    key: &impl Fn(&'p str) -> Key,
) -> &'a mut Vec<(Key, Node)> {
    if parent.is_empty() {
        return level;
    }
    // Paths are short: a byte loop finds the dots faster than `split`'s searcher calls.
    let mut rest = parent;
    loop {
        let (segment, tail) = match rest.bytes().position(|b| b == b'.') {
            Some(dot) => (&rest[..dot], Some(&rest[dot + 1..])),
            None => (rest, None),
        };
        let at = match level.iter().rposition(|(k, _)| same_key(k, segment)) {
            Some(at) => at,
            None => {
                // A field is put into it next: made with the room a first push takes,
                // the list skips growing from nothing, which cost more than allocating.
                level.push((key(segment), Node::Branch(Vec::with_capacity(4))));
                level.len() - 1
            }
        };
        let node = &mut level[at].1;
        if let Node::Text(_) = node {
            *node = opened(std::mem::replace(node, Node::Object(Vec::new())));
        }
        if !matches!(node, Node::Object(_) | Node::Branch(_)) {
            *node = match std::mem::replace(node, Node::Object(Vec::new())) {
                // A whole object written earlier is opened up so fields can join it.
                Node::Value(Value::Object(map)) => Node::Object(
                    map.into_iter()
                        .map(|(k, v)| (Cow::Owned(k), Node::Value(v)))
                        .collect(),
                ),
                _ => Node::Object(Vec::new()),
            };
        }
        let (Node::Object(children) | Node::Branch(children)) = node else {
            unreachable!("made an object just above")
        };
        level = children;
        match tail {
            Some(t) => rest = t,
            None => return level,
        }
    }
}

/// `path` split at its last dot: (parent, last segment).
fn parent_and_last(path: &str) -> (&str, &str) {
    match path.bytes().rposition(|b| b == b'.') {
        Some(dot) => (&path[..dot], &path[dot + 1..]),
        None => ("", path),
    }
}

/// The object holding `path`'s last segment, and that segment as a key.
fn slot(root: &mut Vec<(Key, Node)>, path: Key) -> (&mut Vec<(Key, Node)>, Key) {
    match path {
        Cow::Borrowed(p) => {
            let (parent, last) = parent_and_last(p);
            (
                object_at(root, parent, &|s: &'static str| Cow::Borrowed(s)),
                Cow::Borrowed(last),
            )
        }
        Cow::Owned(p) => {
            let (parent, last) = parent_and_last(&p);
            let last = Cow::Owned(last.to_string());
            (
                object_at(root, parent, &|s: &str| Cow::Owned(s.to_string())),
                last,
            )
        }
    }
}

impl Document {
    /// An empty document with room for the top-level fields ECS and OCSF documents have
    /// (about 20 and 30): growing the list step by step copied it four times per document.
    pub fn new() -> Self {
        Document {
            root: Vec::with_capacity(32),
            base: None,
        }
    }

    /// A document whose fields `base` writes from the record at serialization; fields put
    /// into it lie over those (see [`Fields`]).
    pub fn based(base: Base) -> Self {
        Document {
            root: Vec::new(),
            base: Some(base),
        }
    }

    /// A document that starts with `head`'s fields, placed without walking a path.
    pub fn from_head(head: Head) -> Self {
        let mut root = head.0;
        root.reserve(32usize.saturating_sub(root.len()));
        Document { root, base: None }
    }

    fn set(&mut self, path: Key, node: Node) {
        let (level, last) = slot(&mut self.root, path);
        match level.iter_mut().rev().find(|(k, _)| same_key(k, &last)) {
            Some((_, existing)) => *existing = node,
            None => level.push((last, node)),
        }
    }

    /// Set `path` (dot-separated) to `value`; a later write to a path wins.
    pub fn put(&mut self, path: impl Into<Key>, value: impl Into<Value>) {
        self.set(path.into(), Node::Value(value.into()));
    }

    /// Set `path` when `value` is present.
    pub fn put_opt<V: Into<Value>>(&mut self, path: &'static str, value: Option<V>) {
        if let Some(v) = value {
            self.put(path, v);
        }
    }

    /// Set `path` to a constant text.
    pub fn put_static(&mut self, path: &'static str, value: &'static str) {
        self.set(Cow::Borrowed(path), Node::Static(value));
    }

    /// Set `path` to a time, written as RFC 3339 text with milliseconds.
    pub fn put_time(&mut self, path: &'static str, time: DateTime<Utc>) {
        self.set(Cow::Borrowed(path), Node::Time(time));
    }

    /// Set `path` to an object of `head`'s fields; none when it has none. An [`Object`]
    /// comes `into()` one, written as its `into_map()` would be.
    pub fn put_object(&mut self, path: &'static str, head: Head) {
        if !head.0.is_empty() {
            self.set(Cow::Borrowed(path), Node::Object(head.0));
        }
    }

    /// Append `item` to the array at `path` (made when missing).
    pub fn push(&mut self, path: &'static str, item: Value) {
        self.push_node(path, Node::Value(item));
    }

    /// Append an object of `head`'s fields to the array at `path` (made when missing):
    /// [`push`](Self::push) without a map made, written and dropped again.
    pub fn push_object(&mut self, path: &'static str, head: Head) {
        self.push_node(path, Node::Object(head.0));
    }

    fn push_node(&mut self, path: &'static str, item: Node) {
        let (level, last) = slot(&mut self.root, Cow::Borrowed(path));
        let Some(at) = level.iter().rposition(|(k, _)| same_key(k, &last)) else {
            level.push((last, Node::Pushed(vec![item])));
            return;
        };
        let node = &mut level[at].1;
        *node = match opened(std::mem::replace(node, Node::Pushed(Vec::new()))) {
            Node::Pushed(mut items) => {
                items.push(item);
                Node::Pushed(items)
            }
            Node::Value(Value::Array(items)) => {
                let mut items: Vec<Node> = items.into_iter().map(Node::Value).collect();
                items.push(item);
                Node::Pushed(items)
            }
            _ => Node::Pushed(vec![item]),
        };
    }

    /// Set `path` to a value already written as JSON `text`, which documents share.
    pub fn put_text(&mut self, path: &'static str, text: Bytes) {
        self.set(Cow::Borrowed(path), Node::Text(text));
    }

    /// Write `part` of the source record at `path` when the document is serialized. It
    /// replaces a field of the same path.
    pub fn splice(&mut self, path: &'static str, part: Part) {
        self.set(Cow::Borrowed(path), Node::Part(part));
    }

    /// Write the record's top-level string `key` at `path` from the record at
    /// serialization (no copy), when it is a non-empty string; whether it was.
    pub fn splice_str(
        &mut self,
        path: &'static str,
        fields: &tree::Map<'_>,
        key: &'static str,
    ) -> bool {
        let present = str_of(fields, key).is_some();
        if present {
            self.splice(path, Part::Field(key));
        }
        present
    }

    /// The JSON text of the document for `source`, the record it was built from.
    pub fn to_bytes(&self, source: &SourceRecord) -> Bytes {
        with_text(|out| self.write(source, None, out), shared)
    }

    /// The document's text, or of its top-level fields named in `only`.
    fn write(&self, source: &SourceRecord, only: Option<&[&str]>, out: &mut Vec<u8>) {
        let mut fields = |write: &dyn Fn(&mut Fields)| {
            let mut fields = Fields::open(out, &self.root, source);
            fields.only = only;
            write(&mut fields);
            fields.close();
        };
        match (self.base, source) {
            (Some(Base::EcsCloudTrail { categories, now }), SourceRecord::CloudTrail(r)) => {
                fields(&|f| super::ecs::write_cloudtrail(r, categories, now, f));
            }
            (Some(Base::OcsfCloudTrail { class, now }), SourceRecord::CloudTrail(r)) => {
                fields(&|f| super::ocsf::write_cloudtrail(r, class, now, f));
            }
            // A document is only written with the record it was built from, so a base
            // always meets its own kind of record.
            _ => match only {
                None => write_object(&self.root, source, out),
                Some(keys) => {
                    let mut object = json::Object::open(out);
                    for (key, node) in &self.root {
                        if keys.iter().any(|k| same_key(k, key)) {
                            write_node(node, source, key_of(&mut object, key));
                        }
                    }
                    object.close();
                }
            },
        }
    }

    /// The document's top-level fields named in `keys`, sections included, as a tree for
    /// `read`: for enrichers that repeat parts of it (a finding repeats its activity's
    /// `api`, `actor` …). The other fields are not written: an OCSF activity's `unmapped`
    /// section, which no finding repeats, was most of the text. The tree borrows from the
    /// text, so its strings are not copied. An empty map when the text does not parse.
    pub fn read<R>(
        &self,
        source: &SourceRecord,
        keys: &[&str],
        read: impl FnOnce(&tree::Map<'_>) -> R,
    ) -> R {
        with_text(
            |out| self.write(source, Some(keys), out),
            |text| {
                let tree = std::str::from_utf8(text)
                    .ok()
                    .and_then(|text| tree::Value::parse_written(text).ok());
                match tree {
                    Some(tree::Value::Object(fields)) => read(&fields),
                    _ => read(&tree::Map::new()),
                }
            },
        )
    }
}

/// `text` in [`TEXTS`], the block it shares with the thread's neighbouring documents,
/// which is freed when the last of them is. A block of its own per document cost a
/// large-block allocation per document, freed later by the sink's thread: mimalloc's
/// slow paths on both sides (callgrind, `replay --format ecs`, 3,785 records: see
/// BENCHMARKS.md). The documents of one block travel together, in one batch or the next,
/// so a block is held about as long as its documents.
fn shared(text: &[u8]) -> Bytes {
    if text.len() >= TEXTS_BLOCK {
        return Bytes::copy_from_slice(text);
    }
    TEXTS.with(|texts| {
        let mut texts = texts.borrow_mut();
        if texts.capacity() < text.len() {
            *texts = BytesMut::with_capacity(TEXTS_BLOCK);
        }
        texts.extend_from_slice(text);
        texts.split().freeze()
    })
}

/// `read`s the JSON text that `write` puts into this thread's scratch buffer.
fn with_text<R>(write: impl FnOnce(&mut Vec<u8>), read: impl FnOnce(&[u8]) -> R) -> R {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        write(&mut scratch);
        let out = read(&scratch);
        // One huge record must not keep its buffer's size for the thread's life.
        if scratch.capacity() > SCRATCH_KEPT {
            *scratch = Vec::new();
        }
        out
    })
}

/// The fields of one object in the order written, for the header every document of a kind
/// starts with (`@timestamp`, `event.*`, `cloud.*`): its shape is known when the code is
/// written, so nesting [`Head`]s places each field with no dotted path to split and no
/// object to search, as [`Document::put`] does. Keys must not repeat.
#[derive(Debug, Default)]
pub struct Head(Vec<(Key, Node)>);

impl Head {
    pub fn with_capacity(fields: usize) -> Self {
        Head(Vec::with_capacity(fields))
    }

    fn push(&mut self, key: &'static str, node: Node) {
        // Nothing searches a head, so a repeated key would be written twice.
        debug_assert!(
            !self.0.iter().any(|(k, _)| k == key),
            "`{key}` is already in this head"
        );
        self.0.push((Cow::Borrowed(key), node));
    }

    pub fn put(&mut self, key: &'static str, value: impl Into<Value>) {
        self.push(key, Node::Value(value.into()));
    }

    pub fn put_opt<V: Into<Value>>(&mut self, key: &'static str, value: Option<V>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }

    pub fn put_static(&mut self, key: &'static str, value: &'static str) {
        self.push(key, Node::Static(value));
    }

    /// A list of constant texts, then `extra` when there is one; none when that is empty.
    pub fn put_statics(
        &mut self,
        key: &'static str,
        texts: &'static [&'static str],
        extra: Option<&'static str>,
    ) {
        if !texts.is_empty() || extra.is_some() {
            self.push(key, Node::Statics(texts, extra));
        }
    }

    pub fn put_time(&mut self, key: &'static str, time: DateTime<Utc>) {
        self.push(key, Node::Time(time));
    }

    pub fn put_leaf(&mut self, key: &'static str, leaf: Leaf) {
        match leaf {
            Leaf::Int(n) => self.put(key, n),
            Leaf::Str(text) => self.put(key, text),
            Leaf::Constant(text) => self.put_static(key, text),
            Leaf::Joined(a, b) => self.put(key, format!("{a}: {b}")),
            Leaf::Constants(texts, extra) => self.put_statics(key, texts, extra),
            Leaf::Time(time) => self.put_time(key, time),
        }
    }

    /// The head's fields as the JSON text of an object, for [`Document::put_text`].
    pub fn to_text(&self, source: &SourceRecord) -> Bytes {
        let mut out = Vec::new();
        write_object(&self.0, source, &mut out);
        out.into()
    }

    /// An object; none when it has no field.
    pub fn put_object(&mut self, key: &'static str, object: Head) {
        if !object.0.is_empty() {
            self.push(key, Node::Object(object.0));
        }
    }

    /// The record's top-level string `key` at `field`, written from the record at
    /// serialization, when it is a non-empty string; whether it was.
    pub fn splice_str(
        &mut self,
        field: &'static str,
        fields: &tree::Map<'_>,
        key: &'static str,
    ) -> bool {
        let present = str_of(fields, key).is_some();
        if present {
            self.push(field, Node::Part(Part::Field(key)));
        }
        present
    }
}

/// An object built from dotted paths, its keys sorted at every level as a map orders them:
/// placed whole, it is written as its `into_map()` was, without making the map (a `String`
/// per key, and a tree to drop again).
impl From<Object> for Head {
    fn from(object: Object) -> Self {
        Head(sorted(object.0.root))
    }
}

/// A nested JSON object built from dotted paths (an OCSF actor, an ATT&CK technique): a
/// [`Document`] that holds no section of a source record, so it can become a plain map.
#[derive(Debug, Clone, Default)]
pub struct Object(Document);

impl Object {
    pub fn new() -> Self {
        Object::default()
    }

    /// Set `path` (dot-separated) to `value`; a later write to a path wins.
    pub fn put(&mut self, path: impl Into<Key>, value: impl Into<Value>) {
        self.0.put(path, value);
    }

    /// Set `path` when `value` is present.
    pub fn put_opt<V: Into<Value>>(&mut self, path: &'static str, value: Option<V>) {
        self.0.put_opt(path, value);
    }

    /// Whether the object has the top-level field `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.0.root.iter().any(|(k, _)| k == key)
    }

    pub fn into_map(self) -> Map<String, Value> {
        fn map(children: Vec<(Key, Node)>) -> Map<String, Value> {
            children
                .into_iter()
                .map(|(k, node)| (k.into_owned(), value(node)))
                .collect()
        }
        fn value(node: Node) -> Value {
            match node {
                Node::Value(v) => v,
                Node::Static(text) => Value::from(text),
                Node::Statics(texts, extra) => Value::from_iter(texts.iter().copied().chain(extra)),
                Node::Time(time) => Value::from(time.to_rfc3339_opts(SecondsFormat::Millis, true)),
                Node::Object(inner) | Node::Branch(inner) => Value::Object(map(inner)),
                Node::Pushed(items) => Value::Array(items.into_iter().map(value).collect()),
                Node::Part(_) => unreachable!("an Object has nothing spliced in"),
                text @ Node::Text(_) => value(opened(text)),
            }
        }
        map(self.0.root)
    }
}

impl From<Map<String, Value>> for Object {
    fn from(map: Map<String, Value>) -> Self {
        Object(Document {
            root: map
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), Node::Value(v)))
                .collect(),
            base: None,
        })
    }
}

/// `children` with their keys sorted at every level, as a map orders them.
fn sorted(mut children: Vec<(Key, Node)>) -> Vec<(Key, Node)> {
    // A level holds each key once, so the order is the map's.
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (_, node) in &mut children {
        if let Node::Object(inner) | Node::Branch(inner) = node {
            *inner = sorted(std::mem::take(inner));
        }
    }
    children
}

fn write_object(children: &[(Key, Node)], source: &SourceRecord, out: &mut Vec<u8>) {
    let mut object = json::Object::open(out);
    for (key, node) in children {
        write_node(node, source, key_of(&mut object, key));
    }
    object.close();
}

/// `key` written into `object`: a borrowed key is a path of this program's source, a name
/// with nothing to escape; an owned one came from data.
fn key_of<'o>(object: &'o mut json::Object<'_>, key: &Key) -> &'o mut Vec<u8> {
    match key {
        Cow::Borrowed(name) => object.name(name),
        Cow::Owned(text) => object.key(text),
    }
}

#[inline(always)]
fn write_node(node: &Node, source: &SourceRecord, out: &mut Vec<u8>) {
    match node {
        Node::Value(v) => json::value(out, v),
        Node::Static(text) => json::short_string(out, text),
        Node::Statics(texts, extra) => {
            let mut list = json::Array::open(out);
            for text in texts.iter().chain(extra) {
                json::short_string(list.item(), text);
            }
            list.close();
        }
        Node::Time(time) => json::time(out, *time),
        Node::Object(inner) | Node::Branch(inner) => write_object(inner, source, out),
        Node::Pushed(items) => {
            let mut list = json::Array::open(out);
            for item in items {
                write_node(item, source, list.item());
            }
            list.close();
        }
        Node::Part(part) => part.write(source, out),
        Node::Text(text) => out.extend_from_slice(text),
    }
}

/// What a document's own fields are written from at serialization, besides its record,
/// where they are not kept as a tree.
#[derive(Debug, Clone, Copy)]
pub enum Base {
    /// ECS of a CloudTrail record ([`super::ecs::write_cloudtrail`]).
    EcsCloudTrail {
        categories: EcsCategories,
        now: DateTime<Utc>,
    },
    /// OCSF of a CloudTrail record ([`super::ocsf::write_cloudtrail`]).
    OcsfCloudTrail {
        class: OcsfClass,
        now: DateTime<Utc>,
    },
}

/// A field's value where a head and a writer place the same fields.
#[derive(Debug)]
pub enum Leaf<'a> {
    Int(i64),
    Str(&'a str),
    Constant(&'static str),
    /// Two constant texts joined by `": "` (OCSF's `type_name`), written without making
    /// the text first.
    Joined(&'static str, &'static str),
    /// Constant texts, then one more when there is one; none when that is empty.
    Constants(&'static [&'static str], Option<&'static str>),
    Time(DateTime<Utc>),
}

/// An object written straight from a record, with the fields put into its document at the
/// same level lying over it, as if they had been put after the object's own: one of those
/// replaces the field of its key in place, an object made by a path merges with the object
/// it lies over, a list made by [`Document::push`] continues the list it lies over, and the
/// rest follow the object's own fields in the order they were put.
pub struct Fields<'w, 'r> {
    object: json::Object<'w>,
    overlay: &'w [(Key, Node)],
    used: Used,
    source: &'w SourceRecord<'r>,
    /// The keys to write, when not all.
    only: Option<&'w [&'w str]>,
}

impl<'w, 'r> Fields<'w, 'r> {
    fn open(
        out: &'w mut Vec<u8>,
        overlay: &'w [(Key, Node)],
        source: &'w SourceRecord<'r>,
    ) -> Self {
        Fields {
            object: json::Object::open(out),
            overlay,
            used: Used::new(overlay.len()),
            source,
            only: None,
        }
    }

    /// Whether `key` is left out. Asked for every field, so kept inline: called, it cost
    /// more than the rest of placing a field.
    #[inline(always)]
    fn skips(&self, key: &str) -> bool {
        self.only
            .is_some_and(|keys| !keys.iter().any(|k| same_key(k, key)))
    }

    /// The overlay's field of `key`, now written. Most levels have no overlay, which is
    /// told inline.
    #[inline(always)]
    fn over(&mut self, key: &str) -> Option<&'w Node> {
        if self.overlay.is_empty() {
            None
        } else {
            self.over_some(key)
        }
    }

    fn over_some(&mut self, key: &str) -> Option<&'w Node> {
        let at = self.overlay.iter().position(|(k, _)| same_key(k, key))?;
        self.used.mark(at);
        Some(&self.overlay[at].1)
    }

    /// Where the object's own value of `key` goes; none when the overlay's replaces it,
    /// which is then written.
    ///
    /// Inlined, with the writers of one field below it, into each place a field is put:
    /// there the key is a constant, so its length is known and its bytes are stored with
    /// no test. Called, placing a field took about 80 instructions, and documents place
    /// about seventy each (callgrind, BENCHMARKS.md).
    #[inline(always)]
    fn own(&mut self, key: &'static str) -> Option<&mut Vec<u8>> {
        if self.skips(key) {
            return None;
        }
        match self.over(key) {
            Some(node) => {
                write_node(node, self.source, self.object.name(key));
                None
            }
            None => Some(self.object.name(key)),
        }
    }

    #[inline(always)]
    pub fn str(&mut self, key: &'static str, value: &str) {
        if let Some(out) = self.own(key) {
            json::string(out, value);
        }
    }

    #[inline(always)]
    pub fn int(&mut self, key: &'static str, n: i64) {
        if let Some(out) = self.own(key) {
            json::int(out, n);
        }
    }

    #[inline(always)]
    pub fn bool(&mut self, key: &'static str, value: bool) {
        if let Some(out) = self.own(key) {
            out.extend_from_slice(if value { b"true" } else { b"false" });
        }
    }

    pub fn value(&mut self, key: &'static str, value: &Value) {
        if let Some(out) = self.own(key) {
            json::value(out, value);
        }
    }

    pub fn leaf(&mut self, key: &'static str, leaf: Leaf) {
        match leaf {
            Leaf::Int(n) => self.int(key, n),
            Leaf::Str(text) => self.str(key, text),
            Leaf::Constant(text) => self.constant(key, text),
            Leaf::Joined(a, b) => self.joined(key, a, b),
            Leaf::Constants(texts, extra) => self.constants(key, texts, extra),
            Leaf::Time(time) => self.time(key, time),
        }
    }

    #[inline(always)]
    pub fn str_opt(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    /// An object of the `texts` there are, at their keys; none when there is none.
    pub fn strs_object(&mut self, key: &'static str, texts: &[(&'static str, Option<&str>)]) {
        if texts.iter().any(|(_, text)| text.is_some()) {
            self.object(key, |object| {
                for (key, text) in texts {
                    object.str_opt(key, *text);
                }
            });
        }
    }

    #[inline(always)]
    pub fn constant(&mut self, key: &'static str, value: &'static str) {
        if let Some(out) = self.own(key) {
            json::short_string(out, value);
        }
    }

    /// `a`, `": "` and `b` as one text.
    pub fn joined(&mut self, key: &'static str, a: &'static str, b: &'static str) {
        if let Some(out) = self.own(key) {
            json::joined(out, a, b);
        }
    }

    #[inline(always)]
    pub fn time(&mut self, key: &'static str, time: DateTime<Utc>) {
        if let Some(out) = self.own(key) {
            json::time(out, time);
        }
    }

    /// The record's top-level string `name` at `key`, when it is a non-empty string.
    /// Written from the string found, not spliced as a part that looks it up again.
    #[inline(always)]
    pub fn record_str(&mut self, key: &'static str, fields: &tree::Map<'_>, name: &'static str) {
        self.record_string(key, string_of(fields, name));
    }

    /// `record_str`, or `""` when the record has no such string: for the fields a schema
    /// requires.
    pub fn record_str_or_empty(
        &mut self,
        key: &'static str,
        fields: &tree::Map<'_>,
        name: &'static str,
    ) {
        self.record_string_or_empty(key, string_of(fields, name));
    }

    /// A string of the record already found, as [`record_str`](Self::record_str) writes it.
    #[inline(always)]
    pub fn record_string(&mut self, key: &'static str, text: Option<&tree::Str<'_>>) {
        if let Some(text) = text {
            self.record_text(key, text);
        }
    }

    /// [`record_string`](Self::record_string), or `""` when there is none.
    #[inline(always)]
    pub fn record_string_or_empty(&mut self, key: &'static str, text: Option<&tree::Str<'_>>) {
        match text {
            Some(text) => self.record_text(key, text),
            None => self.constant(key, ""),
        }
    }

    #[inline(always)]
    fn record_text(&mut self, key: &'static str, text: &tree::Str<'_>) {
        if let Some(out) = self.own(key) {
            json::record_string(out, text);
        }
    }

    pub fn part(&mut self, key: &'static str, part: Part) {
        let source = self.source;
        if let Some(out) = self.own(key) {
            part.write(source, out);
        }
    }

    /// A list of `texts` (constants, then `extra` when there is one); none when that is
    /// empty.
    pub fn constants(
        &mut self,
        key: &'static str,
        texts: &'static [&'static str],
        extra: Option<&'static str>,
    ) {
        if !texts.is_empty() || extra.is_some() {
            self.list(key, |list| {
                for text in texts.iter().chain(&extra) {
                    json::short_string(list.item(), text);
                }
            });
        }
    }

    /// A list of `texts`.
    pub fn strs(&mut self, key: &'static str, texts: &[&str]) {
        self.list(key, |list| {
            for text in texts {
                json::string(list.item(), text);
            }
        });
    }

    /// A list of one object, of the fields `fields` writes.
    pub fn list_of_object(&mut self, key: &'static str, fields: impl FnOnce(&mut Fields<'_, 'r>)) {
        self.list_of_objects(key, [fields], |object, fields| fields(object));
    }

    /// A list of an object per item, of the fields `fields` writes for it.
    pub fn list_of_objects<T>(
        &mut self,
        key: &'static str,
        items: impl IntoIterator<Item = T>,
        fields: impl Fn(&mut Fields<'_, 'r>, T),
    ) {
        let source = self.source;
        self.list(key, |list| {
            for item in items {
                let mut object = Fields::open(list.item(), &[], source);
                fields(&mut object, item);
                object.close();
            }
        });
    }

    fn list(&mut self, key: &'static str, items: impl FnOnce(&mut json::Array)) {
        if self.skips(key) {
            return;
        }
        let pushed = match self.over(key) {
            None => None,
            Some(Node::Pushed(pushed)) => Some(pushed),
            Some(node) => return write_node(node, self.source, self.object.name(key)),
        };
        let mut list = json::Array::open(self.object.name(key));
        items(&mut list);
        for item in pushed.into_iter().flatten() {
            write_node(item, self.source, list.item());
        }
        list.close();
    }

    /// An object at `key` of the fields `fields` writes.
    pub fn object(&mut self, key: &'static str, fields: impl FnOnce(&mut Fields<'_, 'r>)) {
        if self.skips(key) {
            return;
        }
        let overlay: &[(Key, Node)] = match self.over(key) {
            None => &[],
            Some(Node::Branch(overlay)) => overlay,
            Some(node) => return write_node(node, self.source, self.object.name(key)),
        };
        let source = self.source;
        let mut object = Fields::open(self.object.name(key), overlay, source);
        fields(&mut object);
        object.close();
    }

    /// Closes the object after the overlay's fields of keys it did not write.
    fn close(mut self) {
        for (at, (key, node)) in self.overlay.iter().enumerate() {
            if !self.used.get(at) && !self.skips(key) {
                write_node(node, self.source, key_of(&mut self.object, key));
            }
        }
        self.object.close();
    }
}

/// Which fields of an overlay were written.
enum Used {
    Few(u64),
    Many(Vec<bool>),
}

impl Used {
    fn new(fields: usize) -> Self {
        if fields <= 64 {
            Used::Few(0)
        } else {
            Used::Many(vec![false; fields])
        }
    }

    fn mark(&mut self, at: usize) {
        match self {
            Used::Few(bits) => *bits |= 1 << at,
            Used::Many(used) => used[at] = true,
        }
    }

    fn get(&self, at: usize) -> bool {
        match self {
            Used::Few(bits) => bits & 1 << at != 0,
            Used::Many(used) => used[at],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::decode::CloudTrailRecord;
    use chrono::Utc;
    use serde_json::json;

    fn record() -> SourceRecord<'static> {
        let fields = json!({"eventName": "CreateUser", "eventSource": "iam.amazonaws.com",
            "requestParameters": {"userName": "backdoor"}})
        .as_object()
        .cloned()
        .unwrap();
        SourceRecord::CloudTrail(CloudTrailRecord::new(fields.into(), Utc::now()).unwrap())
    }

    /// A document holding the fields of `text` in their order, as puts would have built it.
    fn tree_of(text: &[u8]) -> Document {
        let text = std::str::from_utf8(text).unwrap();
        let Node::Object(root) = node_of(&tree::Value::parse(text).unwrap()) else {
            panic!("not an object: {text}")
        };
        Document { root, base: None }
    }

    /// Fields put into a document over a base land where they would in a document that
    /// held the base's fields as a tree: in place, merged, continued or after the rest.
    #[test]
    fn fields_put_over_a_base_land_as_over_a_tree_of_its_fields() {
        let fields = json!({"eventName": "CreateUser", "eventSource": "iam.amazonaws.com",
            "eventID": "e-1", "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "userName": "alice", "principalId": "AIDA1"},
            "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli",
            "requestParameters": {"userName": "backdoor"}});
        let record = CloudTrailRecord::new(
            fields.as_object().cloned().unwrap().into(),
            "2024-01-02T03:04:05Z".parse().unwrap(),
        )
        .unwrap();
        let source = SourceRecord::CloudTrail(record);
        let base = Base::EcsCloudTrail {
            categories: (&["iam"], &["user", "creation"], false),
            now: "2024-01-02T03:04:06Z".parse().unwrap(),
        };
        let bare = Document::based(base).to_bytes(&source).to_vec();
        let puts = |doc: &mut Document| {
            doc.put("event.kind", "alert");
            doc.put("auditbridge.credential.type", "long-term");
            let mut cloud = Head::default();
            cloud.put_static("provider", "elsewhere");
            doc.put_object("cloud", cloud);
            doc.push("related.user", json!("extra"));
            doc.put("related.ip", "203.0.113.1");
            doc.put("tags", json!(["a"]));
            doc.put("source", json!({"address": "a"}));
            doc.put("source.port", 1);
            doc.push("threat.list", json!(1));
            doc.push("threat.list", json!(2));
            doc.put("user.target", "scalar");
            doc.put("event.category.x", 1);
        };
        let mut over_base = Document::based(base);
        puts(&mut over_base);
        let mut over_tree = tree_of(&bare);
        puts(&mut over_tree);
        let text = String::from_utf8(over_base.to_bytes(&source).to_vec()).unwrap();
        assert_eq!(
            text,
            String::from_utf8(over_tree.to_bytes(&source).to_vec()).unwrap()
        );
        for part in [
            r#""event":{"kind":"alert","created""#,
            r#""category":{"x":1}"#,
            r#""auditbridge":{"time_source":"ingest","credential":{"type":"long-term"}}"#,
            r#""cloud":{"provider":"elsewhere"}"#,
            r#""user":{"id":"AIDA1","name":"alice","target":"scalar"}"#,
            r#""source":{"address":"a","port":1}"#,
            r#""related":{"user":["alice","AIDA1","backdoor","extra"],"ip":"203.0.113.1","#,
            r#""entity":["AIDA1","alice"]},"aws":{"cloudtrail":{"event_id":"e-1","#,
            r#""tags":["a"],"threat":{"list":[1,2]}}"#,
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        // A field put below a section spliced from the record replaces the section, in a
        // tree as over a base (the tree of the base's text holds it as an object instead).
        let below_part = |mut doc: Document| {
            doc.put("aws.cloudtrail.x", 1);
            String::from_utf8(doc.to_bytes(&source).to_vec()).unwrap()
        };
        let mut spliced = Document::new();
        spliced.splice("aws.cloudtrail", Part::EcsCloudTrail);
        assert_eq!(below_part(spliced), r#"{"aws":{"cloudtrail":{"x":1}}}"#);
        assert!(below_part(Document::based(base)).ends_with(r#""aws":{"cloudtrail":{"x":1}}}"#));
        assert_eq!(
            Value::Object(
                over_base.read(&source, &["tags", "cloud", "data_stream"], |t| t.to_json())
            ),
            json!({"cloud": {"provider": "elsewhere"}, "tags": ["a"],
                "data_stream": {"type": "logs", "dataset": "aws.cloudtrail", "namespace": "default"}})
        );
    }

    /// Past 64 fields put at one level, those are still written once each.
    #[test]
    fn many_fields_over_a_base_are_each_written_once() {
        let fields = json!({"eventName": "CreateUser", "eventSource": "iam.amazonaws.com",
            "eventTime": "2024-01-02T03:04:05Z"});
        let now = "2024-01-02T03:04:06Z".parse().unwrap();
        let record = CloudTrailRecord::new(fields.as_object().cloned().unwrap().into(), now);
        let source = SourceRecord::CloudTrail(record.unwrap());
        let base = Base::EcsCloudTrail {
            categories: (&[], &["info"], false),
            now,
        };
        let puts = |doc: &mut Document| {
            for n in 0..70 {
                doc.put(format!("f{n}"), n);
            }
            doc.put("ecs", "replaced");
        };
        let mut over_base = Document::based(base);
        puts(&mut over_base);
        let mut over_tree = tree_of(&Document::based(base).to_bytes(&source));
        puts(&mut over_tree);
        let text = String::from_utf8(over_base.to_bytes(&source).to_vec()).unwrap();
        assert_eq!(
            text,
            String::from_utf8(over_tree.to_bytes(&source).to_vec()).unwrap()
        );
        assert!(text.contains(r#""ecs":"replaced","event""#), "{text}");
        assert!(text.ends_with(r#""f68":68,"f69":69}"#), "{text}");
    }

    #[test]
    fn parts_are_written_at_their_paths_beside_existing_fields() {
        let source = record();
        let mut doc = Document::default();
        doc.put("api.operation", "CreateUser");
        doc.put("b", 1);
        doc.put("data", "replaced");
        doc.splice("api.request.data", Part::Field("requestParameters"));
        doc.splice("x.y", Part::Field("eventName"));
        doc.splice("data", Part::Field("eventSource"));
        let expected = json!({
            "api": {"operation": "CreateUser", "request": {"data": {"userName": "backdoor"}}},
            "b": 1,
            "x": {"y": "CreateUser"},
            "data": "iam.amazonaws.com",
        });
        let text: Value = serde_json::from_slice(&doc.to_bytes(&source)).unwrap();
        assert_eq!(text, expected);
        let read = |keys: &[&str]| Value::Object(doc.read(&source, keys, |t| t.to_json()));
        assert_eq!(read(&["api", "b", "x", "data"]), expected);
        assert_eq!(
            read(&["data", "api", "absent"]),
            json!({"api": {"operation": "CreateUser", "request": {"data": {"userName": "backdoor"}}},
                "data": "iam.amazonaws.com"})
        );
        assert_eq!(read(&[]), json!({}));
    }

    #[test]
    fn text_that_needs_escaping_comes_back_as_written() {
        let fields = json!({"eventName": "X", "eventSource": "s",
            "requestParameters": {"q\"uote": "back\\slash \u{1} \u{1f} \n\t\r \u{2028} é 𝄞 </script>"}})
        .as_object()
        .cloned()
        .unwrap();
        let source =
            SourceRecord::CloudTrail(CloudTrailRecord::new(fields.into(), Utc::now()).unwrap());
        let mut doc = Document::default();
        doc.put("a.b", "tab\there \u{7f} \"q\"");
        doc.put(
            "n",
            json!([1, -2, 1.5e300, 0.1, u64::MAX, i64::MIN, null, true]),
        );
        doc.splice("data", Part::Field("requestParameters"));
        let text = doc.to_bytes(&source).to_vec();
        let parsed: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            parsed,
            Value::Object(doc.read(&source, &["a", "n", "data"], |t| t.to_json()))
        );
        assert_eq!(
            parsed["data"]["q\"uote"],
            "back\\slash \u{1} \u{1f} \n\t\r \u{2028} é 𝄞 </script>"
        );
        assert_eq!(parsed["n"][4], u64::MAX);
    }

    #[test]
    fn a_huge_document_does_not_keep_its_scratch_buffer() {
        let source = record();
        let scratch = || SCRATCH.with(|s| s.borrow().capacity());
        let mut doc = Document::new();
        doc.put("small", "x");
        doc.to_bytes(&source).to_vec();
        let small = scratch();
        assert!(small > 0 && small <= SCRATCH_KEPT, "{small}");
        doc.put("big", "x".repeat(SCRATCH_KEPT));
        let text = doc.to_bytes(&source).to_vec();
        assert_eq!(text.len(), SCRATCH_KEPT + r#"{"small":"x","big":""}"#.len());
        assert_eq!(scratch(), 0);
        doc.read(&source, &["big"], |t| t.to_json());
        assert_eq!(scratch(), 0);
    }

    #[test]
    fn neighbouring_texts_share_a_block_and_a_long_one_has_its_own() {
        let first = shared(br#"{"a":1}"#);
        let second = shared(br#"{"b":[2]}"#);
        assert_eq!(&first[..], br#"{"a":1}"#);
        assert_eq!(&second[..], br#"{"b":[2]}"#);
        assert_eq!(first.as_ptr().wrapping_add(first.len()), second.as_ptr());
        let long = vec![b'x'; TEXTS_BLOCK];
        let own = shared(&long);
        assert_eq!(&own[..], &long[..]);
        // The long text took no room in the block: the next text follows the second.
        let third = shared(b"{}");
        assert_eq!(second.as_ptr().wrapping_add(second.len()), third.as_ptr());
        // Past the block's end, a new block.
        let fill = vec![b'y'; TEXTS_BLOCK - first.len() - second.len() - third.len() - 1];
        let last_in_block = shared(&fill);
        let next = shared(b"[1,2]");
        assert_eq!(&next[..], b"[1,2]");
        assert_ne!(
            last_in_block.as_ptr().wrapping_add(last_in_block.len()),
            next.as_ptr()
        );
        drop((first, second, third, last_in_block));
        assert_eq!(&next[..], b"[1,2]");
    }

    #[test]
    fn objects_pushed_as_heads_join_values_pushed_before_in_one_list() {
        let source = record();
        let mut doc = Document::new();
        doc.put("list", json!([1]));
        doc.push("list", json!({"b": 2}));
        let mut head = Head::with_capacity(2);
        head.put_static("name", "x");
        head.put("n", 3);
        doc.push_object("list", head);
        doc.push_object("fresh", Head::default());
        assert_eq!(
            String::from_utf8(doc.to_bytes(&source).to_vec()).unwrap(),
            r#"{"list":[1,{"b":2},{"name":"x","n":3}],"fresh":[{}]}"#
        );
        assert_eq!(
            Value::Object(Object(doc).into_map()),
            json!({"list": [1, {"b": 2}, {"name": "x", "n": 3}], "fresh": [{}]})
        );
    }

    #[test]
    fn a_head_is_placed_as_written_and_later_fields_join_its_objects() {
        let source = record();
        let mut event = Head::with_capacity(3);
        event.put_static("kind", "event");
        event.splice_str("action", source.fields(), "eventName");
        event.splice_str("code", source.fields(), "errorCode");
        let mut head = Head::default();
        head.put_time("@timestamp", "2024-01-02T03:04:05.678Z".parse().unwrap());
        head.put_object("event", event);
        head.put_object("empty", Head::default());
        head.put_statics("tags", &["a"], Some("b"));
        head.put_statics("none", &[], None);
        head.put_opt::<&str>("absent", None);
        let mut doc = Document::from_head(head);
        doc.put("event.kind", "alert");
        doc.put("event.outcome", "success");
        let text = doc.to_bytes(&source).to_vec();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"@timestamp":"2024-01-02T03:04:05.678Z","event":{"kind":"alert","action":"CreateUser","outcome":"success"},"tags":["a","b"]}"#
        );
        assert_eq!(
            Value::Object(doc.read(&source, &["@timestamp", "event", "tags"], |t| t.to_json())),
            json!({"@timestamp": "2024-01-02T03:04:05.678Z", "tags": ["a", "b"],
                "event": {"kind": "alert", "action": "CreateUser", "outcome": "success"}})
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "`kind` is already in this head")]
    fn a_head_refuses_a_repeated_key() {
        let mut event = Head::default();
        event.put_static("kind", "event");
        event.put("kind", "alert");
    }

    #[test]
    fn an_object_nests_like_writes_into_a_map() {
        let mut o = Object::new();
        o.put("event.action", "X");
        o.put("event.kind", "event");
        o.put_opt::<&str>("user.name", None);
        o.put("user", json!({"id": 1}));
        o.put("user.name", "n");
        assert_eq!(
            Value::Object(o.into_map()),
            json!({"event": {"action": "X", "kind": "event"}, "user": {"id": 1, "name": "n"}})
        );
    }

    #[test]
    fn an_object_put_whole_is_written_as_its_map_was() {
        let source = record();
        let object = || {
            let mut o = Object::new();
            o.put("uid", "arn");
            o.put("account.uid", "1");
            o.put("name", "n");
            o.put("credentials", json!([{"uid": "AKIA", "type": "key"}]));
            o.put("account.type", "AWS");
            o
        };
        let text = |d: &Document| String::from_utf8(d.to_bytes(&source).to_vec()).unwrap();
        let mut whole = Document::default();
        whole.put_object("actor.user", object().into());
        whole.put("actor.user.type", "IAMUser");
        let mut as_map = Document::default();
        as_map.put("actor.user", Value::Object(object().into_map()));
        as_map.put("actor.user.type", "IAMUser");
        assert_eq!(text(&whole), text(&as_map));
        assert_eq!(
            text(&whole),
            r#"{"actor":{"user":{"account":{"type":"AWS","uid":"1"},"credentials":[{"type":"key","uid":"AKIA"}],"name":"n","uid":"arn","type":"IAMUser"}}}"#
        );
        let mut head = Head::default();
        head.put_object("user", object().into());
        assert_eq!(
            text(&Document::from_head(head)),
            r#"{"user":{"account":{"type":"AWS","uid":"1"},"credentials":[{"type":"key","uid":"AKIA"}],"name":"n","uid":"arn"}}"#
        );
        let from_map = Object::from(object().into_map());
        assert!(from_map.contains("account") && !from_map.contains("type"));
    }

    #[test]
    fn fields_nest_like_writes_into_a_map() {
        let source = record();
        let mut doc = Document::default();
        doc.put("event.action", "CreateUser");
        doc.put("user.name", "first");
        doc.put("event.kind", "event");
        doc.put("user.name", "second");
        doc.put("geo", json!({"lat": 1}));
        doc.put("geo.lon", 2);
        doc.put("gone.inner", 1);
        doc.put("gone", "scalar");
        doc.put("auditbridge.time_source", "ingest");
        doc.put("auditbridge.credential", json!({"type": "temporary"}));
        doc.push("enrichments", json!({"name": "a"}));
        doc.push("enrichments", json!({"name": "b"}));
        let text: Value = serde_json::from_slice(&doc.to_bytes(&source)).unwrap();
        assert_eq!(
            text,
            json!({
                "auditbridge": {"credential": {"type": "temporary"}, "time_source": "ingest"},
                "event": {"action": "CreateUser", "kind": "event"},
                "geo": {"lat": 1, "lon": 2},
                "gone": "scalar",
                "enrichments": [{"name": "a"}, {"name": "b"}],
                "user": {"name": "second"},
            })
        );
    }

    /// A value placed as text is written as it is, and written below or pushed to as the
    /// value it is the text of.
    #[test]
    fn text_placed_whole_is_written_as_is_and_opened_by_later_writes() {
        let source = record();
        let mut head = Head::default();
        head.put("id", json!(["T1136"]));
        head.put_static("framework", "MITRE ATT&CK");
        let threat = head.to_text(&source);
        assert_eq!(
            &threat[..],
            br#"{"id":["T1136"],"framework":"MITRE ATT&CK"}"#
        );
        let mut doc = Document::default();
        let mut sharing = Document::default();
        sharing.put_text("threat", threat.clone());
        doc.put_text("threat", threat.clone());
        doc.put_text("tags", Bytes::from_static(br#"["attack.T1136"]"#));
        doc.put_text("rule", Bytes::from_static(br#"{"id":"a"}"#));
        assert_eq!(
            &doc.to_bytes(&source)[..],
            br#"{"threat":{"id":["T1136"],"framework":"MITRE ATT&CK"},"tags":["attack.T1136"],"rule":{"id":"a"}}"#
        );
        doc.put("threat.extra", 1);
        doc.push("tags", json!("attack.attempt"));
        doc.put("rule", "replaced");
        assert_eq!(
            &doc.to_bytes(&source)[..],
            br#"{"threat":{"id":["T1136"],"framework":"MITRE ATT&CK","extra":1},"tags":["attack.T1136","attack.attempt"],"rule":"replaced"}"#
        );
        assert_eq!(
            &sharing.to_bytes(&source)[..],
            br#"{"threat":{"id":["T1136"],"framework":"MITRE ATT&CK"}}"#
        );
    }
}
