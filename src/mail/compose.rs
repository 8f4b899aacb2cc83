//! The follow-up email itself: call details + template -> editable draft -> RFC 5322 message.
//!
//! Sans-IO: the clock and the Message-ID's random part are passed in. The draft is what the
//! agent sees in $EDITOR (`To:` and `Subject:` lines, a blank line, the body, LF line ends);
//! the message is what goes on the wire (CRLF, folded headers, RFC 2047 words for non-ASCII,
//! quoted-printable UTF-8 body, so it passes any server without 8BITMIME).

use std::fmt;

/// Header lines are folded before this many characters (RFC 5322 2.1.1 "SHOULD").
const FOLD_AT: usize = 78;
/// An RFC 2047 encoded word may not be longer than 75 characters; "=?UTF-8?B?" + "?=" take 12,
/// leaving 63 base64 characters, i.e. 15 groups of 3 bytes.
const ENCODED_WORD_MAX_BYTES: usize = 45;
/// Quoted-printable lines are at most 76 characters including the soft-break '='.
const QP_LINE_MAX: usize = 75;
/// RFC 5321 4.5.3.1: local part at most 64 octets, whole path at most 256 with the brackets.
const LOCAL_PART_MAX: usize = 64;
const ADDRESS_MAX: usize = 254;

/// A wall-clock instant as the caller's clock saw it, with the UTC offset to show it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailTime {
    pub unix_seconds: i64,
    pub utc_offset_minutes: i16,
}

struct CivilTime {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    weekday: usize,
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl MailTime {
    pub fn utc(unix_seconds: i64) -> MailTime {
        MailTime {
            unix_seconds,
            utc_offset_minutes: 0,
        }
    }

    fn civil(self) -> CivilTime {
        let local = self
            .unix_seconds
            .saturating_add(i64::from(self.utc_offset_minutes) * 60);
        let days = local.div_euclid(86_400);
        let seconds_of_day = local.rem_euclid(86_400);
        // Days -> proleptic Gregorian date (the well-known era/day-of-era method).
        let z = days.saturating_add(719_468);
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era.saturating_add(era.saturating_mul(400)) + i64::from(month <= 2);
        CivilTime {
            year,
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
            hour: seconds_of_day / 3600,
            minute: seconds_of_day % 3600 / 60,
            second: seconds_of_day % 60,
            // 1970-01-01 was a Thursday.
            weekday: usize::try_from((days.rem_euclid(7) + 4) % 7).unwrap_or(0),
        }
    }

    fn offset_text(self, separator: &str) -> String {
        let sign = if self.utc_offset_minutes < 0 {
            '-'
        } else {
            '+'
        };
        let minutes = self.utc_offset_minutes.unsigned_abs();
        format!("{sign}{:02}{separator}{:02}", minutes / 60, minutes % 60)
    }

    /// RFC 5322 date-time, e.g. `Sat, 21 Nov 2026 18:09:29 +0000`.
    pub fn rfc5322(self) -> String {
        let t = self.civil();
        format!(
            "{}, {} {} {:04} {:02}:{:02}:{:02} {}",
            WEEKDAYS.get(t.weekday).unwrap_or(&"Sun"),
            t.day,
            MONTHS
                .get(t.month.saturating_sub(1) as usize)
                .unwrap_or(&"Jan"),
            t.year,
            t.hour,
            t.minute,
            t.second,
            self.offset_text("")
        )
    }

    /// For people: `2026-11-21 18:09 UTC` or `2026-11-21 19:09 UTC+01:00`.
    pub fn human(self) -> String {
        let t = self.civil();
        let zone = if self.utc_offset_minutes == 0 {
            "UTC".to_string()
        } else {
            format!("UTC{}", self.offset_text(":"))
        };
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} {zone}",
            t.year, t.month, t.day, t.hour, t.minute
        )
    }
}

/// Which way the call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    Inbound,
    Outbound,
}

impl CallDirection {
    fn word(self) -> &'static str {
        match self {
            CallDirection::Inbound => "incoming",
            CallDirection::Outbound => "outgoing",
        }
    }
}

/// What the template may mention about the call. Plain data: the caller copies it from the
/// call history or the live call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDetails {
    pub contact_name: Option<String>,
    /// The contact's email address if the phonebook knows it; otherwise the agent types it.
    pub contact_email: Option<String>,
    pub number: String,
    pub direction: CallDirection,
    pub started_at: MailTime,
    pub duration_seconds: u64,
    /// E.g. "answered", "missed", "voicemail".
    pub outcome: String,
    pub queue: Option<String>,
    /// The agent's name for the signature; defaults to the sender's display name.
    pub agent_name: Option<String>,
}

/// Subject and body templates with `{placeholder}`s; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpTemplate {
    pub subject: String,
    pub body: String,
}

/// Every placeholder a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "contact",
    "number",
    "direction",
    "started",
    "duration",
    "outcome",
    "queue",
    "agent",
];

pub const DEFAULT_SUBJECT_TEMPLATE: &str = "Following up on our call of {started}";
pub const DEFAULT_BODY_TEMPLATE: &str = "Hello {contact},

thank you for your time on the phone. A short summary of our call:

  Call:      {direction}, {number}
  Started:   {started}
  Duration:  {duration}
  Outcome:   {outcome}
  Queue:     {queue}

Best regards,
{agent}
";

impl Default for FollowUpTemplate {
    fn default() -> Self {
        FollowUpTemplate {
            subject: DEFAULT_SUBJECT_TEMPLATE.to_string(),
            body: DEFAULT_BODY_TEMPLATE.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "{part} template uses unknown placeholder {{{name}}}: known ones are {}",
        known_placeholders()
    )]
    UnknownPlaceholder { part: &'static str, name: String },
    #[error("{part} template has a '{{' without a closing '}}' at character {position}: close it, or write {{{{ for a literal brace")]
    Unclosed { part: &'static str, position: usize },
    #[error(
        "{part} template has a lone '}}' at character {position}: write }}}} for a literal brace"
    )]
    LoneClosingBrace { part: &'static str, position: usize },
}

fn known_placeholders() -> String {
    PLACEHOLDERS
        .iter()
        .map(|p| format!("{{{p}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_template(
    part: &'static str,
    template: &str,
    value_of: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut chars = template.char_indices().peekable();
    while let Some((position, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(TemplateError::Unclosed { part, position });
                }
                let name = name.trim();
                match value_of(name) {
                    Some(value) => out.push_str(&value),
                    None => {
                        return Err(TemplateError::UnknownPlaceholder {
                            part,
                            name: name.to_string(),
                        })
                    }
                }
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(TemplateError::LoneClosingBrace { part, position }),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `4 min 5 s`, `1 h 2 min 3 s`, `45 s`.
fn human_duration(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if hours > 0 {
        format!("{hours} h {minutes} min {seconds} s")
    } else if minutes > 0 {
        format!("{minutes} min {seconds} s")
    } else {
        format!("{seconds} s")
    }
}

impl FollowUpTemplate {
    /// Renders with dummy details, to report template mistakes when the config is loaded.
    pub fn check(&self) -> Result<(), TemplateError> {
        let any = |name: &str| PLACEHOLDERS.contains(&name).then(String::new);
        render_template("subject", &self.subject, &any)?;
        render_template("body", &self.body, &any)?;
        Ok(())
    }

    /// Subject and body for this call.
    pub fn render(
        &self,
        details: &CallDetails,
        from: &Mailbox,
    ) -> Result<(String, String), TemplateError> {
        let value_of = |name: &str| -> Option<String> {
            Some(match name {
                "contact" => details
                    .contact_name
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| details.number.clone()),
                "number" => details.number.clone(),
                "direction" => details.direction.word().to_string(),
                "started" => details.started_at.human(),
                "duration" => human_duration(details.duration_seconds),
                "outcome" => details.outcome.clone(),
                "queue" => details.queue.clone().unwrap_or_else(|| "-".to_string()),
                "agent" => details
                    .agent_name
                    .clone()
                    .or_else(|| from.display_name.clone())
                    .unwrap_or_else(|| from.address.clone()),
                _ => return None,
            })
        };
        let subject = render_template("subject", &self.subject, &value_of)?;
        let body = render_template("body", &self.body, &value_of)?;
        Ok((one_line(&subject), body))
    }
}

/// Collapses whitespace (including line breaks) so a value fits on one header line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A mailbox: optional display name and an address (`local@domain`, ASCII only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub display_name: Option<String>,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("it is empty")]
    Empty,
    #[error("it has no '@'")]
    NoAt,
    #[error("it has more than one '@' (quoted local parts are not supported)")]
    SeveralAt,
    #[error("the part before '@' is empty")]
    EmptyLocalPart,
    #[error("the part before '@' is longer than 64 characters")]
    LocalPartTooLong,
    #[error("the address is longer than 254 characters")]
    TooLong,
    #[error("the part before '@' has a character not allowed there: {0:?}")]
    BadLocalChar(char),
    #[error("the part before '@' has a dot at its start or end or two dots in a row")]
    BadDots,
    #[error("the domain '{0}' is not a valid host name")]
    BadDomain(String),
    #[error("non-ASCII addresses need SMTPUTF8, which ringside does not send")]
    NonAscii,
    #[error("'<' without a closing '>'")]
    UnclosedAngle,
    #[error("text after the closing '>'")]
    TextAfterAngle,
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn check_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks a bare `local@domain` address.
pub fn check_address(address: &str) -> Result<(), AddressError> {
    if address.is_empty() {
        return Err(AddressError::Empty);
    }
    if !address.is_ascii() {
        return Err(AddressError::NonAscii);
    }
    if address.len() > ADDRESS_MAX {
        return Err(AddressError::TooLong);
    }
    let mut parts = address.split('@');
    let (Some(local), Some(domain)) = (parts.next(), parts.next()) else {
        return Err(AddressError::NoAt);
    };
    if parts.next().is_some() {
        return Err(AddressError::SeveralAt);
    }
    if local.is_empty() {
        return Err(AddressError::EmptyLocalPart);
    }
    if local.len() > LOCAL_PART_MAX {
        return Err(AddressError::LocalPartTooLong);
    }
    if let Some(bad) = local.chars().find(|c| !is_atext(*c) && *c != '.') {
        return Err(AddressError::BadLocalChar(bad));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::BadDots);
    }
    if !check_domain(domain) {
        return Err(AddressError::BadDomain(domain.to_string()));
    }
    Ok(())
}

impl Mailbox {
    pub fn new(display_name: Option<&str>, address: &str) -> Result<Mailbox, AddressError> {
        let address = address.trim();
        check_address(address)?;
        Ok(Mailbox {
            display_name: display_name.map(one_line).filter(|name| !name.is_empty()),
            address: address.to_string(),
        })
    }

    /// Parses `user@example.com`, `<user@example.com>`, `Ann Agent <user@example.com>` or
    /// `"Agent, Ann" <user@example.com>`.
    pub fn parse(text: &str) -> Result<Mailbox, AddressError> {
        let text = text.trim();
        let Some(open) = text.rfind('<') else {
            return Mailbox::new(None, text);
        };
        let rest = text.get(open + 1..).unwrap_or_default();
        let Some(close) = rest.find('>') else {
            return Err(AddressError::UnclosedAngle);
        };
        if !rest.get(close + 1..).unwrap_or_default().trim().is_empty() {
            return Err(AddressError::TextAfterAngle);
        }
        let address = rest.get(..close).unwrap_or_default();
        let name = text.get(..open).unwrap_or_default().trim();
        let name = match name
            .strip_prefix('"')
            .and_then(|inner| inner.strip_suffix('"'))
        {
            Some(quoted) => unescape_quoted(quoted),
            None => name.to_string(),
        };
        Mailbox::new(Some(&name), address)
    }

    /// The domain part, for the Message-ID.
    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .unwrap_or("localhost")
    }

    /// Header tokens: display name words (or encoded words) followed by `<address>`.
    fn header_tokens(&self) -> Vec<String> {
        let mut tokens = match &self.display_name {
            Some(name) => phrase_tokens(name),
            None => Vec::new(),
        };
        if tokens.is_empty() {
            tokens.push(self.address.clone());
        } else {
            tokens.push(format!("<{}>", self.address));
        }
        tokens
    }
}

fn unescape_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// As the agent reads and writes it in the draft: raw UTF-8, quoted only when needed.
impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.display_name {
            None => f.write_str(&self.address),
            Some(name) if name.contains([',', '"', '<', '>', '\\', '@', ';', ':']) => {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "\"{escaped}\" <{}>", self.address)
            }
            Some(name) => write!(f, "{name} <{}>", self.address),
        }
    }
}

/// Splits a `To:` value on commas that are outside quotes and angle brackets.
fn split_address_list(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' | ';' if !in_quotes && !in_angle => {
                parts.push(text.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    #[error(
        "the draft has no recipient: fill in the To: line (e.g. \"To: Ann <ann@example.com>\")"
    )]
    MissingTo,
    #[error("recipient \"{address}\" is not a valid address ({reason}): fix the To: line")]
    InvalidAddress {
        address: String,
        reason: AddressError,
    },
    #[error("the draft has no subject: fill in the Subject: line")]
    EmptySubject,
    #[error("the message body is empty: write the message below the blank line after the headers")]
    EmptyBody,
    #[error("line {line}: unknown header \"{name}\": the draft takes only To: and Subject: lines, then a blank line, then the body")]
    UnknownHeader { line: usize, name: String },
    #[error("line {line}: the {name}: line appears twice: keep one")]
    DuplicateHeader { line: usize, name: &'static str },
    #[error("line {line}: \"{text}\" is not a header line: the draft starts with To: and Subject: lines, then a blank line, then the body")]
    NotAHeader { line: usize, text: String },
    #[error("{0}")]
    Template(#[from] TemplateError),
}

/// A composed follow-up: the envelope recipients are the `To:` addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub to: Vec<Mailbox>,
    pub from: Mailbox,
    pub subject: String,
    pub body: String,
}

impl FollowUp {
    /// Fills in the template for this call. `to` stays empty when the contact's email is
    /// unknown; the agent types it in the draft.
    pub fn from_template(
        template: &FollowUpTemplate,
        details: &CallDetails,
        from: Mailbox,
    ) -> Result<FollowUp, DraftError> {
        let (subject, body) = template.render(details, &from)?;
        let to = match details
            .contact_email
            .as_deref()
            .filter(|e| !e.trim().is_empty())
        {
            Some(email) => {
                let mailbox =
                    Mailbox::new(details.contact_name.as_deref(), email).map_err(|reason| {
                        DraftError::InvalidAddress {
                            address: email.to_string(),
                            reason,
                        }
                    })?;
                vec![mailbox]
            }
            None => Vec::new(),
        };
        Ok(FollowUp {
            to,
            from,
            subject,
            body,
        })
    }

    /// The text the agent edits: `To:` and `Subject:` lines, a blank line, the body (LF).
    pub fn draft_text(&self) -> String {
        let to = self
            .to
            .iter()
            .map(Mailbox::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut draft = format!("To: {to}\nSubject: {}\n\n{}", self.subject, self.body);
        if !draft.ends_with('\n') {
            draft.push('\n');
        }
        draft
    }

    /// Reads the draft back after the editor. Header lines may be continued on lines that
    /// start with whitespace; CRLF line ends are accepted.
    pub fn from_draft(text: &str, from: Mailbox) -> Result<FollowUp, DraftError> {
        let mut to_text: Option<String> = None;
        let mut subject: Option<String> = None;
        let mut last_header: Option<&'static str> = None;
        let mut lines = text.lines().enumerate();
        for (index, line) in lines.by_ref() {
            let number = index + 1;
            if line.trim().is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                let target = match last_header {
                    Some("To") => to_text.as_mut(),
                    Some(_) => subject.as_mut(),
                    None => None,
                };
                match target {
                    Some(value) => {
                        value.push(' ');
                        value.push_str(line.trim());
                        continue;
                    }
                    None => {
                        return Err(DraftError::NotAHeader {
                            line: number,
                            text: line.trim().to_string(),
                        })
                    }
                }
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(DraftError::NotAHeader {
                    line: number,
                    text: line.to_string(),
                });
            };
            let (slot, canonical) = match name.trim().to_ascii_lowercase().as_str() {
                "to" => (&mut to_text, "To"),
                "subject" => (&mut subject, "Subject"),
                _ => {
                    return Err(DraftError::UnknownHeader {
                        line: number,
                        name: name.trim().to_string(),
                    })
                }
            };
            if slot.is_some() {
                return Err(DraftError::DuplicateHeader {
                    line: number,
                    name: canonical,
                });
            }
            *slot = Some(value.trim().to_string());
            last_header = Some(canonical);
        }
        let body_lines: Vec<&str> = lines.map(|(_, line)| line).collect();
        let body = body_lines.join("\n");
        let body = body.trim_end();

        let to_text = to_text.unwrap_or_default();
        let mut to = Vec::new();
        for item in split_address_list(&to_text) {
            let mailbox = Mailbox::parse(item).map_err(|reason| DraftError::InvalidAddress {
                address: item.to_string(),
                reason,
            })?;
            to.push(mailbox);
        }
        if to.is_empty() {
            return Err(DraftError::MissingTo);
        }
        let subject = one_line(&subject.unwrap_or_default());
        if subject.is_empty() {
            return Err(DraftError::EmptySubject);
        }
        if body.trim().is_empty() {
            return Err(DraftError::EmptyBody);
        }
        Ok(FollowUp {
            to,
            from,
            subject,
            body: format!("{body}\n"),
        })
    }

    /// Bare recipient addresses for RCPT TO.
    pub fn recipients(&self) -> Vec<String> {
        self.to.iter().map(|m| m.address.clone()).collect()
    }

    /// `<time.unique@sender-domain>`: `unique` comes from the caller's random source.
    pub fn message_id(&self, date: MailTime, unique: u64) -> String {
        format!(
            "<{:x}.{unique:016x}@{}>",
            date.unix_seconds,
            self.from.domain()
        )
    }

    /// The RFC 5322 message: CRLF line ends, folded headers, quoted-printable UTF-8 body.
    pub fn to_message(&self, date: MailTime, unique: u64) -> Vec<u8> {
        let mut out = String::with_capacity(self.body.len() * 2 + 512);
        push_header(&mut out, "Date", &[date.rfc5322()]);
        push_header(&mut out, "From", &self.from.header_tokens());
        let mut to_tokens = Vec::new();
        for (i, mailbox) in self.to.iter().enumerate() {
            let mut tokens = mailbox.header_tokens();
            if i + 1 < self.to.len() {
                if let Some(last) = tokens.last_mut() {
                    last.push(',');
                }
            }
            to_tokens.extend(tokens);
        }
        push_header(&mut out, "To", &to_tokens);
        push_header(&mut out, "Subject", &text_tokens(&self.subject));
        push_header(&mut out, "Message-ID", &[self.message_id(date, unique)]);
        out.push_str("MIME-Version: 1.0\r\n");
        out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        out.push_str("Content-Transfer-Encoding: quoted-printable\r\n");
        out.push_str("\r\n");
        out.push_str(&quoted_printable(&self.body));
        out.into_bytes()
    }
}

/// Writes `Name: tokens` folding between tokens so lines stay under 78 characters.
fn push_header(out: &mut String, name: &str, tokens: &[String]) {
    out.push_str(name);
    out.push(':');
    let mut line_len = name.len() + 1;
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 && line_len + 1 + token.len() > FOLD_AT {
            out.push_str("\r\n");
            line_len = 0;
        }
        out.push(' ');
        out.push_str(token);
        line_len += 1 + token.len();
    }
    out.push_str("\r\n");
}

fn needs_encoding(text: &str) -> bool {
    text.chars().any(|c| !c.is_ascii() || c.is_ascii_control())
        || text.contains("=?")
        || text.split(' ').any(|word| word.len() > FOLD_AT - 10)
}

/// Unstructured text (Subject): words, or encoded words when the text is not plain ASCII.
fn text_tokens(text: &str) -> Vec<String> {
    let text = one_line(text);
    if needs_encoding(&text) {
        encoded_words(&text)
    } else {
        text.split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A display name: atoms, one quoted string, or encoded words.
fn phrase_tokens(name: &str) -> Vec<String> {
    let name = one_line(name);
    if name.is_empty() {
        return Vec::new();
    }
    if needs_encoding(&name) {
        return encoded_words(&name);
    }
    if name.chars().all(|c| is_atext(c) || c == ' ') {
        return name.split(' ').map(str::to_string).collect();
    }
    vec![format!(
        "\"{}\"",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    )]
}

/// RFC 2047 `=?UTF-8?B?...?=` words of at most 75 characters, split on character boundaries.
fn encoded_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > ENCODED_WORD_MAX_BYTES {
            words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
    }
    words
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b0 = group.first().copied().unwrap_or(0);
        let b1 = group.get(1).copied().unwrap_or(0);
        let b2 = group.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(BASE64_ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if group.len() > 1 { sextet(6) } else { '=' });
        out.push(if group.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// Quoted-printable (RFC 2045 6.7) with CRLF line breaks; every line of the text, including
/// the last, ends with CRLF. Lines starting with '.' stay as they are: dot-stuffing is SMTP's job.
pub fn quoted_printable(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let body = normalized.strip_suffix('\n').unwrap_or(&normalized);
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 8);
    for line in body.split('\n') {
        let bytes = line.as_bytes();
        let mut line_len = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            let at_line_end = i + 1 == bytes.len();
            let literal = match byte {
                b'=' => false,
                b' ' | b'\t' => !at_line_end,
                33..=126 => true,
                _ => false,
            };
            let width = if literal { 1 } else { 3 };
            if line_len + width > QP_LINE_MAX {
                out.push_str("=\r\n");
                line_len = 0;
            }
            if literal {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("={byte:02X}"));
            }
            line_len += width;
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Mailbox {
        Mailbox::parse("Ann Agent <ann@example.com>").expect("valid")
    }

    fn details() -> CallDetails {
        CallDetails {
            contact_name: Some("Bob Buyer".into()),
            contact_email: Some("bob@example.org".into()),
            number: "+41 44 668 18 00".into(),
            direction: CallDirection::Inbound,
            // 2026-11-21 18:09:29 UTC, a Saturday.
            started_at: MailTime::utc(1_795_284_569),
            duration_seconds: 245,
            outcome: "answered".into(),
            queue: Some("support".into()),
            agent_name: None,
        }
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(
            MailTime::utc(1_795_284_569).rfc5322(),
            "Sat, 21 Nov 2026 18:09:29 +0000"
        );
        assert_eq!(MailTime::utc(0).rfc5322(), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            MailTime::utc(951_782_400).rfc5322(),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        let zurich = MailTime {
            unix_seconds: 1_795_284_569,
            utc_offset_minutes: 60,
        };
        assert_eq!(zurich.rfc5322(), "Sat, 21 Nov 2026 19:09:29 +0100");
        assert_eq!(zurich.human(), "2026-11-21 19:09 UTC+01:00");
        let newfoundland = MailTime {
            unix_seconds: 0,
            utc_offset_minutes: -210,
        };
        assert_eq!(newfoundland.rfc5322(), "Wed, 31 Dec 1969 20:30:00 -0330");
        // Extreme inputs must not panic.
        let _ = MailTime::utc(i64::MAX).rfc5322();
        let _ = MailTime::utc(i64::MIN).human();
    }

    #[test]
    fn template_renders_the_call_details() {
        let follow_up =
            FollowUp::from_template(&FollowUpTemplate::default(), &details(), ann()).expect("ok");
        assert_eq!(
            follow_up.subject,
            "Following up on our call of 2026-11-21 18:09 UTC"
        );
        assert_eq!(
            follow_up.body,
            "Hello Bob Buyer,\n\nthank you for your time on the phone. A short summary of our call:\n\n  \
             Call:      incoming, +41 44 668 18 00\n  Started:   2026-11-21 18:09 UTC\n  \
             Duration:  4 min 5 s\n  Outcome:   answered\n  Queue:     support\n\n\
             Best regards,\nAnn Agent\n"
        );
        assert_eq!(follow_up.recipients(), vec!["bob@example.org".to_string()]);
    }

    #[test]
    fn template_errors_name_the_placeholder() {
        let template = FollowUpTemplate {
            subject: "Call {numbr}".into(),
            body: "x".into(),
        };
        let error = template
            .check()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("{numbr}") && error.contains("{number}"),
            "{error}"
        );
        let template = FollowUpTemplate {
            subject: "{{literal}} {number".into(),
            body: "x".into(),
        };
        assert_eq!(
            template.check(),
            Err(TemplateError::Unclosed {
                part: "subject",
                position: 12
            })
        );
        let template = FollowUpTemplate {
            subject: "{{literal}} {queue}".into(),
            body: "}".into(),
        };
        assert_eq!(
            template.check(),
            Err(TemplateError::LoneClosingBrace {
                part: "body",
                position: 0
            })
        );
        let (subject, _) = FollowUpTemplate {
            subject: "{{literal}} {queue}".into(),
            body: "x".into(),
        }
        .render(&details(), &ann())
        .expect("ok");
        assert_eq!(subject, "{literal} support");
    }

    #[test]
    fn draft_round_trips() {
        let follow_up =
            FollowUp::from_template(&FollowUpTemplate::default(), &details(), ann()).expect("ok");
        let draft = follow_up.draft_text();
        assert!(draft.starts_with(
            "To: Bob Buyer <bob@example.org>\nSubject: Following up on our call of 2026-11-21 18:09 UTC\n\nHello Bob Buyer,\n"
        ));
        assert_eq!(FollowUp::from_draft(&draft, ann()), Ok(follow_up));
    }

    #[test]
    fn unknown_contact_email_leaves_to_for_the_agent() {
        let mut call = details();
        call.contact_email = None;
        call.contact_name = None;
        let follow_up =
            FollowUp::from_template(&FollowUpTemplate::default(), &call, ann()).expect("ok");
        let draft = follow_up.draft_text();
        assert!(draft.starts_with("To: \nSubject: "), "{draft}");
        assert!(draft.contains("Hello +41 44 668 18 00,"), "{draft}");
        assert_eq!(
            FollowUp::from_draft(&draft, ann()),
            Err(DraftError::MissingTo)
        );
        let filled = draft.replacen("To: ", "To: bob@example.org", 1);
        let parsed = FollowUp::from_draft(&filled, ann()).expect("valid once filled in");
        assert_eq!(parsed.recipients(), vec!["bob@example.org".to_string()]);
        call.contact_email = Some("not-an-address".into());
        assert!(matches!(
            FollowUp::from_template(&FollowUpTemplate::default(), &call, ann()),
            Err(DraftError::InvalidAddress { .. })
        ));
    }

    #[test]
    fn draft_after_editing() {
        let edited = "to: \"Buyer, Bob\" <bob@example.org>,  zoë@example.net\r\n";
        assert_eq!(
            FollowUp::from_draft(edited, ann()),
            Err(DraftError::InvalidAddress {
                address: "zoë@example.net".into(),
                reason: AddressError::NonAscii
            })
        );
        let edited = "To: \"Buyer, Bob\" <bob@example.org>,\r\n  Zoë <zoe@example.net>\r\n\
                      Subject: Your   ticket\r\n   #42\r\n\r\nHi,\r\n.hidden\r\n\r\n\r\n";
        let follow_up = FollowUp::from_draft(edited, ann()).expect("valid draft");
        assert_eq!(
            follow_up.to,
            vec![
                Mailbox {
                    display_name: Some("Buyer, Bob".into()),
                    address: "bob@example.org".into()
                },
                Mailbox {
                    display_name: Some("Zoë".into()),
                    address: "zoe@example.net".into()
                },
            ]
        );
        assert_eq!(follow_up.subject, "Your ticket #42");
        assert_eq!(follow_up.body, "Hi,\n.hidden\n");
    }

    #[test]
    fn draft_errors_are_specific() {
        let parse = |text: &str| FollowUp::from_draft(text, ann()).err();
        assert_eq!(parse("Subject: hi\n\nbody\n"), Some(DraftError::MissingTo));
        assert_eq!(
            parse("To:  \nSubject: hi\n\nbody\n"),
            Some(DraftError::MissingTo)
        );
        assert_eq!(
            parse("To: bob@\nSubject: hi\n\nbody"),
            Some(DraftError::InvalidAddress {
                address: "bob@".into(),
                reason: AddressError::BadDomain(String::new())
            })
        );
        assert_eq!(
            parse("To: Bob bob@example.org\nSubject: hi\n\nbody"),
            Some(DraftError::InvalidAddress {
                address: "Bob bob@example.org".into(),
                reason: AddressError::BadLocalChar(' ')
            })
        );
        assert_eq!(
            parse("To: <bob@example.org\nSubject: hi\n\nbody"),
            Some(DraftError::InvalidAddress {
                address: "<bob@example.org".into(),
                reason: AddressError::UnclosedAngle
            })
        );
        assert_eq!(
            parse("To: bob@example.org\nSubject: hi\n\n \n\t\n"),
            Some(DraftError::EmptyBody)
        );
        assert_eq!(
            parse("To: bob@example.org\nSubject: hi\n"),
            Some(DraftError::EmptyBody)
        );
        assert_eq!(
            parse("To: bob@example.org\nSubject:\n\nbody"),
            Some(DraftError::EmptySubject)
        );
        assert_eq!(
            parse("To: bob@example.org\nBcc: eve@example.org\n\nbody"),
            Some(DraftError::UnknownHeader {
                line: 2,
                name: "Bcc".into()
            })
        );
        assert_eq!(
            parse("To: bob@example.org\nSubject: a\nhello there\n"),
            Some(DraftError::NotAHeader {
                line: 3,
                text: "hello there".into()
            })
        );
        assert_eq!(
            parse("To: bob@example.org\nTo: x@example.org\n\nb"),
            Some(DraftError::DuplicateHeader {
                line: 2,
                name: "To"
            })
        );
        let message = parse("Subject: hi\n\nbody\n").map(|e| e.to_string());
        assert!(message.is_some_and(|m| m.contains("To:")));
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("first.last+tag@sub.example.com").is_ok());
        assert!(check_address("user@localhost").is_ok());
        assert_eq!(
            check_address("a..b@example.com"),
            Err(AddressError::BadDots)
        );
        assert_eq!(check_address("a@b@c"), Err(AddressError::SeveralAt));
        assert_eq!(
            check_address("@example.com"),
            Err(AddressError::EmptyLocalPart)
        );
        assert_eq!(
            check_address("a@-example.com"),
            Err(AddressError::BadDomain("-example.com".into()))
        );
        assert_eq!(
            check_address(&format!("{}@example.com", "x".repeat(65))),
            Err(AddressError::LocalPartTooLong)
        );
        assert_eq!(
            Mailbox::parse("Ann <ann@example.com> x"),
            Err(AddressError::TextAfterAngle)
        );
    }

    #[test]
    fn ascii_message_exact_bytes() {
        let follow_up = FollowUp {
            to: vec![Mailbox::parse("Bob Buyer <bob@example.org>").expect("valid")],
            from: ann(),
            subject: "Your ticket #42".into(),
            body: "Hi Bob,\n\n.net is fine; 1+1=2.\nBye \n".into(),
        };
        let message = follow_up.to_message(MailTime::utc(1_795_284_569), 0xabc);
        assert_eq!(
            String::from_utf8_lossy(&message),
            "Date: Sat, 21 Nov 2026 18:09:29 +0000\r\n\
             From: Ann Agent <ann@example.com>\r\n\
             To: Bob Buyer <bob@example.org>\r\n\
             Subject: Your ticket #42\r\n\
             Message-ID: <6b01de59.0000000000000abc@example.com>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             \r\n\
             Hi Bob,\r\n\
             \r\n\
             .net is fine; 1+1=3D2.\r\n\
             Bye=20\r\n"
        );
    }

    #[test]
    fn utf8_message_exact_bytes() {
        let follow_up = FollowUp {
            to: vec![
                Mailbox::parse("Zoë Ørsted <zoe@example.net>").expect("valid"),
                Mailbox::parse("\"Buyer, Bob\" <bob@example.org>").expect("valid"),
                Mailbox::parse("carol@example.org").expect("valid"),
            ],
            from: Mailbox::parse("Jürgen <j@example.com>").expect("valid"),
            subject: "Rückruf: Ihre Bestellung – Übersicht".into(),
            body: "Grüße\r\naus Zürich".into(),
        };
        let message = follow_up.to_message(MailTime::utc(1_795_284_569), 1);
        assert_eq!(
            String::from_utf8_lossy(&message),
            "Date: Sat, 21 Nov 2026 18:09:29 +0000\r\n\
             From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>\r\n\
             To: =?UTF-8?B?Wm/DqyDDmHJzdGVk?= <zoe@example.net>, \"Buyer, Bob\"\r\n \
             <bob@example.org>, carol@example.org\r\n\
             Subject: =?UTF-8?B?UsO8Y2tydWY6IElocmUgQmVzdGVsbHVuZyDigJMgw5xiZXJzaWNodA==?=\r\n\
             Message-ID: <6b01de59.0000000000000001@example.com>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             \r\n\
             Gr=C3=BC=C3=9Fe\r\n\
             aus Z=C3=BCrich\r\n"
        );
    }

    #[test]
    fn long_headers_fold_and_long_words_split() {
        let subject = "word ".repeat(30);
        let mut out = String::new();
        push_header(&mut out, "Subject", &text_tokens(&subject));
        for line in out.split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line:?}");
        }
        let unfolded = out.replace("\r\n ", " ");
        assert_eq!(unfolded, format!("Subject: {}\r\n", subject.trim()));

        let long_utf8 = "ä".repeat(60);
        let words = encoded_words(&long_utf8);
        assert_eq!(words.len(), 3, "120 bytes in 45-byte words");
        assert!(words.iter().all(|w| w.len() <= 75));
        // A header-injection attempt stays on one (encoded) line.
        let tokens = text_tokens("hi\r\nBcc: eve@example.org");
        assert_eq!(tokens.join(" "), "hi Bcc: eve@example.org");
    }

    #[test]
    fn quoted_printable_wraps_at_76() {
        let line = "é".repeat(40);
        let encoded = quoted_printable(&line);
        let lines: Vec<&str> = encoded.split("\r\n").collect();
        // Four lines, each ended by CRLF, so split() yields a fifth empty piece.
        assert_eq!(lines.len(), 5, "{encoded}");
        assert_eq!(lines.last(), Some(&""));
        assert!(lines.iter().all(|l| l.len() <= 76), "{encoded}");
        // 75 = 25 triplets; the soft break never splits one.
        assert_eq!(lines.first().map(|l| l.len()), Some(76));
        let unwrapped = encoded.replace("=\r\n", "");
        assert_eq!(unwrapped, format!("{}\r\n", "=C3=A9".repeat(40)));
        assert_eq!(quoted_printable("tab\t\nend\t"), "tab=09\r\nend=09\r\n");
        assert_eq!(quoted_printable(""), "\r\n");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
