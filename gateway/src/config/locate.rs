//! Maps configuration keys to lines and lines back to keys, so that every error names the
//! file, the line, the key and the reason (like `nginx -t`).

use std::ops::Range;

use toml_edit::{Document, Item, Value};

/// One key or array element of the document, with the byte ranges of its key and value.
struct Entry {
    path: String,
    span: Range<usize>,
}

/// An index of the spans of every key in a TOML source.
pub struct Locator<'a> {
    src: &'a str,
    entries: Vec<Entry>,
}

impl<'a> Locator<'a> {
    /// Indexes `src`. A source that does not parse yields an empty index.
    pub fn new(src: &'a str) -> Self {
        let mut entries = Vec::new();
        if let Ok(doc) = Document::parse(src) {
            walk_item(doc.as_item(), "", &mut entries);
        }
        Locator { src, entries }
    }

    /// The 1-based line of `path` (e.g. `route[1].issuers[0]`), or of its nearest parent
    /// that exists in the file (a missing key is reported at its table).
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == p) {
                return Some(self.line_at(e.span.start));
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The innermost key whose key or value covers byte `offset`.
    pub fn path_at(&self, offset: usize) -> Option<&str> {
        self.entries
            .iter()
            .filter(|e| e.span.contains(&offset))
            .min_by_key(|e| e.span.len())
            .map(|e| e.path.as_str())
    }

    /// The 1-based line of byte `offset`.
    pub fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn push(entries: &mut Vec<Entry>, path: String, spans: [Option<Range<usize>>; 2]) {
    let mut span: Option<Range<usize>> = None;
    for s in spans.into_iter().flatten() {
        span = Some(match span {
            Some(cur) => cur.start.min(s.start)..cur.end.max(s.end),
            None => s,
        });
    }
    if let Some(span) = span {
        entries.push(Entry { path, span });
    }
}

fn walk_item(item: &Item, path: &str, out: &mut Vec<Entry>) {
    match item {
        Item::Table(t) => {
            for (k, _) in t.iter() {
                if let Some((key, child)) = t.get_key_value(k) {
                    let p = join(path, k);
                    push(out, p.clone(), [key.span(), child.span()]);
                    walk_item(child, &p, out);
                }
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                push(out, p.clone(), [t.span(), None]);
                walk_item(&Item::Table(t.clone()), &p, out);
            }
        }
        Item::Value(v) => walk_value(v, path, out),
        Item::None => {}
    }
}

fn walk_value(v: &Value, path: &str, out: &mut Vec<Entry>) {
    match v {
        Value::Array(arr) => {
            for (i, v) in arr.iter().enumerate() {
                let p = format!("{path}[{i}]");
                push(out, p.clone(), [v.span(), None]);
                walk_value(v, &p, out);
            }
        }
        Value::InlineTable(t) => {
            for (k, _) in t.iter() {
                if let Some((key, child)) = t.get_key_value(k) {
                    let p = join(path, k);
                    push(out, p.clone(), [key.span(), child.span()]);
                    walk_item(child, &p, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "[server]\nlisten = \"x\"\n\n[[route]]\nid = \"a\"\n\n[[route]]\nid = \"b\"\nissuers = [\"p\",\n  \"q\"]\ninject = { \"x-t\" = \"tenant\" }\n";

    #[test]
    fn lines_of_keys_and_array_elements() {
        let l = Locator::new(SRC);
        assert_eq!(l.line_of("server.listen"), Some(2));
        assert_eq!(l.line_of("route[1].id"), Some(8));
        assert_eq!(l.line_of("route[1].issuers[1]"), Some(10));
        assert_eq!(l.line_of("route[1].inject.x-t"), Some(11));
    }

    #[test]
    fn a_missing_key_is_reported_at_its_parent() {
        let l = Locator::new(SRC);
        assert_eq!(l.line_of("route[1].upstream"), Some(7));
    }

    #[test]
    fn offsets_map_back_to_the_innermost_key() {
        let l = Locator::new(SRC);
        let off = SRC.find("\"q\"").unwrap();
        assert_eq!(l.path_at(off), Some("route[1].issuers[1]"));
    }
}
