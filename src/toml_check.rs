//! Helpers shared by the TOML config readers (`config`, `lab::config`): line numbers from
//! byte offsets, values and keys quoted safely for error lines, and "did you mean" suggestions.

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    before.iter().filter(|&&byte| byte == b'\n').count() + 1
}

/// A value as it would be written in TOML, shortened so one bad line cannot
/// flood the terminal.
pub(crate) fn show_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => format!("{:?}", shorten(text)),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Float(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        toml::Value::Datetime(datetime) => datetime.to_string(),
        toml::Value::Array(_) => "[...]".to_owned(),
        toml::Value::Table(_) => "{...}".to_owned(),
    }
}

/// A user-written key, escaped and shortened for an error line; `extra` lists characters
/// besides letters, digits, `_` and `-` that may stand unquoted.
pub(crate) fn printable(key: &str, extra: &str) -> String {
    let shortened = shorten(key);
    if shortened
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || extra.contains(c))
    {
        shortened
    } else {
        format!("{shortened:?}")
    }
}

pub(crate) fn shorten(text: &str) -> String {
    const LIMIT: usize = 60;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(LIMIT).collect();
        short.push('…');
        short
    }
}

/// The allowed name closest to `typed`, if it is within two edits (first wins ties).
pub(crate) fn nearest(typed: &str, allowed: &'static [&'static str]) -> Option<&'static str> {
    if typed.len() > 64 {
        return None;
    }
    let typed = typed.to_ascii_lowercase();
    let mut best: Option<(usize, &'static str)> = None;
    for &candidate in allowed {
        let distance = edit_distance(&typed, candidate);
        let closer = match best {
            Some((best_distance, _)) => distance < best_distance,
            None => distance <= 2,
        };
        if closer {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}
