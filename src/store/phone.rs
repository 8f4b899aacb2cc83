//! Phone numbers as the store keeps them: E.164 ("+33123456789") whenever the text allows it, so a
//! caller ID finds its contact however either side wrote the number.
//!
//! Deliberately small (no numbering-plan metadata): it drops formatting, turns the `00` and NANP
//! `011` international prefixes into `+`, and, given the user's country calling code, replaces a
//! national trunk `0`. Anything else (letters, "ext. 12", SIP URIs) is kept as the user typed it.

/// Shortest and longest digit counts accepted as E.164 after the `+`.
const E164_MIN_DIGITS: usize = 3;
const E164_MAX_DIGITS: usize = 15;

/// Country codes whose national numbers keep their leading 0 after the country code
/// (Italy, San Marino, Vatican): "06 1234 5678" is "+39 06 1234 5678".
const KEEPS_TRUNK_ZERO: &[&str] = &["39", "378", "379"];

/// Normalises a phone number: E.164 when possible, otherwise the digits (an extension such as
/// "1001", or a national number with no calling code to complete it), otherwise the trimmed text.
///
/// `default_calling_code` is the user's country code as digits ("33", "1", "44").
pub fn normalize_phone(raw: &str, default_calling_code: Option<&str>) -> String {
    let trimmed = raw.trim();
    let Some(cleaned) = strip_formatting(trimmed) else {
        return trimmed.to_string();
    };
    let (plus, digits) = cleaned;
    if digits.is_empty() {
        return trimmed.to_string();
    }
    if plus {
        return as_e164(&digits).unwrap_or_else(|| trimmed.to_string());
    }
    if let Some(international) = digits.strip_prefix("00") {
        return as_e164(international).unwrap_or(digits);
    }
    let Some(code) = default_calling_code.filter(|c| valid_calling_code(c)) else {
        return digits;
    };
    if code == "1" {
        if let Some(international) = digits.strip_prefix("011") {
            return as_e164(international).unwrap_or(digits);
        }
        return nanp(&digits).unwrap_or(digits);
    }
    if let Some(national) = digits.strip_prefix('0') {
        if national.starts_with('0') || national.len() < 4 {
            return digits;
        }
        let significant = if KEEPS_TRUNK_ZERO.contains(&code) {
            digits.as_str()
        } else {
            national
        };
        return as_e164(&format!("{code}{significant}")).unwrap_or(digits);
    }
    digits
}

/// True for "+" followed by 3 to 15 digits, the first not 0.
pub fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|digits| as_e164(digits).is_some())
}

/// Removes formatting; `None` when the text holds anything that is not a number.
/// Returns whether it started with '+', and the digits.
/// The key of the suffix index: significant digits, last first (no '+', no trunk zeros), so a
/// prefix range on it is a match on the number's last digits.
pub(crate) fn suffix_key(number: &str) -> String {
    let significant = if number.starts_with('+') {
        number
    } else {
        number.trim_start_matches('0')
    };
    significant
        .chars()
        .rev()
        .filter(char::is_ascii_digit)
        .collect()
}

fn strip_formatting(text: &str) -> Option<(bool, String)> {
    let mut rest = text;
    let mut is_uri = false;
    if let Some(prefix) = rest.get(..4) {
        if prefix.eq_ignore_ascii_case("tel:") {
            rest = rest.get(4..).unwrap_or_default();
            is_uri = true;
        }
    }
    if is_uri {
        // tel: URI parameters (";ext=12", ";phone-context=...") are not part of the number.
        rest = rest.split(';').next().unwrap_or_default();
    }
    let rest = rest.trim_start();
    let (plus, body) = match rest.strip_prefix('+') {
        Some(body) => (true, body),
        None => (false, rest),
    };
    // "+44 (0)20 7946 0000": the bracketed 0 is dialled only from inside the country.
    let body = if plus {
        body.replacen("(0)", "", 1)
    } else {
        body.to_string()
    };
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' | '\u{2010}' | '\u{2011}' | '\u{2012}'
            | '\u{2013}' | '\u{202f}' => {}
            _ => return None,
        }
    }
    Some((plus, digits))
}

fn as_e164(digits: &str) -> Option<String> {
    let valid = (E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| format!("+{digits}"))
}

fn valid_calling_code(code: &str) -> bool {
    (1..=3).contains(&code.len())
        && !code.starts_with('0')
        && code.bytes().all(|b| b.is_ascii_digit())
}

/// North American numbers: 10 digits with an area code starting 2-9, or the same behind a 1.
fn nanp(digits: &str) -> Option<String> {
    let ten = match digits.len() {
        10 => digits,
        11 => digits.strip_prefix('1')?,
        _ => return None,
    };
    matches!(ten.as_bytes().first(), Some(b'2'..=b'9')).then(|| format!("+1{ten}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_forms_become_e164() {
        assert_eq!(normalize_phone("+33 1 23 45 67 89", None), "+33123456789");
        assert_eq!(normalize_phone("0033123456789", None), "+33123456789");
        assert_eq!(
            normalize_phone("00 33 (1) 23-45-67-89", None),
            "+33123456789"
        );
        assert_eq!(normalize_phone("+1 (650) 691-3277", None), "+16506913277");
        assert_eq!(
            normalize_phone("+44 (0)20 7946 0000", None),
            "+442079460000"
        );
        assert_eq!(
            normalize_phone("tel:+1-555-555-5555;ext=5555", None),
            "+15555555555"
        );
        assert_eq!(normalize_phone("TEL:+49.30.1234567", None), "+49301234567");
        assert_eq!(
            normalize_phone("  +33\u{a0}6\u{a0}12\u{a0}34\u{a0}56\u{a0}78 ", None),
            "+33612345678"
        );
    }

    #[test]
    fn national_numbers_need_the_calling_code() {
        assert_eq!(
            normalize_phone("01 23 45 67 89", Some("33")),
            "+33123456789"
        );
        assert_eq!(normalize_phone("01 23 45 67 89", None), "0123456789");
        assert_eq!(
            normalize_phone("020 7946 0000", Some("44")),
            "+442079460000"
        );
        // Italy keeps its 0 after the country code.
        assert_eq!(normalize_phone("06 1234 5678", Some("39")), "+390612345678");
        // North America: no trunk 0, ten digits, optional leading 1, 011 abroad.
        assert_eq!(normalize_phone("(650) 691-3277", Some("1")), "+16506913277");
        assert_eq!(normalize_phone("1-650-691-3277", Some("1")), "+16506913277");
        assert_eq!(
            normalize_phone("011 33 1 23 45 67 89", Some("1")),
            "+33123456789"
        );
        // A bad configured code is ignored rather than glued on.
        assert_eq!(normalize_phone("0123456789", Some("abc")), "0123456789");
    }

    #[test]
    fn extensions_and_short_numbers_stay_digits() {
        assert_eq!(normalize_phone("1001", Some("33")), "1001");
        assert_eq!(normalize_phone("*97", Some("33")), "*97");
        assert_eq!(normalize_phone("112", Some("33")), "112");
        assert_eq!(normalize_phone("555-0100", Some("1")), "5550100");
    }

    #[test]
    fn text_that_is_not_a_number_is_kept() {
        assert_eq!(
            normalize_phone(" +1 650 691 3277 ext. 12 ", None),
            "+1 650 691 3277 ext. 12"
        );
        assert_eq!(
            normalize_phone("sip:alice@example.com", None),
            "sip:alice@example.com"
        );
        assert_eq!(
            normalize_phone("ask reception", Some("33")),
            "ask reception"
        );
        assert_eq!(normalize_phone("", None), "");
        assert_eq!(normalize_phone("   ", None), "");
        assert_eq!(normalize_phone("+", None), "+");
        // Too long for E.164, or a + followed by 0: kept as written.
        assert_eq!(
            normalize_phone("+1234567890123456", None),
            "+1234567890123456"
        );
        assert_eq!(normalize_phone("+0 123 456", None), "+0 123 456");
        // Non-ASCII digits and stray characters never panic.
        assert_eq!(normalize_phone("+٣٣١٢٣", None), "+٣٣١٢٣");
        assert_eq!(normalize_phone("tel:", None), "tel:");
        assert_eq!(normalize_phone("té", None), "té");
    }

    #[test]
    fn suffix_keys_drop_the_trunk_zero() {
        assert_eq!(suffix_key("+33123456789"), "98765432133");
        assert_eq!(suffix_key("0123456789"), "987654321");
        assert_eq!(suffix_key("+3310"), "0133");
        assert_eq!(suffix_key("ask reception"), "");
    }

    #[test]
    fn e164_check() {
        assert!(is_e164("+33123456789"));
        assert!(!is_e164("33123456789"));
        assert!(!is_e164("+0123"));
        assert!(!is_e164("+12"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+33 1"));
    }
}
