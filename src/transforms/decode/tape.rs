//! A record's JSON text indexed in one pass: where each value starts and ends, and where
//! the next one begins. It answers what the decoded tree lost: the order in which the
//! record wrote an object's keys.
//!
//! The text was already parsed once (into the [`tree`](super::tree) the readers use), so
//! the tape trusts its grammar; on text that is not JSON it gives up, never panics.

use std::borrow::Cow;

use super::tree::{Map, Value};

/// The values of one JSON text, in the order they start.
pub struct Tape<'a> {
    text: &'a str,
    nodes: Vec<Node>,
    /// Object members in the whole text: more than the decoded tree holds when an object
    /// repeats a key, which the tree kept once.
    members: usize,
}

#[derive(Clone, Copy)]
struct Node {
    start: u32,
    end: u32,
    /// The node after this one's subtree.
    next: u32,
    /// A string with escapes, which reading must undo.
    escaped: bool,
}

/// One value of a tape.
#[derive(Clone, Copy)]
pub struct Item<'t, 'a> {
    tape: &'t Tape<'a>,
    at: usize,
}

impl<'a> Tape<'a> {
    /// Index `text` (one JSON value). `None` when it is not JSON or is over 4 GiB.
    pub fn new(text: &'a str) -> Option<Self> {
        u32::try_from(text.len()).ok()?;
        let bytes = text.as_bytes();
        let mut nodes: Vec<Node> = Vec::with_capacity(text.len() / 8);
        let mut open: Vec<usize> = Vec::with_capacity(8);
        let mut members = 0;
        let mut i = 0;
        while i < bytes.len() {
            let start = i as u32;
            match bytes[i] {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
                b':' => {
                    members += 1;
                    i += 1;
                }
                b'{' | b'[' => {
                    open.push(nodes.len());
                    nodes.push(Node {
                        start,
                        end: 0,
                        next: 0,
                        escaped: false,
                    });
                    i += 1;
                }
                b'}' | b']' => {
                    let at = open.pop()?;
                    i += 1;
                    let next = nodes.len() as u32;
                    let node = &mut nodes[at];
                    node.end = i as u32;
                    node.next = next;
                }
                b'"' => {
                    let escaped;
                    (i, escaped) = string_end(bytes, i + 1)?;
                    let next = nodes.len() as u32 + 1;
                    nodes.push(Node {
                        start,
                        end: i as u32,
                        next,
                        escaped,
                    });
                }
                _ => {
                    while i < bytes.len()
                        && !matches!(bytes[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                    {
                        i += 1;
                    }
                    let next = nodes.len() as u32 + 1;
                    nodes.push(Node {
                        start,
                        end: i as u32,
                        next,
                        escaped: false,
                    });
                }
            }
        }
        if !open.is_empty() || nodes.is_empty() {
            return None;
        }
        Some(Tape {
            text,
            nodes,
            members,
        })
    }

    pub fn root(&self) -> Item<'_, 'a> {
        Item { tape: self, at: 0 }
    }

    /// Object members in the whole text, repeated keys counted each time.
    pub fn members(&self) -> usize {
        self.members
    }
}

/// Just past the quote that closes the string whose text starts at `from`, and whether
/// the string has escapes.
fn string_end(bytes: &[u8], mut from: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[at] == b'"' {
            return Some((at + 1, escaped));
        }
        escaped = true;
        from = at + 2;
    }
}

impl<'t, 'a> Item<'t, 'a> {
    fn node(&self) -> Node {
        self.tape.nodes[self.at]
    }

    /// The value's JSON text, as the record wrote it.
    pub fn text(&self) -> &'a str {
        let node = self.node();
        &self.tape.text[node.start as usize..node.end as usize]
    }

    fn first(&self) -> u8 {
        self.tape.text.as_bytes()[self.node().start as usize]
    }

    pub fn is_object(&self) -> bool {
        self.first() == b'{'
    }

    pub fn is_array(&self) -> bool {
        self.first() == b'['
    }

    pub fn is_string(&self) -> bool {
        self.first() == b'"'
    }

    /// A string's content, unescaped (borrowed when it has no escapes).
    pub fn str(&self) -> Cow<'a, str> {
        let text = self.text();
        if !self.node().escaped {
            return Cow::Borrowed(&text[1..text.len() - 1]);
        }
        Cow::Owned(serde_json::from_str::<String>(text).unwrap_or_default())
    }

    /// Where this value's children end on the tape: nothing when it is not `container`.
    fn children_end(&self, container: bool) -> usize {
        if container {
            self.node().next as usize
        } else {
            0
        }
    }

    /// An object's members in the order written: (key, value). Empty for anything else.
    pub fn members(&self) -> impl Iterator<Item = (Cow<'a, str>, Item<'t, 'a>)> + 't {
        let tape = self.tape;
        let end = self.children_end(self.is_object());
        let mut at = self.at + 1;
        std::iter::from_fn(move || {
            if at + 1 >= end {
                return None;
            }
            let key = Item { tape, at };
            let value = Item { tape, at: at + 1 };
            at = value.node().next as usize;
            Some((key.str(), value))
        })
    }

    /// An array's items. Empty for anything else.
    pub fn items(&self) -> impl Iterator<Item = Item<'t, 'a>> + 't {
        let tape = self.tape;
        let end = self.children_end(self.is_array());
        let mut at = self.at + 1;
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let item = Item { tape, at };
            at = item.node().next as usize;
            Some(item)
        })
    }
}

/// Object members of a decoded object, at every depth: equal to [`Tape::members`] of its
/// text unless the text repeats a key.
pub fn members_of(map: &Map<'_>) -> usize {
    map.len() + map.values().map(member_count).sum::<usize>()
}

fn member_count(value: &Value<'_>) -> usize {
    match value {
        Value::Object(map) => members_of(map),
        Value::Array(items) => items.iter().map(member_count).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_items_and_texts_are_the_record_s_own() {
        let text = r#"{"b": {"x":[1, {"y":"a\"b"}], "e":{}}, "a":"\u00e9", "n":null, "t":true, "f":-1.5e3}"#;
        let tape = Tape::new(text).unwrap();
        let root = tape.root();
        let members: Vec<_> = root.members().map(|(k, v)| (k, v.text())).collect();
        assert_eq!(
            members,
            [
                ("b".into(), r#"{"x":[1, {"y":"a\"b"}], "e":{}}"#),
                ("a".into(), r#""\u00e9""#),
                ("n".into(), "null"),
                ("t".into(), "true"),
                ("f".into(), "-1.5e3"),
            ]
        );
        let (_, b) = root.members().next().unwrap();
        let (_, x) = b.members().next().unwrap();
        let items: Vec<_> = x.items().map(|i| i.text()).collect();
        assert_eq!(items, ["1", r#"{"y":"a\"b"}"#]);
        let (_, y) = x.items().nth(1).unwrap().members().next().unwrap();
        assert_eq!(y.str(), "a\"b");
        assert_eq!(root.members().nth(1).unwrap().1.str(), "é");
        assert_eq!(b.members().nth(1).unwrap().1.members().count(), 0);
        assert_eq!(tape.members(), 8);
        let decoded = Value::parse(text).unwrap();
        assert_eq!(members_of(decoded.as_object().unwrap()), tape.members());
    }

    #[test]
    fn a_repeated_key_counts_twice_on_the_tape_and_once_in_the_tree() {
        let text = r#"{"a":{"k":1,"k":2}}"#;
        assert_eq!(Tape::new(text).unwrap().members(), 3);
        let decoded = Value::parse(text).unwrap();
        assert_eq!(members_of(decoded.as_object().unwrap()), 2);
    }

    #[test]
    fn text_that_is_not_json_gives_no_tape() {
        for bad in ["", "{", "}", r#"{"a":"unterminated"#, "[1,2"] {
            assert!(Tape::new(bad).is_none(), "{bad}");
        }
    }
}
