//! A YAML (and so JSON) document as a tree whose every node knows its line.
//!
//! Built from yaml-rust2's event parser: the loader it ships drops positions, and the checker
//! must name the line of every finding.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A node and the line (1-based) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Line of the node in its file (1-based).
    pub line: usize,
}

/// A YAML value, keys of mappings read as strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (quoted, block or plain).
    Str(String),
    /// A sequence.
    List(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(String, Node)>),
}

/// The missing node: what [`Node::get`] returns for an absent key.
pub static MISSING: Node = Node {
    value: Value::Null,
    line: 0,
};

impl Node {
    /// The value under `key` of a mapping; [`MISSING`] (null, line 0) when absent.
    pub fn get(&self, key: &str) -> &Node {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map_or(&MISSING, |(_, v)| v),
            _ => &MISSING,
        }
    }

    /// Follows `keys` from this node.
    pub fn at(&self, keys: &[&str]) -> &Node {
        keys.iter().fold(self, |node, key| node.get(key))
    }

    /// Whether the node is absent or null.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The string value, if a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean value, if a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The integer value, if an integer (or a string holding one, as protobuf JSON allows).
    pub fn as_int(&self) -> Option<i64> {
        match &self.value {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The items of a sequence; empty for anything else.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::List(items) => items,
            _ => &[],
        }
    }

    /// The entries of a mapping; empty for anything else.
    pub fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The line of this node, or `fallback` when the node is absent.
    pub fn line_or(&self, fallback: usize) -> usize {
        if self.line == 0 {
            fallback
        } else {
            self.line
        }
    }
}

/// Parses every document of `text`.
pub fn load(text: &str) -> Result<Vec<Node>, String> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, true)
        .map_err(|e| format!("line {}: {}", e.marker().line(), e.info()))?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs)
}

/// A container being filled: its node, and for a mapping the key waiting for its value.
struct Open {
    node: Node,
    anchor: usize,
    pending_key: Option<(String, usize)>,
}

#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    stack: Vec<Open>,
    anchors: Vec<(usize, Node)>,
    error: Option<String>,
}

impl Builder {
    fn push_value(&mut self, mut node: Node, anchor: usize, block: bool) {
        if block {
            // The parser marks a block scalar where it ends; its content starts on the line
            // after its indicator, which is the key's line in a mapping.
            if let Some(Open {
                pending_key: Some((_, key_line)),
                ..
            }) = self.stack.last()
            {
                node.line = key_line + 1;
            }
        }
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        let Some(top) = self.stack.last_mut() else {
            self.docs.push(node);
            return;
        };
        match &mut top.node.value {
            Value::List(items) => items.push(node),
            Value::Map(entries) => match top.pending_key.take() {
                None => {
                    top.pending_key = Some((key_string(&node), node.line));
                }
                Some((key, _)) => {
                    if entries.iter().any(|(k, _)| *k == key) && self.error.is_none() {
                        self.error = Some(format!("line {}: duplicated key {key:?}", node.line));
                    }
                    entries.push((key, node));
                }
            },
            _ => {}
        }
    }
}

fn key_string(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Null => "null".into(),
        Value::List(_) | Value::Map(_) => "<complex key>".into(),
    }
}

fn scalar(value: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::Str(value);
    }
    match Yaml::from_str(&value) {
        Yaml::Integer(i) => Value::Int(i),
        Yaml::Real(r) => r.parse().map_or(Value::Str(r), Value::Float),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        _ => Value::Str(value),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(value, style, anchor, _) => {
                let block = matches!(style, TScalarStyle::Literal | TScalarStyle::Folded);
                // Outside a mapping, estimate a block scalar's start from its end.
                let line = if block {
                    line.saturating_sub(value.matches('\n').count()).max(1)
                } else {
                    line
                };
                self.push_value(
                    Node {
                        value: scalar(value, style),
                        line,
                    },
                    anchor,
                    block,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    value: Value::List(Vec::new()),
                    line,
                },
                anchor,
                pending_key: None,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    value: Value::Map(Vec::new()),
                    line,
                },
                anchor,
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    self.push_value(open.node, open.anchor, false);
                }
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone());
                match node {
                    Some(n) => self.push_value(n, 0, false),
                    None => {
                        self.error
                            .get_or_insert_with(|| format!("line {line}: unknown alias"));
                    }
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines() {
        let docs = load("a:\n  b: 1\n  c: [x, {d: true}]\nv: |\n  {\"k\": 1}\n").unwrap();
        let doc = &docs[0];
        assert_eq!(doc.get("a").line, 2);
        assert_eq!(doc.at(&["a", "b"]).as_int(), Some(1));
        assert_eq!(doc.at(&["a", "b"]).line, 2);
        assert_eq!(
            doc.at(&["a", "c"]).items()[1].get("d").as_bool(),
            Some(true)
        );
        assert_eq!(doc.at(&["a", "c"]).line, 3);
        assert_eq!(doc.get("v").as_str(), Some("{\"k\": 1}\n"));
        assert_eq!(
            doc.get("v").line,
            5,
            "a block scalar starts after its indicator"
        );
        assert!(doc.get("missing").is_null());
        assert_eq!(doc.get("missing").line_or(7), 7);
    }

    #[test]
    fn json_is_yaml() {
        let docs = load("{\n \"a\": {\"b\": \"x\"},\n \"n\": 3\n}").unwrap();
        assert_eq!(docs[0].at(&["a", "b"]).as_str(), Some("x"));
        assert_eq!(docs[0].get("n").line, 3);
    }

    #[test]
    fn aliases_and_duplicates() {
        let docs = load("a: &x {b: 1}\nc: *x\n").unwrap();
        assert_eq!(docs[0].at(&["c", "b"]).as_int(), Some(1));
        assert!(load("a: 1\na: 2\n").unwrap_err().contains("duplicated key"));
    }
}
