//! vCard 3.0 and 4.0 (and the 2.1 leftovers phones still export) into contacts: FN / N, ORG, TEL
//! (several, TYPE labels, `tel:` URIs, iOS `itemN.X-ABLabel` custom labels), EMAIL, NOTE. Lines
//! are unfolded, `\,` `\;` `\n` unescaped, quoted-printable decoded. A card that cannot become a
//! contact is reported with the line of its BEGIN; bad lines inside a good card are warnings.

use std::collections::HashMap;

use super::contacts::{NewContact, Phone};
use super::import::ParsedContacts;

/// A logical (unfolded) line and the physical line it starts on.
struct Line {
    number: usize,
    text: String,
}

fn unfold(text: &str) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    // A quoted-printable value ending in '=' continues on the next line, without indentation.
    let mut soft_break = false;
    for (index, physical) in text.split('\n').enumerate() {
        let physical = physical.strip_suffix('\r').unwrap_or(physical);
        let continued = physical.starts_with([' ', '\t']);
        match lines.last_mut() {
            Some(last) if soft_break => {
                last.text.pop(); // the '=' of the soft break
                last.text.push_str(physical);
            }
            Some(last) if continued => last.text.push_str(physical.get(1..).unwrap_or_default()),
            _ => lines.push(Line {
                number: index + 1,
                text: physical.to_string(),
            }),
        }
        soft_break = lines
            .last()
            .is_some_and(|l| l.text.ends_with('=') && is_quoted_printable(&l.text));
    }
    lines
}

fn is_quoted_printable(line: &str) -> bool {
    let head = line.split(':').next().unwrap_or_default();
    head.to_ascii_uppercase().contains("QUOTED-PRINTABLE")
}

/// `[group.]NAME[;PARAM...]:value`, split at the first ':' outside a quoted parameter.
struct Property<'a> {
    group: Option<&'a str>,
    name: String,
    params: Vec<(String, String)>,
    value: &'a str,
}

fn parse_property(line: &str) -> Option<Property<'_>> {
    let mut in_quotes = false;
    let colon = line.char_indices().find_map(|(i, c)| match c {
        '"' => {
            in_quotes = !in_quotes;
            None
        }
        ':' if !in_quotes => Some(i),
        _ => None,
    })?;
    let head = line.get(..colon)?;
    let value = line.get(colon + 1..)?;
    let mut parts = split_outside_quotes(head, ';').into_iter();
    let full_name = parts.next()?.trim();
    let (group, name) = match full_name.rsplit_once('.') {
        Some((group, name)) => (Some(group), name),
        None => (None, full_name),
    };
    if name.is_empty() {
        return None;
    }
    let params = parts
        .map(|p| match p.split_once('=') {
            Some((key, value)) => (key.trim().to_ascii_uppercase(), value.trim().to_string()),
            // vCard 2.1 bare types: "TEL;CELL:..."
            None => ("TYPE".to_string(), p.trim().to_string()),
        })
        .collect();
    Some(Property {
        group,
        name: name.to_ascii_uppercase(),
        params,
        value,
    })
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if c == separator && !in_quotes {
            parts.push(text.get(start..i).unwrap_or_default());
            start = i + c.len_utf8();
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

impl Property<'_> {
    /// Every TYPE value, lower-case, unquoted, comma lists split.
    fn types(&self) -> Vec<String> {
        self.params
            .iter()
            .filter(|(key, _)| key == "TYPE")
            .flat_map(|(_, value)| value.trim_matches('"').split(',').map(str::to_string))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim_matches('"'))
    }

    fn is_preferred(&self) -> bool {
        self.types().iter().any(|t| t == "pref") || self.param("PREF").is_some()
    }

    /// The value with its transfer encoding undone (escapes are left for the caller).
    fn decoded_value(&self) -> String {
        let quoted_printable = self
            .param("ENCODING")
            .is_some_and(|e| e.eq_ignore_ascii_case("QUOTED-PRINTABLE"))
            || self.types().iter().any(|t| t == "quoted-printable");
        if !quoted_printable {
            return self.value.to_string();
        }
        let bytes = decode_quoted_printable(self.value);
        let latin1 = self
            .param("CHARSET")
            .is_some_and(|c| c.eq_ignore_ascii_case("ISO-8859-1"));
        if latin1 {
            bytes.iter().map(|&b| char::from(b)).collect()
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'=' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Splits at unescaped `separator` and unescapes each part (`\,` `\;` `\:` `\\` `\n`).
fn components(value: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        let current = parts.last_mut();
        match (c, current) {
            ('\\', Some(current)) => match chars.next() {
                Some('n' | 'N') => current.push('\n'),
                Some(escaped) => current.push(escaped),
                None => current.push('\\'),
            },
            (c, _) if c == separator => parts.push(String::new()),
            (c, Some(current)) => current.push(c),
            (_, None) => {}
        }
    }
    parts
}

fn unescape(value: &str) -> String {
    components(value, '\u{0}').concat()
}

/// The label the TEL types stand for, most specific first.
fn phone_label(types: &[String]) -> &'static str {
    const LABELS: &[(&str, &str)] = &[
        ("cell", "mobile"),
        ("mobile", "mobile"),
        ("iphone", "mobile"),
        ("work", "work"),
        ("home", "home"),
        ("main", "main"),
        ("fax", "fax"),
        ("pager", "pager"),
        ("text", "mobile"),
        ("other", "other"),
    ];
    LABELS
        .iter()
        .find(|(t, _)| types.iter().any(|have| have == t))
        .map_or("", |(_, label)| label)
}

/// iOS writes custom labels as `_$!<Mobile>!$_` or plain text.
fn apple_label(value: &str) -> String {
    let text = unescape(value);
    let inner = text
        .strip_prefix("_$!<")
        .and_then(|t| t.strip_suffix(">!$_"))
        .unwrap_or(&text);
    inner.trim().to_lowercase()
}

#[derive(Default)]
struct Card {
    begin_line: usize,
    formatted_name: String,
    structured_name: String,
    company: String,
    phones: Vec<(Option<String>, Phone)>,
    emails: Vec<(bool, String)>,
    notes: Vec<String>,
    group_labels: HashMap<String, String>,
}

impl Card {
    fn add(&mut self, property: &Property<'_>) {
        let value = property.decoded_value();
        match property.name.as_str() {
            "FN" => self.formatted_name = unescape(&value).trim().to_string(),
            "N" => {
                // family; given; additional; prefixes; suffixes
                let parts = components(&value, ';');
                let part = |i: usize| parts.get(i).map_or("", |s| s.trim());
                let ordered = [part(3), part(1), part(2), part(0), part(4)];
                self.structured_name = ordered
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            "ORG" => {
                let parts = components(&value, ';');
                self.company = parts.first().map_or("", |s| s.trim()).to_string();
            }
            "TEL" => {
                let raw = unescape(&value);
                let raw = raw.trim();
                if !raw.is_empty() {
                    let phone = Phone::new(phone_label(&property.types()), raw);
                    self.phones
                        .push((property.group.map(str::to_string), phone));
                }
            }
            "EMAIL" => {
                let email = unescape(&value)
                    .trim()
                    .trim_start_matches("mailto:")
                    .to_string();
                if !email.is_empty() {
                    self.emails.push((property.is_preferred(), email));
                }
            }
            "NOTE" => {
                let note = unescape(&value).trim().to_string();
                if !note.is_empty() {
                    self.notes.push(note);
                }
            }
            "X-ABLABEL" => {
                if let Some(group) = property.group {
                    self.group_labels
                        .insert(group.to_string(), apple_label(&value));
                }
            }
            _ => {}
        }
    }

    fn finish(self) -> Result<NewContact, String> {
        let name = [&self.formatted_name, &self.structured_name, &self.company]
            .into_iter()
            .find(|n| !n.is_empty())
            .cloned()
            .ok_or_else(|| "the card has no name (no FN, N or ORG); it was skipped".to_string())?;
        let email = self
            .emails
            .iter()
            .find(|(preferred, _)| *preferred)
            .or_else(|| self.emails.first())
            .map(|(_, e)| e.clone())
            .unwrap_or_default();
        let phones = self
            .phones
            .into_iter()
            .map(|(group, mut phone)| {
                if let Some(label) = group.and_then(|g| self.group_labels.get(&g)) {
                    phone.label.clone_from(label);
                }
                phone
            })
            .collect();
        Ok(NewContact {
            name,
            company: self.company,
            phones,
            email,
            notes: self.notes.join("\n"),
        })
    }
}

pub(crate) fn parse(text: &str) -> ParsedContacts {
    let mut parsed = ParsedContacts::default();
    let mut card: Option<Card> = None;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for line in unfold(text) {
        if line.text.trim().is_empty() {
            continue;
        }
        let Some(property) = parse_property(&line.text) else {
            let what = if card.is_some() {
                "ignored a line with no ':' inside a card"
            } else {
                "ignored text outside BEGIN:VCARD … END:VCARD"
            };
            parsed.warnings.push((line.number, what.to_string()));
            continue;
        };
        let value_is_vcard = property.value.trim().eq_ignore_ascii_case("VCARD");
        match property.name.as_str() {
            "BEGIN" if value_is_vcard => {
                if let Some(open) = card.take() {
                    parsed.skipped.push((
                        open.begin_line,
                        "the card has no END:VCARD before the next BEGIN:VCARD; it was skipped"
                            .to_string(),
                    ));
                }
                card = Some(Card {
                    begin_line: line.number,
                    ..Card::default()
                });
            }
            "END" if value_is_vcard => match card.take() {
                Some(done) => {
                    let begin = done.begin_line;
                    match done.finish() {
                        Ok(contact) => parsed.contacts.push((begin, contact)),
                        Err(reason) => parsed.skipped.push((begin, reason)),
                    }
                }
                None => parsed.warnings.push((
                    line.number,
                    "ignored END:VCARD with no BEGIN:VCARD".to_string(),
                )),
            },
            _ => match card.as_mut() {
                Some(open) => open.add(&property),
                None => parsed.warnings.push((
                    line.number,
                    "ignored text outside BEGIN:VCARD … END:VCARD".to_string(),
                )),
            },
        }
    }
    if let Some(open) = card {
        parsed.skipped.push((
            open.begin_line,
            "the file ends inside this card (no END:VCARD); it was skipped".to_string(),
        ));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_contact(text: &str) -> NewContact {
        let parsed = parse(text);
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        assert_eq!(parsed.contacts.len(), 1, "{parsed:?}");
        parsed.contacts.into_iter().next().expect("next").1
    }

    fn phones(contact: &NewContact) -> Vec<(&str, &str)> {
        contact
            .phones
            .iter()
            .map(|p| (p.label.as_str(), p.number.as_str()))
            .collect()
    }

    #[test]
    fn vcard_3_with_folding_escapes_and_types() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Hopper;Grace;Brewster;Rear Adm.;\r\nFN:Grace Hopper\r\n\
                    ORG:US Navy;Computing\r\nTEL;type=CELL;type=VOICE;type=pref:+1 650 691 32\r\n 77\r\n\
                    TEL;TYPE=WORK,VOICE:(202) 555-0143\r\nEMAIL;type=INTERNET;type=WORK:grace@navy.example\r\n\
                    NOTE:Invented the compiler\\, more or less.\\nLikes nanoseconds\\; wire ones.\r\nEND:VCARD\r\n";
        let c = only_contact(card);
        assert_eq!(c.name, "Grace Hopper");
        assert_eq!(c.company, "US Navy");
        assert_eq!(
            phones(&c),
            [("mobile", "+16506913277"), ("work", "2025550143")]
        );
        assert_eq!(c.email, "grace@navy.example");
        assert_eq!(
            c.notes,
            "Invented the compiler, more or less.\nLikes nanoseconds; wire ones."
        );
    }

    #[test]
    fn vcard_4_tel_uris_and_pref() {
        let card = "BEGIN:VCARD\nVERSION:4.0\nFN:Ada Lovelace\n\
                    TEL;VALUE=uri;TYPE=\"voice,home\":tel:+44-20-7946-0000\n\
                    TEL;VALUE=uri;PREF=1;TYPE=\"cell\":tel:+44-7700-900123;ext=12\n\
                    EMAIL;TYPE=home:ada@home.example\nEMAIL;PREF=1:ada@engine.example\nEND:VCARD\n";
        let c = only_contact(card);
        assert_eq!(
            phones(&c),
            [("home", "+442079460000"), ("mobile", "+447700900123")]
        );
        assert_eq!(c.phones[1].raw, "tel:+44-7700-900123;ext=12");
        assert_eq!(c.email, "ada@engine.example");
    }

    #[test]
    fn name_falls_back_to_n_then_org() {
        let c = only_contact("BEGIN:VCARD\nVERSION:3.0\nN:Curie;Marie;Salomea;;\nEND:VCARD\n");
        assert_eq!(c.name, "Marie Salomea Curie");
        let c = only_contact(
            "BEGIN:VCARD\nVERSION:3.0\nFN:\nN:;;;;\nORG:Acme Corp\\, Inc.\nEND:VCARD\n",
        );
        assert_eq!(c.name, "Acme Corp, Inc.");
        assert_eq!(c.company, "Acme Corp, Inc.");
    }

    #[test]
    fn apple_item_labels() {
        let card = "BEGIN:VCARD\nVERSION:3.0\nFN:Tim\nitem1.TEL:+1 408 996 1010\n\
                    item1.X-ABLabel:_$!<Main>!$_\nitem2.TEL;type=pref:+1 408 555 0000\n\
                    item2.X-ABLabel:Desk phone\nEND:VCARD\n";
        let c = only_contact(card);
        assert_eq!(
            phones(&c),
            [("main", "+14089961010"), ("desk phone", "+14085550000")]
        );
    }

    #[test]
    fn quoted_printable_is_decoded_and_never_crashes() {
        let card = "BEGIN:VCARD\nVERSION:2.1\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen\n\
                    NOTE;ENCODING=QUOTED-PRINTABLE:line one=0D=0Aline=\ntwo =ZZ end\nTEL;CELL:+49 30 1234567\nEND:VCARD\n";
        let c = only_contact(card);
        assert_eq!(c.name, "Jürgen Müller");
        assert_eq!(c.notes, "line one\r\nlinetwo =ZZ end");
        assert_eq!(phones(&c), [("mobile", "+49301234567")]);
        let latin = only_contact(
            "BEGIN:VCARD\nFN;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:Jos=E9\nEND:VCARD\n",
        );
        assert_eq!(latin.name, "José");
    }

    #[test]
    fn malformed_cards_are_reported_by_line_and_the_rest_kept() {
        let text = "garbage before\n\
                    BEGIN:VCARD\nVERSION:3.0\nFN:Good One\nTEL:+33 1 23 45 67 89\nEND:VCARD\n\
                    BEGIN:VCARD\nVERSION:3.0\nTEL:+33 6 00 00 00 00\nEND:VCARD\n\
                    BEGIN:VCARD\nVERSION:3.0\nFN:Never Closed\n\
                    BEGIN:VCARD\nVERSION:3.0\nFN:Good Two\nthis line has no colon\nEND:VCARD\n\
                    END:VCARD\n\
                    BEGIN:VCARD\nFN:Truncated";
        let parsed = parse(text);
        let names: Vec<(usize, &str)> = parsed
            .contacts
            .iter()
            .map(|(l, c)| (*l, c.name.as_str()))
            .collect();
        assert_eq!(names, [(2, "Good One"), (14, "Good Two")]);
        let skipped: Vec<usize> = parsed.skipped.iter().map(|(l, _)| *l).collect();
        assert_eq!(skipped, [7, 11, 20]);
        assert!(parsed.skipped[0].1.contains("no name"));
        assert!(parsed.skipped[1].1.contains("no END:VCARD"));
        assert!(parsed.skipped[2].1.contains("file ends inside"));
        let warned: Vec<usize> = parsed.warnings.iter().map(|(l, _)| *l).collect();
        assert_eq!(warned, [1, 17, 19]);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for text in [
            "",
            ":",
            ";;;:",
            "BEGIN:VCARD\n:\n.:x\nN:\\\nEND:VCARD",
            "BEGIN:VCARD\nFN;ENCODING=QUOTED-PRINTABLE:=\nEND:VCARD",
            "BEGIN:VCARD\nFN;ENCODING=QUOTED-PRINTABLE:=E\nEND:VCARD",
            "\u{feff}BEGIN:VCARD\nFN:é\\",
            " \n\t\n",
            "BEGIN:VCARD\nTEL;TYPE=\"unclosed:+1\nEND:VCARD",
        ] {
            let _ = parse(text);
        }
    }
}
