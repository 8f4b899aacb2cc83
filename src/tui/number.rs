//! Phone numbers typed by a person, normalised to E.164 (`+<country><number>`) with the
//! `phonenumber` crate (libphonenumber's metadata): the number must be a valid one for its
//! country, not merely the right length. National numbers are read in `[dial] default_region`.

use std::str::FromStr;

use phonenumber::country;
use phonenumber::Mode;

/// The wording agents see for a number we cannot use.
pub const INCORRECT_NUMBER: &str =
    "Incorrect number: use the international format, e.g. +16506913277";

/// Longer input is no phone number; it never reaches the parser.
const MAX_INPUT_CHARS: usize = 40;

/// The country calling code of an ISO 3166 region ("BE" → "32"), from libphonenumber's metadata.
pub fn calling_code(region: &str) -> Option<String> {
    phonenumber::metadata::DATABASE
        .by_id(region.trim().to_ascii_uppercase().as_str())
        .map(|metadata| metadata.country_code().to_string())
}

/// Normalises a typed number to E.164. National numbers (no `+`, no international prefix) are
/// read in `default_region` (an ISO 3166 code, any case). Blanks, dots, dashes, slashes and
/// brackets are ignored; letters are refused.
///
/// Errors are sentences for the notice line.
pub fn normalize_number(input: &str, default_region: Option<&str>) -> Result<String, String> {
    let trimmed = input.trim();
    let allowed = |(i, c): (usize, char)| {
        c.is_ascii_digit()
            || (c == '+' && i == 0)
            || matches!(c, ' ' | '\u{a0}' | '.' | '-' | '/' | '(' | ')')
    };
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_INPUT_CHARS
        || !trimmed.char_indices().all(allowed)
        || !trimmed.chars().any(|c| c.is_ascii_digit())
    {
        return Err(INCORRECT_NUMBER.to_owned());
    }
    let international = trimmed.starts_with('+');
    let region = match default_region {
        Some(code) => match country::Id::from_str(&code.trim().to_ascii_uppercase()) {
            Ok(id) => Some(id),
            // An international number needs no region, known or not.
            Err(_) if international => None,
            Err(_) => {
                return Err(format!(
                    "Cannot read national numbers for region {}: set [dial] default_region to a two-letter country code such as BE or US, or use the international format, e.g. +16506913277",
                    code.chars().take(8).collect::<String>()
                ))
            }
        },
        None => None,
    };
    // Without a region, "00 32 ..." is still the international form: 00 is the prefix almost
    // everywhere, and nothing else can be meant.
    let text = match (region, trimmed.strip_prefix("00")) {
        (None, Some(rest)) => format!("+{rest}"),
        _ => trimmed.to_owned(),
    };
    let number = phonenumber::parse(region, &text).map_err(|_| INCORRECT_NUMBER.to_owned())?;
    if !phonenumber::is_valid(&number) {
        return Err(INCORRECT_NUMBER.to_owned());
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// What a dial prompt accepts: a SIP URI or `user@host` as typed, a feature code (`*600`), an
/// extension of at most `max_extension_digits` digits, else a phone number normalised to E.164.
pub fn dial_target(
    input: &str,
    default_region: Option<&str>,
    max_extension_digits: usize,
) -> Result<String, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("Type a number, an extension or a SIP address".to_owned());
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        return if text.contains(char::is_whitespace) || text.len() < 6 {
            Err("Incorrect SIP address: write it as sip:user@host".to_owned())
        } else {
            Ok(text.to_owned())
        };
    }
    if let Some((user, host)) = text.split_once('@') {
        let fine = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+:[]".contains(&b))
        };
        return if fine(user) && fine(host) {
            Ok(text.to_owned())
        } else {
            Err("Incorrect SIP address: write it as sip:user@host".to_owned())
        };
    }
    if (text.starts_with('*') || text.starts_with('#'))
        && text.len() <= 16
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    {
        return Ok(text.to_owned());
    }
    if text.len() <= max_extension_digits && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(text.to_owned());
    }
    normalize_number(text, default_region)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str, region: Option<&str>) -> String {
        normalize_number(input, region).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn international_numbers_keep_their_digits() {
        assert_eq!(ok("+16506913277", None), "+16506913277");
        assert_eq!(ok("+1 (650) 691-3277", None), "+16506913277");
        assert_eq!(ok("+32 470 12 34 56", None), "+32470123456");
        assert_eq!(ok("0032 2 555 12 12", Some("BE")), "+3225551212");
        assert_eq!(ok("0032 2 555 12 12", None), "+3225551212");
        assert_eq!(ok("011 44 20 7946 0018", Some("US")), "+442079460018");
        assert_eq!(ok("+81 3 1234 5678", None), "+81312345678");
        // The common slip of keeping the trunk 0 after the country code is forgiven.
        assert_eq!(ok("+44 (0)20 7946 0018", None), "+442079460018");
    }

    #[test]
    fn national_numbers_need_a_region_and_lose_the_trunk_prefix() {
        assert_eq!(ok("0470 12 34 56", Some("BE")), "+32470123456");
        assert_eq!(ok("02/555.12.12", Some("be")), "+3225551212");
        assert_eq!(ok("01 23 45 67 89", Some("FR")), "+33123456789");
        assert_eq!(ok("(650) 691-3277", Some("US")), "+16506913277");
        assert_eq!(ok("1 650 691 3277", Some("US")), "+16506913277");
        assert_eq!(ok("020 7946 0018", Some("GB")), "+442079460018");
        assert_eq!(ok("030 123456", Some("DE")), "+4930123456");
        assert_eq!(ok("06 12345678", Some("NL")), "+31612345678");
        // Italy keeps the leading 0 of fixed lines.
        assert_eq!(ok("06 1234 5678", Some("IT")), "+390612345678");
        assert_eq!(ok("612 34 56 78", Some("ES")), "+34612345678");
        // libphonenumber reads a national number typed without its trunk 0 too.
        assert_eq!(ok("470 12 34 56", Some("BE")), "+32470123456");
    }

    #[test]
    fn wrong_numbers_get_the_seeds_wording() {
        for (input, region) in [
            ("0470123456", None),
            ("+1650691327", None),       // one digit short for the NANP
            ("+3247012345678", None),    // too long for Belgium
            ("+0123456789", None),       // no country code starts with 0
            ("+1234567890123456", None), // 16 digits
            ("12ab34", Some("BE")),
            ("", Some("BE")),
            ("+", None),
            ("0470 12", Some("BE")), // too short
            ("+32 1 234 56", None),  // no Belgian number starts 1 with 6 digits
            ("+1 555 0100", None),   // not a NANP number
        ] {
            assert_eq!(
                normalize_number(input, region),
                Err(INCORRECT_NUMBER.to_owned()),
                "{input:?} in {region:?}"
            );
        }
        assert_eq!(
            INCORRECT_NUMBER,
            "Incorrect number: use the international format, e.g. +16506913277"
        );
    }

    #[test]
    fn calling_codes_come_from_the_metadata() {
        assert_eq!(calling_code("BE").as_deref(), Some("32"));
        assert_eq!(calling_code("us").as_deref(), Some("1"));
        assert_eq!(calling_code("IE").as_deref(), Some("353"));
        assert_eq!(calling_code("ZZ"), None);
    }

    #[test]
    fn an_unknown_region_says_what_to_set() {
        let error = normalize_number("0470123456", Some("ZZ")).expect_err("unknown region");
        assert!(error.contains("region ZZ"), "{error}");
        assert!(error.contains("[dial] default_region"), "{error}");
        // International numbers need no region, known or not.
        assert_eq!(ok("+32470123456", Some("ZZ")), "+32470123456");
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let long = "9".repeat(10_000);
        assert!(normalize_number(&long, Some("BE")).is_err());
        assert!(normalize_number("+٣٢٤٧٠", None).is_err());
        assert!(normalize_number("00", Some("BE")).is_err());
        assert!(normalize_number("0000000", Some("BE")).is_err());
    }

    #[test]
    fn dial_targets_pass_extensions_codes_and_uris_through() {
        assert_eq!(dial_target("102", None, 6), Ok("102".to_owned()));
        assert_eq!(dial_target(" *600 ", None, 6), Ok("*600".to_owned()));
        assert_eq!(
            dial_target("sip:alice@example.com", None, 6),
            Ok("sip:alice@example.com".to_owned())
        );
        assert_eq!(
            dial_target("bob@10.0.0.1:5070", None, 6),
            Ok("bob@10.0.0.1:5070".to_owned())
        );
        assert_eq!(
            dial_target("0470 12 34 56", Some("BE"), 6),
            Ok("+32470123456".to_owned())
        );
        assert_eq!(
            dial_target("0470123456", None, 6),
            Err(INCORRECT_NUMBER.to_owned())
        );
        assert!(dial_target("   ", None, 6).is_err());
        assert!(dial_target("a b@c", None, 6).is_err());
    }
}
