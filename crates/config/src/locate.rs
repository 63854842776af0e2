//! Maps field paths (`routes[2].paths[0]`) to the line and column where
//! they appear in the YAML text, so that errors found after parsing (a
//! dangling service reference, a bad plugin option) still point at a line.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// The text a configuration was read from, with an index of field paths.
#[derive(Debug, Clone)]
pub struct Source {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    /// The text, kept to build the index the first time an error needs a
    /// location: a valid file (the usual case, and every reload of a big
    /// one) never pays for a second YAML pass and a map of every path.
    text: String,
    positions: OnceLock<HashMap<String, (usize, usize)>>,
}

impl Source {
    /// A source over `text`; `name` is the file name shown in errors. The
    /// index of field positions is built on the first [`Source::locate`].
    pub fn new(name: &str, text: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_string(),
                text: text.to_string(),
                positions: OnceLock::new(),
            }),
        }
    }

    fn positions(&self) -> &HashMap<String, (usize, usize)> {
        self.inner.positions.get_or_init(|| {
            let mut indexer = Indexer::default();
            let mut parser = Parser::new_from_str(&self.inner.text);
            // A syntax error is reported by the serde pass with its own
            // location; the index then simply stays partial.
            let _ = parser.load(&mut indexer, false);
            indexer.positions
        })
    }

    /// The file name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A located error about the field at `path`.
    pub fn error(&self, path: &str, message: impl Into<String>) -> crate::ConfigError {
        let (line, column) = match self.locate(path) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        crate::ConfigError {
            file: self.name().to_string(),
            line,
            column,
            field: path.to_string(),
            message: message.into(),
        }
    }

    /// The 1-based line and column of `path`, or of its nearest located
    /// ancestor (`routes[1].plugins[0].config.origins[3]` falls back to
    /// `...origins`, then `...config`, ...).
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions().get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map { key: Option<String>, path: String },
    Seq { index: usize, path: String },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

impl Indexer {
    /// The path of the value that starts now, and records its position.
    /// Returns `None` when the event is a mapping key.
    fn value_path(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { key, path }) => match key.take() {
                None => {
                    // This is a key: remember it and where it is.
                    let k = scalar.unwrap_or("?").to_string();
                    let full = join_key(path, &k);
                    self.positions
                        .entry(full)
                        .or_insert((mark.line(), mark.col() + 1));
                    *key = Some(k);
                    None
                }
                Some(k) => Some(join_key(path, &k)),
            },
            Some(Frame::Seq { index, path }) => {
                let full = format!("{path}[{index}]");
                *index += 1;
                self.positions
                    .entry(full.clone())
                    .or_insert((mark.line(), mark.col() + 1));
                Some(full)
            }
        }
    }
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                let _ = self.value_path(mark, Some(&value));
            }
            Event::Alias(_) => {
                let _ = self.value_path(mark, None);
            }
            Event::MappingStart(..) => {
                let path = self.value_path(mark, None).unwrap_or_default();
                self.stack.push(Frame::Map { key: None, path });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(mark, None).unwrap_or_default();
                self.stack.push(Frame::Seq { index: 0, path });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_fields() {
        let text = "services:\n  - name: a\n    url: http://x\nroutes:\n  - name: r\n    paths:\n      - /a\n      - /b\n";
        let s = Source::new("f.yaml", text);
        assert_eq!(s.locate("services"), Some((1, 1)));
        assert_eq!(s.locate("services[0].url"), Some((3, 5)));
        assert_eq!(s.locate("routes[0].paths[1]"), Some((8, 9)));
        // Unknown leaf falls back to the nearest ancestor.
        assert_eq!(s.locate("routes[0].paths[1].x"), Some((8, 9)));
        assert_eq!(s.locate("nope"), None);
    }
}
