//! Follow-up email for the dashboard's driver: the draft from the `[email]` template and the
//! store (the contact, the call), the `$EDITOR` round trip on a private file, and reading the
//! edited draft back. Sending is [`crate::net::mail::send_follow_up`], on a worker thread.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::mail::compose::{CallDetails, CallDirection as MailDirection, FollowUp, MailTime};
use crate::mail::settings::EmailSettings;
use crate::store::{CallDirection, CallRecord, Store};
use crate::tui::app::{EmailDraft, EmailRequest};
use crate::tui::desk::outcome_label;

/// Recent calls searched for a contact's last call, when a follow-up names only the contact.
const LAST_CALL_SEARCH: usize = 200;

/// The draft text for `request`: the one it carries (an email kept for later), or the
/// template filled in for its contact and call.
pub fn draft_for(
    settings: &EmailSettings,
    store: Option<&Store>,
    request: &EmailRequest,
    now_s: i64,
    utc_offset_s: i32,
) -> Result<String, String> {
    if let Some(draft) = &request.draft {
        return Ok(draft.clone());
    }
    let from = settings.from_mailbox().map_err(|e| e.to_string())?;
    let contact = match (store, request.contact) {
        (Some(store), Some(id)) => store.contact(id).map_err(|e| e.to_string())?,
        _ => None,
    };
    let call = store.and_then(|store| last_call(store, request));
    let offset_minutes = i16::try_from(utc_offset_s / 60).unwrap_or(0);
    let time = |unix_seconds| MailTime {
        unix_seconds,
        utc_offset_minutes: offset_minutes,
    };
    let details = CallDetails {
        contact_name: contact
            .as_ref()
            .map(|c| c.name.clone())
            .or_else(|| call.as_ref().and_then(|c| c.contact_name.clone())),
        contact_email: contact
            .as_ref()
            .map(|c| c.email.clone())
            .filter(|e| !e.trim().is_empty()),
        number: call
            .as_ref()
            .map(|c| c.remote_number.clone())
            .or_else(|| request.number.clone())
            .unwrap_or_default(),
        direction: match call.as_ref().map(|c| c.direction) {
            Some(CallDirection::Inbound) => MailDirection::Inbound,
            _ => MailDirection::Outbound,
        },
        started_at: time(call.as_ref().map_or(now_s, |c| c.started)),
        duration_seconds: call
            .as_ref()
            .and_then(|c| c.duration)
            .and_then(|d| u64::try_from(d).ok())
            .unwrap_or(0),
        outcome: call
            .as_ref()
            .map_or("", |c| outcome_label(c.outcome))
            .to_owned(),
        queue: call.as_ref().and_then(|c| c.queue.clone()),
        agent_name: None,
    };
    FollowUp::from_template(&settings.template, &details, from)
        .map(|follow_up| follow_up.draft_text())
        .map_err(|e| e.to_string())
}

/// The call a follow-up is about: the one named, else the contact's latest.
fn last_call(store: &Store, request: &EmailRequest) -> Option<CallRecord> {
    if let Some(id) = request.call {
        return store.call(id).ok().flatten();
    }
    let contact = request.contact?;
    store
        .recent_calls(LAST_CALL_SEARCH, false)
        .ok()?
        .into_iter()
        .find(|c| c.contact_id == Some(contact))
}

/// Reads an edited draft: its recipients and subject, and why it cannot be sent if it cannot.
pub fn read_draft(settings: &EmailSettings, text: String, request: &EmailRequest) -> EmailDraft {
    let header = |name: &str| {
        text.lines()
            .take_while(|l| !l.trim().is_empty())
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(key, _)| key.trim().eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let (to, subject) = (header("To"), header("Subject"));
    let problem = settings
        .from_mailbox()
        .map_err(|e| e.to_string())
        .and_then(|from| FollowUp::from_draft(&text, from).map_err(|e| e.to_string()))
        .err();
    EmailDraft {
        text,
        to,
        subject,
        problem,
        contact: request.contact,
        activity: request.activity,
    }
}

/// `$VISUAL`, else `$EDITOR`, else Debian's `editor`, else `vi`; split on spaces so
/// `EDITOR="code --wait"` works.
pub fn editor_command() -> Vec<String> {
    let configured = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty());
    let text = configured.unwrap_or_else(|| {
        if Path::new("/usr/bin/editor").exists() {
            "editor".to_owned()
        } else {
            "vi".to_owned()
        }
    });
    text.split_whitespace().map(str::to_owned).collect()
}

/// Where drafts are written: beside the store when there is one (the user's own data
/// directory), else the temporary directory.
pub fn draft_path(store_path: Option<&str>, now_s: i64) -> PathBuf {
    let dir = store_path
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!(
        "ringside-follow-up-{now_s}-{}.txt",
        std::process::id()
    ))
}

/// Writes `text` to `path` (readable by the user only), runs the editor on it and reads the
/// result back; the file is removed afterwards. The caller has handed the terminal over.
pub fn edit(path: &Path, text: &str) -> Result<String, String> {
    write_private(path, text)
        .map_err(|e| format!("cannot write the draft {}: {e}", path.display()))?;
    let command = editor_command();
    let result = match command.split_first() {
        Some((program, args)) => Command::new(program).args(args).arg(path).status(),
        None => return Err("no editor: set $EDITOR".to_owned()),
    };
    let outcome = match result {
        Ok(status) if status.success() => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the draft back from {}: {e}", path.display())),
        Ok(status) => Err(format!(
            "the editor ({}) exited with {status}: the draft was not used",
            command.join(" ")
        )),
        Err(e) => Err(format!(
            "cannot start the editor {:?}: {e}; set $EDITOR to your editor",
            command.join(" ")
        )),
    };
    let _ = std::fs::remove_file(path);
    outcome
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::settings::{Security, SmtpSettings};
    use crate::store::{CallOutcome, CallStart, NewContact};

    fn settings() -> EmailSettings {
        EmailSettings::smtp(SmtpSettings::new(
            "127.0.0.1",
            Security::Plain,
            "Ann Agent <ann@example.com>",
        ))
    }

    #[test]
    fn a_draft_names_the_contact_and_the_call_it_follows() {
        let mut store = Store::open_in_memory().expect("store");
        let chen = store
            .add_contact(
                &NewContact::named("Chen Wei")
                    .with_phone("work", "+3225550142")
                    .with_email("chen@example.org"),
            )
            .expect("contact");
        let row = store
            .start_call(&CallStart {
                direction: CallDirection::Inbound,
                local_number: "101".into(),
                remote_number: "+3225550142".into(),
                contact_id: None,
                queue: Some("support".into()),
                started: 1_795_255_200,
                activity_id: None,
            })
            .expect("call");
        store
            .finish_call(
                row,
                &crate::store::CallFinish {
                    outcome: CallOutcome::Answered,
                    answered: Some(1_795_255_205),
                    ended: 1_795_255_397,
                    recording_path: None,
                },
            )
            .expect("finish");
        // From the contact alone: its latest call is found.
        let request = EmailRequest {
            contact: Some(chen),
            name: "Chen Wei".into(),
            ..EmailRequest::default()
        };
        let text =
            draft_for(&settings(), Some(&store), &request, 1_795_260_000, 3600).expect("draft");
        assert!(
            text.starts_with("To: Chen Wei <chen@example.org>\n"),
            "{text}"
        );
        assert!(text.contains("+3225550142"), "{text}");
        assert!(text.contains("3 min 12 s"), "the talk time: {text}");
        assert!(
            text.contains("2026-11-21 11:00 UTC+01:00"),
            "local start: {text}"
        );
        assert!(text.contains("support"), "{text}");
        let draft = read_draft(&settings(), text, &request);
        assert_eq!(draft.to, "Chen Wei <chen@example.org>");
        assert_eq!(draft.problem, None);
        assert_eq!(draft.contact, Some(chen));
    }

    #[test]
    fn a_draft_without_a_recipient_says_what_to_fill_in() {
        let request = EmailRequest {
            number: Some("+3225550199".into()),
            ..EmailRequest::default()
        };
        let text = draft_for(&settings(), None, &request, 1_795_260_000, 0).expect("draft");
        assert!(text.starts_with("To: \n"), "{text}");
        let draft = read_draft(&settings(), text, &request);
        assert!(
            draft.problem.as_deref().is_some_and(|p| p.contains("To:")),
            "{draft:?}"
        );
        // A kept draft is used as it is.
        let kept = EmailRequest {
            draft: Some("To: a@b.example\nSubject: Hi\n\nBody\n".into()),
            ..EmailRequest::default()
        };
        assert_eq!(
            draft_for(&settings(), None, &kept, 0, 0).as_deref(),
            Ok("To: a@b.example\nSubject: Hi\n\nBody\n")
        );
    }

    #[test]
    fn the_editor_round_trip_reads_back_the_edit_and_removes_the_file() {
        let dir = std::env::temp_dir().join(format!("ringside-edit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("draft.txt");
        // `sed -i` as the editor: it changes the file in place, as a person would.
        std::env::set_var("VISUAL", "sed -i s/Hello/Bonjour/");
        let edited = edit(&path, "To: a@b.example\nSubject: x\n\nHello\n");
        std::env::remove_var("VISUAL");
        assert_eq!(
            edited.as_deref(),
            Ok("To: a@b.example\nSubject: x\n\nBonjour\n")
        );
        assert!(!path.exists(), "the draft file is removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
