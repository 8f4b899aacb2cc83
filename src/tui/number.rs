//! Phone numbers typed by a person, normalised to E.164 (`+<country><number>`).
//!
//! A pragmatic normaliser, not libphonenumber: `+` and international-prefix numbers are
//! checked for length (and, for the countries in [`REGIONS`], for the length of the national
//! number); national numbers need a default region from that table, whose trunk prefix is
//! dropped. It knows nothing of number ranges, so a well-formed but unassigned number passes.
//! The `phonenumber` crate would bring the full metadata at a build and size cost we do not
//! need yet.

/// The wording agents see for a number we cannot use.
pub const INCORRECT_NUMBER: &str =
    "Incorrect number: use the international format, e.g. +16506913277";

/// What we know of one country's numbering plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// ISO 3166 alpha-2 code.
    pub code: &'static str,
    pub calling_code: &'static str,
    /// Dropped from national numbers ("0" in most of Europe, "1" in the NANP).
    pub trunk_prefix: Option<&'static str>,
    /// Dialled before a country code from inside the country.
    pub international_prefix: &'static str,
    /// Digits of the national significant number, inclusive.
    pub national_digits: (usize, usize),
}

const fn region(
    code: &'static str,
    calling_code: &'static str,
    trunk_prefix: Option<&'static str>,
    international_prefix: &'static str,
    national_digits: (usize, usize),
) -> Region {
    Region {
        code,
        calling_code,
        trunk_prefix,
        international_prefix,
        national_digits,
    }
}

/// The regions national numbers can be typed for. Italy and San Marino keep their leading 0
/// (no trunk prefix); Spain, Portugal, Luxembourg, Denmark and Norway have none.
pub const REGIONS: &[Region] = &[
    region("AT", "43", Some("0"), "00", (4, 13)),
    region("AU", "61", Some("0"), "0011", (9, 9)),
    region("BE", "32", Some("0"), "00", (8, 9)),
    region("CA", "1", Some("1"), "011", (10, 10)),
    region("CH", "41", Some("0"), "00", (9, 9)),
    region("DE", "49", Some("0"), "00", (6, 13)),
    region("DK", "45", None, "00", (8, 8)),
    region("ES", "34", None, "00", (9, 9)),
    region("FR", "33", Some("0"), "00", (9, 9)),
    region("GB", "44", Some("0"), "00", (9, 10)),
    region("IE", "353", Some("0"), "00", (7, 9)),
    region("IT", "39", None, "00", (6, 11)),
    region("LU", "352", None, "00", (4, 11)),
    region("NL", "31", Some("0"), "00", (9, 9)),
    region("NO", "47", None, "00", (8, 8)),
    region("PL", "48", None, "00", (9, 9)),
    region("PT", "351", None, "00", (9, 9)),
    region("SE", "46", Some("0"), "00", (7, 13)),
    region("US", "1", Some("1"), "011", (10, 10)),
];

/// E.164 allows at most 15 digits after the `+`; below 7 nothing real is left.
const E164_DIGITS: (usize, usize) = (7, 15);

/// The region with this ISO code (any case).
pub fn region_of(code: &str) -> Option<&'static Region> {
    REGIONS.iter().find(|r| r.code.eq_ignore_ascii_case(code))
}

/// Normalises a typed number to E.164. National numbers (no `+`, no international prefix) are
/// read in `default_region`. Blanks, dots, dashes, slashes and brackets are ignored.
///
/// Errors are sentences for the notice line.
pub fn normalize_number(input: &str, default_region: Option<&str>) -> Result<String, String> {
    let trimmed = input.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '\u{a0}' | '.' | '-' | '/' | '(' | ')' => {}
            _ => return Err(INCORRECT_NUMBER.to_owned()),
        }
    }
    if digits.is_empty() {
        return Err(INCORRECT_NUMBER.to_owned());
    }
    if plus {
        return international(&digits);
    }
    let region = match default_region {
        Some(code) => match region_of(code) {
            Some(region) => Some(region),
            None => {
                return Err(format!(
                    "Cannot read national numbers for region {}: use the international format, e.g. +16506913277 (known regions: {})",
                    code.chars().take(8).collect::<String>(),
                    REGIONS.iter().map(|r| r.code).collect::<Vec<_>>().join(", ")
                ))
            }
        },
        None => None,
    };
    // "00 32 ..." (or the region's own prefix) is the international form without the +.
    let prefixes: &[&str] = match region {
        Some(r) if r.international_prefix != "00" => &[r.international_prefix, "00"],
        _ => &["00"],
    };
    for prefix in prefixes {
        if let Some(after) = digits.strip_prefix(prefix) {
            if !after.is_empty() && !after.starts_with('0') {
                return international(after);
            }
        }
    }
    let Some(region) = region else {
        return Err(INCORRECT_NUMBER.to_owned());
    };
    let national = match region.trunk_prefix {
        Some(trunk) => match digits.strip_prefix(trunk) {
            Some(after) => after,
            // NANP numbers are often typed without the leading 1; elsewhere the trunk 0 is
            // part of every national number.
            None if region.calling_code == "1" => digits.as_str(),
            None => return Err(INCORRECT_NUMBER.to_owned()),
        },
        None => digits.as_str(),
    };
    let (low, high) = region.national_digits;
    if national.len() < low
        || national.len() > high
        || national.starts_with('0') && region.trunk_prefix.is_some()
    {
        return Err(INCORRECT_NUMBER.to_owned());
    }
    Ok(format!("+{}{national}", region.calling_code))
}

/// `digits` follow a `+` (or an international prefix).
fn international(digits: &str) -> Result<String, String> {
    let (low, high) = E164_DIGITS;
    if digits.len() < low || digits.len() > high || digits.starts_with('0') {
        return Err(INCORRECT_NUMBER.to_owned());
    }
    // Where the country is one we know, hold the national part to its length.
    let known = REGIONS
        .iter()
        .filter(|r| digits.starts_with(r.calling_code))
        .max_by_key(|r| r.calling_code.len());
    if let Some(region) = known {
        let national_len = digits.len() - region.calling_code.len();
        let (low, high) = region.national_digits;
        if national_len < low || national_len > high {
            return Err(INCORRECT_NUMBER.to_owned());
        }
    }
    Ok(format!("+{digits}"))
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
        // A country we have no table for is held to E.164's length only.
        assert_eq!(ok("+81 3 1234 5678", None), "+81312345678");
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
            ("470 12 34 56", Some("BE")), // no trunk 0
            ("0470 12", Some("BE")),      // too short
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
    fn an_unknown_region_says_which_ones_work() {
        let error = normalize_number("0470123456", Some("ZZ")).expect_err("unknown region");
        assert!(error.contains("region ZZ"), "{error}");
        assert!(error.contains("BE, CA"), "{error}");
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
