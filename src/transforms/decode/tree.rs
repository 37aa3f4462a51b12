//! A decoded record as a tree that borrows its keys and strings from the input text.
//!
//! serde_json's own `Value` made a `String` for every key and string and a `BTreeMap` for
//! every object, then freed them all again: that was a quarter of the transform stage.
//! This tree is read through the same methods. An object keeps its keys in the order the
//! record wrote them, one per key, the last value written winning: the order Elastic's
//! pipeline fills its Java maps in, which the Java text forms of the record print
//! ([`java_text`](crate::transforms::normalize::java_text)). sonic-rs parses first and
//! serde_json has the last word ([`Value::parse`]): its grammar, its errors and its depth
//! limit are the ones that apply.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;

/// A JSON string: borrowed from the input unless it held escapes.
///
/// A borrowed string has nothing to escape when written, so its JSON text is the input's
/// own: JSON text holds no bare quote, backslash or control character, and a text borrowed
/// from elsewhere is copied unless it holds none either. Kept to the `Cow` alone, without
/// a flag beside it, a string is 24 bytes, and an object's member 56 rather than 64.
#[derive(Clone, Default)]
pub struct Str<'a> {
    text: Cow<'a, str>,
}

impl<'a> Str<'a> {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Written between quotes as it is, with no escaping.
    pub fn is_verbatim(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }

    pub fn into_owned(self) -> Str<'static> {
        Str {
            text: Cow::Owned(self.text.into_owned()),
        }
    }

    fn new(text: Cow<'a, str>) -> Self {
        match text {
            Cow::Borrowed(s) if is_plain(s) => Str::verbatim(s),
            text => Str {
                text: Cow::Owned(text.into_owned()),
            },
        }
    }
}

/// `s` holds no byte JSON text must escape: written between quotes as it is, it is its
/// own JSON text.
pub fn is_plain(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Str<'_> {}

impl Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl Borrow<str> for Str<'_> {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq<str> for Str<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.text == *other
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.text == **other
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str::new(Cow::Borrowed(s))
    }
}

impl From<String> for Str<'_> {
    fn from(s: String) -> Self {
        Str::new(Cow::Owned(s))
    }
}

impl<'a> From<Cow<'a, str>> for Str<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        Str::new(s)
    }
}

/// A JSON value of a decoded record.
#[derive(Clone, PartialEq, Default)]
pub enum Value<'a> {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(Str<'a>),
    Array(Vec<Value<'a>>),
    Object(Map<'a>),
}

/// A JSON object: its members in the order their keys first came, one per key.
#[derive(Clone, Default)]
pub struct Map<'a> {
    members: Vec<(Str<'a>, Value<'a>)>,
    /// The [`sketch_bit`]s of the keys it has held: a key whose bit is clear is not here,
    /// which one test says where a scan compared it with every key. Records are asked for
    /// many keys they lack (`errorCode`, `insightDetails`, `vpcEndpointId` …).
    sketch: u64,
}

impl<'a> Value<'a> {
    /// Parse one JSON text, borrowing from it.
    ///
    /// sonic-rs reads it first: it finds where strings end 16 or 32 bytes at a time,
    /// where serde_json goes 8 at a time, and strings are most of a record. serde_json
    /// reads again whatever sonic-rs refuses, or that holds a number no double can hold
    /// or a float zero (sonic-rs drops the sign of `-0`), or nests deeper than
    /// [`FAST_DEPTH`]: so what is accepted, the error a bad record is
    /// dead-lettered with and the depth limit stay serde_json's. Both round floats to the
    /// nearest double (serde_json with `float_roundtrip`).
    pub fn parse(text: &'a str) -> serde_json::Result<Value<'a>> {
        Self::parse_with(text, true)
    }

    /// [`parse`](Self::parse) for a text this program wrote: a document puts a record a
    /// few levels below the depth the decoder let through, so no depth limit applies.
    pub fn parse_written(text: &'a str) -> serde_json::Result<Value<'a>> {
        Self::parse_with(text, false)
    }

    fn parse_with(text: &'a str, depth_limit: bool) -> serde_json::Result<Value<'a>> {
        let mut fast = sonic_rs::Deserializer::from_str(text);
        match Tree::fast().deserialize(&mut fast) {
            Ok(value) if fast.end().is_ok() => Ok(value),
            _ => {
                let mut de = serde_json::Deserializer::from_str(text);
                if !depth_limit {
                    de.disable_recursion_limit();
                }
                let value = Value::deserialize(&mut de)?;
                de.end()?;
                Ok(value)
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map<'a>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Map<'a>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value<'a>>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Value::Number(_))
    }

    pub fn is_array(&self) -> bool {
        matches!(self, Value::Array(_))
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.as_object()?.get(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value<'a>> {
        self.as_object_mut()?.get_mut(key)
    }

    /// The value, leaving null in its place.
    pub fn take(&mut self) -> Value<'a> {
        std::mem::take(self)
    }

    /// The same value, owning its strings.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Number(n) => Value::Number(n),
            Value::String(s) => Value::String(s.into_owned()),
            Value::Array(items) => Value::Array(items.into_iter().map(Value::into_owned).collect()),
            Value::Object(map) => Value::Object(map.into_owned()),
        }
    }

    /// The same value as serde_json's, for the documents and findings that own theirs.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(map) => serde_json::Value::Object(map.to_json()),
        }
    }
}

impl From<serde_json::Value> for Value<'static> {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s.into()),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => Value::Object(map.into()),
        }
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Map<'static> {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        Map::from_members(map.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::String(s.into())
    }
}

impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::String(s.into())
    }
}

impl From<i64> for Value<'_> {
    fn from(n: i64) -> Self {
        Value::Number(n.into())
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Number(n) => write!(f, "Number({n})"),
            Value::String(s) => write!(f, "String({s:?})"),
            Value::Array(items) => f.debug_list().entries(items).finish(),
            Value::Object(map) => fmt::Debug::fmt(map, f),
        }
    }
}

/// Compact JSON text, as serde_json's `Value` prints.
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl<'a> Map<'a> {
    pub fn new() -> Self {
        Map::default()
    }

    pub fn with_capacity(members: usize) -> Self {
        Map {
            members: Vec::with_capacity(members),
            sketch: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Where `key` is among [`members`](Map::members). A scan: objects are small, and
    /// telling keys apart by length first cost less than the comparisons of a binary search.
    pub fn position(&self, key: &str) -> Option<usize> {
        if self.sketch & sketch_bit(key) == 0 {
            return None;
        }
        self.members.iter().position(|(k, _)| same_key(k, key))
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.position(key).map(|at| &self.members[at].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value<'a>> {
        self.position(key).map(|at| &mut self.members[at].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Set `key`, in its place if it is there, else last; the value it had, if any.
    pub fn insert(&mut self, key: impl Into<Str<'a>>, value: Value<'a>) -> Option<Value<'a>> {
        let key = key.into();
        match self.position(&key) {
            Some(at) => Some(std::mem::replace(&mut self.members[at].1, value)),
            None => {
                self.sketch |= sketch_bit(&key);
                self.members.push((key, value));
                None
            }
        }
    }

    /// Give the member `from` the key `to`, in its place, unless `to` is taken.
    pub fn rename(&mut self, from: &str, to: impl Into<Str<'a>>) {
        let to = to.into();
        if self.contains_key(&to) {
            return;
        }
        if let Some(at) = self.position(from) {
            self.sketch |= sketch_bit(&to);
            self.members[at].0 = to;
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value<'a>> {
        self.position(key).map(|at| self.members.remove(at).1)
    }

    /// The members in the order they came, for a reader that visits them in another.
    pub fn members(&self) -> &[(Str<'a>, Value<'a>)] {
        &self.members
    }

    /// The value of the member at place `at`.
    pub fn value_at(&self, at: usize) -> Option<&Value<'a>> {
        self.members.get(at).map(|(_, v)| v)
    }

    /// The value of the member at place `at`, to change; its key stays.
    pub fn value_at_mut(&mut self, at: usize) -> Option<&mut Value<'a>> {
        self.members.get_mut(at).map(|(_, v)| v)
    }

    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&Str<'a>, &Value<'a>)> + ExactSizeIterator {
        self.members.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Str<'a>> {
        self.members.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Value<'a>> {
        self.members.iter().map(|(_, v)| v)
    }

    pub fn into_owned(self) -> Map<'static> {
        Map {
            sketch: self.sketch,
            members: self
                .members
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.members
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect()
    }

    /// Members as written, possibly repeating a key.
    fn from_members(mut members: Vec<(Str<'a>, Value<'a>)>) -> Self {
        let sketch = last_wins(&mut members);
        Map { members, sketch }
    }
}

/// Equal when they hold the same members, in any order, as JSON objects compare.
impl PartialEq for Map<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

/// One member per key, where the key first came, holding the value written last: how a
/// JSON object with a repeated key reads, and what a Java `HashMap` filled in this order
/// keeps. Sorting to find repeats was the costliest step of building the tree; a 64-bit
/// sketch of the keys seen finds the few members worth comparing. Returns the sketch.
pub fn last_wins<K: AsRef<str>, V>(members: &mut Vec<(K, V)>) -> u64 {
    let mut seen = 0u64;
    let mut at = 0;
    while at < members.len() {
        let key = members[at].0.as_ref();
        let bit = sketch_bit(key);
        if seen & bit != 0 {
            if let Some(first) = members[..at]
                .iter()
                .position(|(k, _)| same_key(k.as_ref(), key))
            {
                let (_, value) = members.remove(at);
                members[first].1 = value;
                continue;
            }
        }
        seen |= bit;
        at += 1;
    }
    seen
}

/// `a == b` for object keys, with no call: `==` on strings calls `memcmp` for every key of
/// the same length, and keys are mostly 4 to 16 bytes long, which two overlapping words
/// compare whole.
#[inline]
pub fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

fn word(s: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

fn half(s: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

/// A key's bit in the sketch, from its length and its last eight bytes (or fewer). Its
/// first and last bytes alone gave `eventTime`, `eventName` and `eventType`, in every
/// CloudTrail record, one bit, and each of them a scan of the keys before it.
fn sketch_bit(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let n = bytes.len();
    let tail = match n {
        8.. => word(bytes, n - 8),
        4..=7 => u64::from(half(bytes, n - 4)) << 8 | u64::from(bytes[0]),
        _ => bytes.iter().fold(0, |h, &b| h << 8 | u64::from(b)),
    };
    1 << ((tail ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

impl<'a> FromIterator<(Str<'a>, Value<'a>)> for Map<'a> {
    fn from_iter<I: IntoIterator<Item = (Str<'a>, Value<'a>)>>(iter: I) -> Self {
        Map::from_members(iter.into_iter().collect())
    }
}

impl<'a, 'm> IntoIterator for &'m Map<'a> {
    type Item = (&'m Str<'a>, &'m Value<'a>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'m, (Str<'a>, Value<'a>)>,
        fn(&'m (Str<'a>, Value<'a>)) -> (&'m Str<'a>, &'m Value<'a>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.members.iter().map(|(k, v)| (k, v))
    }
}

impl<'a> IntoIterator for Map<'a> {
    type Item = (Str<'a>, Value<'a>);
    type IntoIter = std::vec::IntoIter<(Str<'a>, Value<'a>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.members.into_iter()
    }
}

/// `value["key"]`, as serde_json's tree answers it: the member, or null.
impl<'a> std::ops::Index<&str> for Value<'a> {
    type Output = Value<'a>;

    fn index(&self, key: &str) -> &Value<'a> {
        const NULL: Value<'static> = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

/// `value[i]`, as serde_json's tree answers it: the item, or null.
impl<'a> std::ops::Index<usize> for Value<'a> {
    type Output = Value<'a>;

    fn index(&self, i: usize) -> &Value<'a> {
        const NULL: Value<'static> = Value::Null;
        self.as_array()
            .and_then(|items| items.get(i))
            .unwrap_or(&NULL)
    }
}

impl PartialEq<&str> for Value<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

/// `map["key"]`, as serde_json's map answers it: the member, or a panic when there is none.
impl<'a> std::ops::Index<&str> for Map<'a> {
    type Output = Value<'a>;

    fn index(&self, key: &str) -> &Value<'a> {
        self.get(key)
            .unwrap_or_else(|| panic!("no member `{key}` in this object"))
    }
}

impl fmt::Debug for Map<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => n.serialize(s),
            Value::String(text) => s.serialize_str(text),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(map) => map.serialize(s),
        }
    }
}

impl Serialize for Map<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            out.serialize_entry(k.as_str(), v)?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Tree { fast: None }.deserialize(d)
    }
}

/// Nesting that the first reader, sonic-rs, takes; below serde_json's limit (128), so a
/// record refused for its depth is refused by serde_json, with its message.
const FAST_DEPTH: u8 = 100;

/// Room for a record's own fields (CloudTrail writes up to about 25): grown from eight,
/// the list was copied twice per record.
const RECORD_MEMBERS: usize = 32;

/// Builds the tree. With `fast`, the levels of nesting left, and a float that is zero or
/// not finite is refused, so that serde_json reads the text again (see [`Value::parse`]).
#[derive(Clone, Copy)]
struct Tree {
    fast: Option<u8>,
}

impl Tree {
    fn fast() -> Self {
        Tree {
            fast: Some(FAST_DEPTH),
        }
    }

    /// The seed for the values one level down.
    fn inner<E: de::Error>(self) -> Result<Tree, E> {
        match self.fast {
            Some(0) => Err(E::custom("nested too deep for the first reader")),
            Some(left) => Ok(Tree {
                fast: Some(left - 1),
            }),
            None => Ok(self),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Tree {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tree {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value<'de>, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value<'de>, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value<'de>, E> {
        if self.fast.is_some() && (n == 0.0 || !n.is_finite()) {
            return Err(E::custom("a zero or a number out of a double's range"));
        }
        // As serde_json's own tree: a float JSON cannot hold becomes null.
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::String(Str::verbatim(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value<'de>, E> {
        Ok(Value::String(s.to_string().into()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value<'de>, E> {
        Ok(Value::String(s.into()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let inner = self.inner()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let inner = self.inner()?;
        let room = match self.fast {
            Some(FAST_DEPTH) => RECORD_MEMBERS,
            _ => 8,
        };
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(room));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            members.push((key, map.next_value_seed(inner)?));
        }
        Ok(Value::Object(Map::from_members(members)))
    }
}

impl<'de> Str<'de> {
    /// A string the parser lent from the input: it held no escapes.
    fn verbatim(s: &'de str) -> Self {
        Str {
            text: Cow::Borrowed(s),
        }
    }
}

/// A key, borrowed when it holds no escapes (`Cow`'s own `Deserialize` always copies).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Str<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Str<'de>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Str<'de>, E> {
        Ok(Str::verbatim(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Str<'de>, E> {
        Ok(s.to_string().into())
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Str<'de>, E> {
        Ok(s.into())
    }
}

/// `serde_json::json!`, made a record's tree: tests write records as JSON literals.
#[cfg(test)]
macro_rules! json {
    ($($json:tt)+) => {
        $crate::transforms::decode::tree::Value::from(serde_json::json!($($json)+))
    };
}

#[cfg(test)]
pub(crate) use json;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_equal_only_when_every_byte_is() {
        for n in 0..=24 {
            let key: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_key(&key, &key.clone()), "{key:?}");
            assert!(!same_key(&key, &format!("{key}a")), "{key:?}");
            for at in 0..n {
                let mut other = key.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                assert!(!same_key(&key, &other), "{key:?} {other:?}");
            }
        }
    }

    #[test]
    fn reads_as_serde_json_reads_and_borrows_unescaped_text() {
        let text = r#"{"b":[1,-2,2.5,true,null],"a":{"z":"x\"y","y":"plain"},"b":"last","c":1e3}"#;
        let tree = Value::parse(text).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(tree.to_json(), theirs);
        assert_eq!(
            tree.to_string(),
            r#"{"b":"last","a":{"z":"x\"y","y":"plain"},"c":1000.0}"#
        );
        let keys: Vec<&str> = tree
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["b", "a", "c"]);
        let inner = tree.get("a").unwrap();
        let text = |key: &str| match inner.get(key) {
            Some(Value::String(s)) => s.clone(),
            other => panic!("{other:?}"),
        };
        assert!(matches!(text("y").text, Cow::Borrowed("plain")) && text("y").is_verbatim());
        assert!(matches!(text("z").text, Cow::Owned(_)) && !text("z").is_verbatim());
        assert_eq!(tree.get("b").and_then(Value::as_str), Some("last"));
    }

    /// What keeping a string to its `Cow` bought: room for an object's key sketch with a
    /// value still 32 bytes, and a member 56 (it was 64 with a flag beside the `Cow`).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn strings_values_and_members_keep_their_sizes() {
        use std::mem::size_of;
        assert_eq!(size_of::<Str>(), 24);
        assert_eq!(size_of::<Map>(), 32);
        assert_eq!(size_of::<Value>(), 32);
        assert_eq!(size_of::<(Str, Value)>(), 56);
    }

    /// A text lent from elsewhere is written as it is only when it has nothing to escape.
    #[test]
    fn a_lent_text_is_verbatim_only_when_plain() {
        for plain in ["", "plain", "é ü", "a'b"] {
            assert!(Str::from(plain).is_verbatim(), "{plain:?}");
        }
        for escaped in ["a\"b", "a\\b", "tab\there", "\u{1}"] {
            let s = Str::from(escaped);
            assert!(!s.is_verbatim() && s == escaped, "{escaped:?}");
        }
        assert!(!Str::from("plain".to_string()).is_verbatim());
    }

    /// Every key an object holds is found, however it came (parsed, inserted, renamed), and
    /// none it lacks: the sketch only rules keys out.
    #[test]
    fn objects_find_every_key_they_hold() {
        let keys: Vec<String> = (0..200).map(|i| format!("key{i}")).collect();
        let text = format!(
            "{{{}}}",
            keys.iter()
                .enumerate()
                .map(|(i, k)| format!("\"{k}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut map = Value::parse(&text).unwrap().as_object().cloned().unwrap();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.get(k).and_then(Value::as_i64), Some(i as i64), "{k}");
        }
        for absent in ["key200", "key-1", "eventName", ""] {
            assert!(!map.contains_key(absent), "{absent}");
        }
        map.insert("added", Value::from(1));
        map.rename("key7", "renamed");
        assert_eq!(map.get("added").and_then(Value::as_i64), Some(1));
        assert_eq!(map.get("renamed").and_then(Value::as_i64), Some(7));
        assert!(!map.contains_key("key7"));
        let mut small = Map::new();
        assert!(small.get("a").is_none());
        small.insert("a", Value::Null);
        assert!(small.contains_key("a") && !small.contains_key("b"));
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deeper_than_serde_json_goes = format!("{}{}", "[".repeat(129), "]".repeat(129));
        for bad in [
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":1}}",
            "{\"a\":1} x",
            "{1:2}",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\x\"",
            "\"\\u00g0\"",
            "\"a\u{1}b\"",
            "\"a\tb\"",
            "\u{feff}{}",
            "01",
            "1.",
            "-",
            "1e",
            "1e400",
            ".5",
            "+1",
            "nul",
            "NaN",
            "[",
            "",
            " ",
            deep.as_str(),
            deeper_than_serde_json_goes.as_str(),
        ] {
            assert_eq!(
                Value::parse(bad).unwrap_err().to_string(),
                serde_json::from_str::<serde_json::Value>(bad)
                    .unwrap_err()
                    .to_string(),
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_what_serde_json_reads_as_serde_json_reads_it() {
        let nested = format!("{}1{}", "[".repeat(127), "]".repeat(127));
        for good in [
            r#"{"a":"plain","b":"esc\"aped \u00e9 \ud83d\ude00","c":[]}"#,
            "[0, -0, 1, -1, 18446744073709551615, 18446744073709551616, -9223372036854775808, -9223372036854775809]",
            "[0.1, -0.0, 1E2, 1e-7, 2.2250738585072011e-308, 9007199254740993.0, 1.7976931348623157e308]",
            "[123456789012345678901234567890, 0.30000000000000000000000000000000000001]",
            // Halfway cases and long mantissas, where a fast float reader rounds wrongly.
            "[1.00000000000000011102230246251565404236316680908203125, 9007199254740992.5, 2.470328229206232720882e-324, 47.60621, -122.33207, 5e-324]",
            " \t\n\r{ \"a\" : [ true , false , null ] } \n",
            r#""\u0000\u001f\/\b\f\n\r\t""#,
            "\"\u{7f} \u{2028} \u{10ffff}\"",
            nested.as_str(),
        ] {
            let theirs: serde_json::Value = serde_json::from_str(good).unwrap();
            let tree = Value::parse(good).unwrap();
            assert_eq!(tree.to_json(), theirs, "{good}");
            assert_eq!(tree.to_string(), theirs.to_string(), "{good}");
        }
    }

    #[test]
    fn the_first_reader_takes_a_record_and_passes_on_zeros_huge_numbers_and_depth() {
        let first = |text: &str| {
            let mut fast = sonic_rs::Deserializer::from_str(text);
            Tree::fast()
                .deserialize(&mut fast)
                .is_ok_and(|_| fast.end().is_ok())
        };
        assert!(first(
            r#"{"eventName":"CreateUser","n":[1,-2],"s":"q\"uote","ok":true,"no":null}"#
        ));
        assert!(first(r#"{"n":1.5,"m":-2.2250738585072011e-308}"#));
        assert!(!first(r#"{"n":1e400}"#));
        assert!(!first(r#"{"n":-0.0}"#));
        let depth = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(first(&depth(usize::from(FAST_DEPTH))));
        assert!(!first(&depth(usize::from(FAST_DEPTH) + 1)));
        assert!(Value::parse(&depth(usize::from(FAST_DEPTH) + 1)).is_ok());
    }

    /// A record as deep as the decoder lets through sits a few levels deeper in a document,
    /// and the program reads its own documents back: that reading has no depth limit, while
    /// the decoder keeps serde_json's.
    #[test]
    fn the_programs_own_text_is_read_at_any_depth() {
        let depth = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(Value::parse(&depth(127)).is_ok());
        let deep = depth(160);
        assert_eq!(
            Value::parse(&deep).unwrap_err().to_string(),
            "recursion limit exceeded at line 1 column 128"
        );
        let mut value = Value::parse_written(&deep).unwrap();
        let mut levels = 0;
        while let Value::Array(mut items) = value {
            value = items.pop().unwrap();
            levels += 1;
        }
        assert_eq!((levels, value), (160, Value::from(1)));
        assert!(Value::parse_written(&format!("{deep}]")).is_err());
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_its_last_value() {
        // 200 keys, more than the sketch has bits, so every kind of collision is met.
        let mut members: Vec<(String, usize)> = (0..200).map(|i| (format!("k{i}"), i)).collect();
        members.push(("k7".into(), 1000));
        members.push(("k199".into(), 1001));
        members.push(("k7".into(), 1002));
        last_wins(&mut members);
        assert_eq!(members.len(), 200);
        for (i, (key, value)) in members.iter().enumerate() {
            assert_eq!(*key, format!("k{i}"));
            let want = match i {
                7 => 1002,
                199 => 1001,
                _ => i,
            };
            assert_eq!(*value, want, "{key}");
        }
    }

    #[test]
    fn long_keys_that_share_their_ends_are_told_apart_and_repeats_found() {
        let text = r#"{"eventTime":1,"eventName":2,"eventType":3,"eventTime":4,"requestParameters":5,"responseParameters":6,"requestParameters":7}"#;
        let Value::Object(map) = Value::parse(text).unwrap() else {
            panic!("an object")
        };
        let members: Vec<(&str, i64)> = map
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_i64().unwrap()))
            .collect();
        assert_eq!(
            members,
            [
                ("eventTime", 4),
                ("eventName", 2),
                ("eventType", 3),
                ("requestParameters", 7),
                ("responseParameters", 6)
            ]
        );
    }

    #[test]
    fn objects_are_equal_in_any_order() {
        let one = Value::parse(r#"{"a":1,"b":{"c":2,"d":3}}"#).unwrap();
        let two = Value::parse(r#"{"b":{"d":3,"c":2},"a":1}"#).unwrap();
        let three = Value::parse(r#"{"b":{"d":3,"c":2},"a":2}"#).unwrap();
        assert_eq!(one, two);
        assert_ne!(one, three);
    }

    #[test]
    fn insert_and_remove_keep_the_order_keys_came_in() {
        let mut map = Map::new();
        map.insert("b", Value::from("2"));
        map.insert("a", Value::from("1"));
        assert_eq!(map.insert("b", Value::from("3")), Some(Value::from("2")));
        assert_eq!(
            Value::Object(map.clone()).to_string(),
            r#"{"b":"3","a":"1"}"#
        );
        assert_eq!(map.remove("a"), Some(Value::from("1")));
        assert!(!map.contains_key("a"));
    }
}
