//! Where each field of a JSON document is: JSON path (`failover.providers[0].cluster`, the form
//! the filter's config errors use) → line within the document.
//!
//! serde_json keeps no positions, and a config error names a path, not a place; this small
//! scanner walks the text once and records the line of every member and item.

/// The lines of every path in a JSON text.
#[derive(Debug, Default)]
pub struct Positions {
    lines: Vec<(String, usize)>,
}

impl Positions {
    /// Scans `text`. A malformed text gives the positions found before the error.
    pub fn scan(text: &str) -> Self {
        let mut s = Scanner {
            bytes: text.as_bytes(),
            at: 0,
            line: 1,
            out: Vec::new(),
        };
        s.skip_ws();
        let line = s.line;
        s.out.push((String::new(), line));
        s.value(String::new());
        Positions { lines: s.out }
    }

    /// The line (1-based) of `path`, or of its closest ancestor present in the text.
    pub fn line_of(&self, path: &str) -> usize {
        let mut path = path.trim_start_matches('.').to_string();
        loop {
            if let Some((_, line)) = self.lines.iter().find(|(p, _)| *p == path) {
                return *line;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path.truncate(cut),
                None if !path.is_empty() => path.clear(),
                None => return 1,
            }
        }
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
    out: Vec<(String, usize)>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    fn string(&mut self) -> String {
        let mut out = Vec::new();
        self.bump(); // opening quote
        while let Some(b) = self.bump() {
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(e) = self.bump() {
                        out.push(e);
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn value(&mut self, path: String) {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => {
                self.bump();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(b'"') => {}
                        Some(b'}') | None => {
                            self.bump();
                            return;
                        }
                        Some(_) => {
                            self.bump();
                            continue;
                        }
                    }
                    let line = self.line;
                    let key = self.string();
                    let here = if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    };
                    self.out.push((here.clone(), line));
                    self.skip_ws();
                    if self.peek() == Some(b':') {
                        self.bump();
                    }
                    self.value(here);
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.bump();
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let mut index = 0;
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(b']') | None => {
                            self.bump();
                            return;
                        }
                        Some(b',') => {
                            self.bump();
                            continue;
                        }
                        Some(_) => {}
                    }
                    let here = format!("{path}[{index}]");
                    self.out.push((here.clone(), self.line));
                    self.value(here);
                    index += 1;
                }
            }
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                        break;
                    }
                    self.bump();
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
  "failover": {
    "providers": [
      { "name": "a",
        "cluster": "x" },
      { "name": "b", "cluster": "y\"z" }
    ]
  },
  "stage": "upstream"
}"#;

    #[test]
    fn paths_map_to_lines() {
        let p = Positions::scan(DOC);
        assert_eq!(p.line_of("failover"), 2);
        assert_eq!(p.line_of("failover.providers[0]"), 4);
        assert_eq!(p.line_of("failover.providers[0].cluster"), 5);
        assert_eq!(p.line_of("failover.providers[1].cluster"), 6);
        assert_eq!(p.line_of("stage"), 9);
    }

    #[test]
    fn absent_paths_fall_back_to_their_closest_ancestor() {
        let p = Positions::scan(DOC);
        assert_eq!(p.line_of("failover.providers[0].api_key.env"), 4);
        assert_eq!(p.line_of("failover.routes"), 2);
        assert_eq!(p.line_of("nothing.here"), 1);
        assert_eq!(p.line_of("."), 1);
    }
}
