//! A TOML document as a tree of keys that remember where they were written, so the keymap and
//! theme readers can name the line of a bad key. Values stay `toml::Value` below the depth the
//! readers care about; the order of the file is kept.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use crate::toml_check::line_of;

/// One node: a table with its keys in file order, or a plain value.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Table(Vec<Entry>),
    Value(toml::Value),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: Spanned<String>,
    pub node: Node,
}

impl Entry {
    pub fn name(&self) -> &str {
        self.key.get_ref()
    }

    /// 1-based line of the key in `text`.
    pub fn line(&self, text: &str) -> usize {
        line_of(text, self.key.span().start)
    }
}

/// Why a document is not even TOML (or holds something no reader here accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses `text` into its top-level entries.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    match toml::from_str::<Node>(text) {
        Ok(Node::Table(entries)) => Ok(entries),
        Ok(Node::Value(_)) => Err(SyntaxError {
            line: 1,
            message: "expected a TOML document of tables and keys".to_owned(),
        }),
        Err(error) => Err(SyntaxError {
            line: error.span().map_or(1, |span| line_of(text, span.start)),
            // toml's message spans several lines with a caret drawing; the first says it all.
            message: error
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_owned(),
        }),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        loop {
            // toml hands a date-time over as a one-entry map whose key has no span; no reader
            // here takes dates, so it is reported as a value of the wrong kind.
            let Ok(next) = map.next_key::<Spanned<String>>() else {
                return Err(serde::de::Error::custom(
                    "dates and times are not allowed here: write a string",
                ));
            };
            let Some(key) = next else { break };
            let node = map.next_value::<Node>()?;
            entries.push(Entry { key, node });
        }
        Ok(Node::Table(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<toml::Value>()? {
            items.push(item);
        }
        Ok(Node::Value(toml::Value::Array(items)))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::Boolean(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::Integer(value)))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Node, E> {
        i64::try_from(value)
            .map(|v| Node::Value(toml::Value::Integer(v)))
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::Float(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::String(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::String(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_lines_and_order() {
        let text = "name = \"x\"\n\n[roles]\nb = \"red\"\na = { fg = \"blue\" }\n";
        let entries = parse(text).expect("valid");
        assert_eq!(entries[0].name(), "name");
        assert_eq!(entries[0].line(text), 1);
        let Node::Table(roles) = &entries[1].node else {
            panic!("roles is a table")
        };
        assert_eq!(entries[1].line(text), 3);
        let names: Vec<(&str, usize)> = roles.iter().map(|e| (e.name(), e.line(text))).collect();
        assert_eq!(names, vec![("b", 4), ("a", 5)]);
        let Node::Table(inline) = &roles[1].node else {
            panic!("inline table")
        };
        assert_eq!(inline[0].name(), "fg");
        assert_eq!(inline[0].line(text), 5);
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let error = parse("a = 1\n\nb = = 2\n").expect_err("bad");
        assert_eq!(error.line, 3);
        assert!(!error.message.contains('\n'));
    }

    #[test]
    fn dates_are_refused_with_a_reason() {
        let error = parse("[keys]\nquit = 1979-05-27\n").expect_err("date");
        assert!(error.message.contains("dates"), "{}", error.message);
    }
}
