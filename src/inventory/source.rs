//! The inventory text with its syntax tree, so any problem can point at a line and column.

use std::ops::Range;

use toml_edit::{ArrayOfTables, Document, Item, Table, Value};

use super::problem::{KeyPath, Segment};

pub struct Source {
    text: String,
    doc: Document<String>,
}

/// A node of the TOML tree, whichever syntax wrote it (`[table]`, `{ inline }`, `[[array]]`).
#[derive(Clone, Copy)]
pub enum Node<'a> {
    Table(&'a Table),
    TableArray(&'a ArrayOfTables),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    pub fn from_item(item: &'a Item) -> Option<Self> {
        match item {
            Item::None => None,
            Item::Value(v) => Some(Node::Value(v)),
            Item::Table(t) => Some(Node::Table(t)),
            Item::ArrayOfTables(a) => Some(Node::TableArray(a)),
        }
    }

    /// The kind as the TOML spec names it, for messages.
    pub fn kind(self) -> &'static str {
        match self {
            Node::Table(_) => "table",
            Node::TableArray(_) => "array",
            Node::Value(v) => match v {
                Value::String(_) => "string",
                Value::Integer(_) => "integer",
                Value::Float(_) => "float",
                Value::Boolean(_) => "boolean",
                Value::Datetime(_) => "datetime",
                Value::Array(_) => "array",
                Value::InlineTable(_) => "table",
            },
        }
    }

    pub fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::TableArray(a) => a.span(),
            Node::Value(v) => v.span(),
        }
    }

    /// Entries of a table, with the span of each key.
    pub fn entries(self) -> Vec<(&'a str, Option<Range<usize>>, Node<'a>)> {
        match self {
            Node::Table(t) => t
                .iter()
                .filter_map(|(k, item)| {
                    let span = t.key(k).and_then(|k| k.span());
                    Node::from_item(item).map(|n| (k, span, n))
                })
                .collect(),
            Node::Value(Value::InlineTable(t)) => t
                .iter()
                .map(|(k, v)| (k, t.key(k).and_then(|k| k.span()), Node::Value(v)))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn elements(self) -> Vec<Node<'a>> {
        match self {
            Node::TableArray(a) => a.iter().map(Node::Table).collect(),
            Node::Value(Value::Array(a)) => a.iter().map(Node::Value).collect(),
            _ => Vec::new(),
        }
    }

    pub fn integer(self) -> Option<i64> {
        match self {
            Node::Value(Value::Integer(i)) => Some(*i.value()),
            _ => None,
        }
    }
}

impl Source {
    /// Parses the text; a syntax error comes back as a message with its 1-based line and column.
    pub fn parse(text: String) -> Result<Self, (String, Option<(usize, usize)>)> {
        // toml_edit panics on some invalid documents (a dotted key extending a value its error
        // recovery left without a span); the `toml` parser refuses them without panicking, so
        // only text it accepts goes on to toml_edit.
        if let Err(e) = text.parse::<toml::Table>() {
            let loc = e.span().map(|s| line_col(&text, s.start));
            return Err((e.message().trim().to_string(), loc));
        }
        match Document::parse(text.clone()) {
            Ok(doc) => Ok(Source { text, doc }),
            Err(e) => {
                let loc = e.span().map(|s| line_col(&text, s.start));
                Err((e.message().trim().to_string(), loc))
            }
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> Node<'_> {
        Node::Table(self.doc.as_table())
    }

    /// Line and column of the key (or value) a path names; for a missing key, its parent's.
    pub fn locate(&self, path: &KeyPath) -> Option<(usize, usize)> {
        let mut node = self.root();
        let mut best = None;
        for seg in path.segments() {
            let next = match seg {
                Segment::Key(k) => node
                    .entries()
                    .into_iter()
                    .find(|(name, _, _)| name == k)
                    .map(|(_, key_span, n)| (key_span.or_else(|| n.span()), n)),
                Segment::Index(i) => node.elements().get(*i).map(|n| (n.span(), *n)),
            };
            match next {
                Some((span, n)) => {
                    if let Some(s) = span {
                        best = Some(s.start);
                    }
                    node = n;
                }
                None => break,
            }
        }
        best.map(|offset| line_col(&self.text, offset))
    }

    /// The deepest key path whose key or value covers a byte offset (used to name the key a
    /// deserializer error points at).
    pub fn path_at(&self, offset: usize) -> KeyPath {
        fn walk(node: Node<'_>, offset: usize, path: KeyPath) -> KeyPath {
            for (k, key_span, child) in node.entries() {
                let covers =
                    |s: &Option<Range<usize>>| s.as_ref().is_some_and(|s| s.contains(&offset));
                if covers(&key_span) {
                    return path.key(k);
                }
                if covers(&child.span()) || matches!(child, Node::Table(_) | Node::TableArray(_)) {
                    let deeper = walk(child, offset, path.key(k));
                    if deeper != path.key(k) || covers(&child.span()) {
                        return deeper;
                    }
                }
            }
            for (i, child) in node.elements().into_iter().enumerate() {
                if child.span().is_some_and(|s| s.contains(&offset)) {
                    return walk(child, offset, path.index(i));
                }
                if let Node::Table(_) = child {
                    let deeper = walk(child, offset, path.index(i));
                    if deeper != path.index(i) {
                        return deeper;
                    }
                }
            }
            path
        }
        walk(self.root(), offset, KeyPath::root())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[cluster]\nname = \"demo\"\n\n[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\n\n[[hosts]]\nname = \"b\"\naddress = \"x\"\nroles = [\"etcd\", \"wat\"]\n";

    #[test]
    fn locates_nested_keys() {
        let src = Source::parse(TEXT.to_string()).unwrap();
        assert_eq!(src.locate(&KeyPath::parse("cluster.name")), Some((2, 1)));
        assert_eq!(
            src.locate(&KeyPath::parse("hosts[1].address")),
            Some((10, 1))
        );
        assert_eq!(
            src.locate(&KeyPath::parse("hosts[1].roles[1]")),
            Some((11, 18))
        );
        // A missing key points at its parent.
        assert_eq!(src.locate(&KeyPath::parse("hosts[0].roles")), Some((4, 1)));
    }

    #[test]
    fn finds_the_key_at_an_offset() {
        let src = Source::parse(TEXT.to_string()).unwrap();
        let offset = TEXT.find("\"x\"").unwrap();
        assert_eq!(src.path_at(offset).to_string(), "hosts[1].address");
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let (msg, loc) = Source::parse("[cluster]\nname = \n".to_string())
            .err()
            .unwrap();
        assert!(!msg.is_empty());
        assert_eq!(loc.map(|l| l.0), Some(2));
    }

    /// toml_edit 0.23 panics ("all items have spans") on a dotted key extending a value that
    /// its error recovery left without a span. Found by the `inventory` fuzz target.
    #[test]
    fn a_dotted_key_after_a_broken_value_is_a_syntax_error() {
        let (message, location) = Source::parse("a = = 1\na.b = 2\n".to_string())
            .err()
            .expect("a syntax error");
        assert!(!message.is_empty());
        assert_eq!(location.map(|(line, _)| line), Some(1));
    }
}
