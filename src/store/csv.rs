//! A small RFC 4180 CSV reader and writer, lenient the way spreadsheet exports need: quoted fields
//! with separators and line breaks, `""` escapes, CRLF or LF, a `;` or tab separator detected from
//! the header, and an unclosed quote reported by line with reading resumed on the next line.

/// One record and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// A record, or a stretch of text that could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Record(Record),
    Broken { line: usize, reason: String },
}

/// The separator the header line uses most, outside quotes: ',' unless ';' or tab win.
pub(crate) fn detect_separator(text: &str) -> char {
    let header = text.lines().next().unwrap_or_default();
    let mut in_quotes = false;
    let (mut commas, mut semicolons, mut tabs) = (0usize, 0usize, 0usize);
    for c in header.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => commas += 1,
            ';' if !in_quotes => semicolons += 1,
            '\t' if !in_quotes => tabs += 1,
            _ => {}
        }
    }
    if tabs > commas && tabs > semicolons {
        '\t'
    } else if semicolons > commas {
        ';'
    } else {
        ','
    }
}

/// Reads every record; blank lines are skipped.
pub(crate) fn read(text: &str, separator: char) -> Vec<Item> {
    let mut items = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    while pos < text.len() {
        match read_record(text, pos, separator) {
            Step::Record {
                fields,
                next,
                lines,
            } => {
                let blank = fields.len() == 1 && fields.first().is_some_and(|f| f.is_empty());
                if !blank {
                    items.push(Item::Record(Record { line, fields }));
                }
                pos = next;
                line += lines;
            }
            Step::Unclosed => {
                items.push(Item::Broken {
                    line,
                    reason: "a quoted field is never closed (a '\"' is missing); the row was \
                             skipped and reading went on with the next line"
                        .into(),
                });
                // Resume right after this record's first line.
                match text.get(pos..).and_then(|rest| rest.find('\n')) {
                    Some(offset) => {
                        pos += offset + 1;
                        line += 1;
                    }
                    None => break,
                }
            }
        }
    }
    items
}

enum Step {
    /// `next` is the byte offset after the record's line break; `lines` how many lines it used.
    Record {
        fields: Vec<String>,
        next: usize,
        lines: usize,
    },
    Unclosed,
}

fn read_record(text: &str, start: usize, separator: char) -> Step {
    let Some(rest) = text.get(start..) else {
        return Step::Record {
            fields: Vec::new(),
            next: text.len(),
            lines: 0,
        };
    };
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut lines = 1;
    let mut chars = rest.char_indices().peekable();
    // At the start of a field, a quote opens a quoted field; elsewhere quotes are literal.
    let mut at_field_start = true;
    let mut in_quotes = false;
    while let Some((offset, c)) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek().is_some_and(|&(_, n)| n == '"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    lines += 1;
                    field.push('\n');
                }
                '\r' if chars.peek().is_some_and(|&(_, n)| n == '\n') => {}
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
            }
            c if c == separator => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\n' | '\r' => {
                fields.push(field);
                let mut next = start + offset + 1;
                if c == '\r' && rest.get(offset + 1..offset + 2) == Some("\n") {
                    next += 1;
                }
                return Step::Record {
                    fields,
                    next,
                    lines,
                };
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Step::Unclosed;
    }
    fields.push(field);
    Step::Record {
        fields,
        next: text.len(),
        lines,
    }
}

/// Writes one record with `,`, quoting where RFC 4180 requires, ending in CRLF.
pub(crate) fn write_record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        let needs_quotes = field.contains([',', '"', '\n', '\r'])
            || field.starts_with(char::is_whitespace)
            || field.ends_with(char::is_whitespace);
        if needs_quotes {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<(usize, Vec<String>)> {
        read(text, detect_separator(text))
            .into_iter()
            .map(|item| match item {
                Item::Record(r) => (r.line, r.fields),
                Item::Broken { line, reason } => (line, vec![format!("BROKEN: {reason}")]),
            })
            .collect()
    }

    fn row(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quoted_fields_keep_commas_quotes_and_line_breaks() {
        let text = "Name,Notes,Phone\r\n\"Smith, John\",\"Said \"\"hi\"\"\r\nthen left\",+1 555\r\nAnn,,\r\n";
        assert_eq!(
            records(text),
            vec![
                (1, row(&["Name", "Notes", "Phone"])),
                (2, row(&["Smith, John", "Said \"hi\"\nthen left", "+1 555"])),
                (4, row(&["Ann", "", ""])),
            ]
        );
    }

    #[test]
    fn lf_only_blank_lines_and_no_final_newline() {
        assert_eq!(
            records("a,b\n\n1,2\n3,4"),
            vec![
                (1, row(&["a", "b"])),
                (3, row(&["1", "2"])),
                (4, row(&["3", "4"]))
            ]
        );
        assert_eq!(records(""), vec![]);
        assert_eq!(records("x"), vec![(1, row(&["x"]))]);
    }

    #[test]
    fn separators_are_detected_from_the_header() {
        assert_eq!(detect_separator("Name;Company;Phone\n"), ';');
        assert_eq!(detect_separator("Name\tCompany\n"), '\t');
        assert_eq!(detect_separator("\"Last; First\",Company,Phone\n"), ',');
        assert_eq!(
            records("Nom;Téléphone\n\"Dupont; Jean\";01 23\n"),
            vec![
                (1, row(&["Nom", "Téléphone"])),
                (2, row(&["Dupont; Jean", "01 23"]))
            ]
        );
    }

    #[test]
    fn quotes_inside_unquoted_fields_are_literal() {
        assert_eq!(
            records("5\" screen,ok\n"),
            vec![(1, row(&["5\" screen", "ok"]))]
        );
        // Text after a closing quote is kept rather than dropped.
        assert_eq!(records("\"abc\"def,x\n"), vec![(1, row(&["abcdef", "x"]))]);
    }

    #[test]
    fn an_unclosed_quote_costs_one_line_only() {
        let text = "Name,Phone\n\"Broken,+1 555 0100\nAlice,+1 555 0101\nBob,+1 555 0102\n";
        let got = records(text);
        assert_eq!(got[0], (1, row(&["Name", "Phone"])));
        assert_eq!(got[1].0, 2);
        assert!(
            got[1].1[0].starts_with("BROKEN: a quoted field is never closed"),
            "{:?}",
            got[1]
        );
        assert_eq!(got[2], (3, row(&["Alice", "+1 555 0101"])));
        assert_eq!(got[3], (4, row(&["Bob", "+1 555 0102"])));
        assert_eq!(got.len(), 4);
        // On the last line with no newline after it.
        let got = records("a\n\"b");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, 2);
    }

    #[test]
    fn writer_quotes_only_what_needs_it_and_reads_back() {
        let mut out = String::new();
        write_record(
            &mut out,
            &["plain", "a,b", "say \"x\"", "two\nlines", " pad", ""],
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"x\"\"\",\"two\nlines\",\" pad\",\r\n"
        );
        assert_eq!(
            records(&out),
            vec![(
                1,
                row(&["plain", "a,b", "say \"x\"", "two\nlines", " pad", ""])
            )]
        );
    }
}
