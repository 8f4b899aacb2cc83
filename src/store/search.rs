//! Search-as-you-type over contacts (name, company, email, phone digits) with nucleo-matcher.
//!
//! Ranking, strongest first:
//! 1. every query word starts a word of the name ("jo sm" → "John Smith"); whole words and the
//!    first name word rank higher;
//! 2. every query word starts a word of the name, company or the email's local part;
//! 3. fuzzy matches (nucleo: letters in order, each query word inside one of those fields), by
//!    nucleo's score.
//!
//! Ties go to the name's alphabetical order. A query of digits (spaces, `+`, `-`, `(`, `)`
//! allowed) searches phone numbers instead: numbers starting with the digits first, then numbers
//! containing them; for numbers stored in E.164 a leading trunk `0` may be left out.
//!
//! Speed over 100k contacts comes from not scoring what cannot reach the top: tiers 1 and 2
//! come from a sorted word index without touching the contacts, and the fuzzy scan (the slow
//! part) runs only when they yield fewer hits than asked for. That scan skips fields lacking a
//! query letter (a bitmask test), and the next keystroke rescans only its matches.

use std::collections::HashMap;

use nucleo_matcher::pattern::{Atom, AtomKind, CaseMatching, Normalization};
use nucleo_matcher::{Config, Matcher, Utf32String};

use super::contacts::{Contact, ContactId};
use super::phone::is_e164;
use super::{Result, Store};

/// Scores of a higher tier always beat a lower tier: nucleo gives well under this per query.
const TIER: u32 = 1 << 20;
/// Per query word equal to a whole word of the name.
const WHOLE_WORD_BONUS: u32 = 64;
/// When a query word starts the name's first word.
const FIRST_WORD_BONUS: u32 = 16;
/// Words beyond this in a query are ignored (they would only narrow an already tiny list).
const MAX_QUERY_WORDS: usize = 8;

const NAME: u8 = 0;
const COMPANY: u8 = 1;
const EMAIL: u8 = 2;

/// One contact's searchable text.
struct Entry {
    id: ContactId,
    /// Name, company and the email before its @, as written, one after the other (nucleo folds case and accents
    /// itself); `ends` are the char offsets where each field ends.
    text: Utf32String,
    ends: [u32; 3],
    /// Which of a-z and 0-9 each field holds: a field missing a query letter cannot match it.
    masks: [u64; 3],
    /// The folded name, for alphabetical order.
    sort_key: Box<str>,
}

/// A word of some contact, its text in [`ContactIndex::word_text`].
#[derive(Debug, Clone, Copy)]
struct WordRef {
    /// The first (up to) 8 bytes of the word, big-endian: most comparisons end here.
    key: u64,
    slot: u32,
    start: u32,
    len: u16,
    field: u8,
    /// The first word of the name.
    first: bool,
}

/// A phone number's digits inside the phone blob.
#[derive(Debug, Clone, Copy)]
struct PhoneRef {
    /// [`digit_grams`] of the digits: a query's grams must all be here for it to match.
    grams: u128,
    start: u32,
    len: u32,
    slot: u32,
    /// E.164 numbers lost their trunk 0, so a national query may drop its own.
    international: bool,
}

/// The matches of the last fuzzy scan, so the next keystroke narrows them.
struct LastScan {
    query: String,
    slots: Vec<u32>,
    /// The scan covered only contacts with a word starting like the query (see
    /// [`ContactIndex::score_text`]): its matches narrow only a restricted scan.
    restricted: bool,
}

/// Per-slot scratch for merging hits, valid where `seen == generation`.
#[derive(Default)]
struct Scratch {
    generation: u32,
    seen: Vec<u32>,
    /// Bit i: query word i starts some word / some name word / is a whole name word.
    any: Vec<u8>,
    name: Vec<u8>,
    whole: Vec<u8>,
    first: Vec<bool>,
    best: Vec<u32>,
}

impl Scratch {
    fn resize(&mut self, slots: usize) {
        self.seen.resize(slots, 0);
        self.any.resize(slots, 0);
        self.name.resize(slots, 0);
        self.whole.resize(slots, 0);
        self.first.resize(slots, false);
        self.best.resize(slots, 0);
    }

    fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        self.generation
    }

    /// Marks `slot` as touched in this generation; true the first time.
    fn touch(&mut self, slot: usize) -> bool {
        let generation = self.generation;
        match self.seen.get_mut(slot) {
            Some(seen) if *seen != generation => {
                *seen = generation;
                if let Some(v) = self.any.get_mut(slot) {
                    *v = 0;
                }
                if let Some(v) = self.name.get_mut(slot) {
                    *v = 0;
                }
                if let Some(v) = self.whole.get_mut(slot) {
                    *v = 0;
                }
                if let Some(v) = self.first.get_mut(slot) {
                    *v = false;
                }
                if let Some(v) = self.best.get_mut(slot) {
                    *v = 0;
                }
                true
            }
            _ => false,
        }
    }
}

/// An in-memory search index over every contact. Build it once from the store and keep it in
/// step with [`ContactIndex::upsert`] / [`ContactIndex::remove`] (each a few milliseconds at
/// 100k contacts), or rebuild after an import.
pub struct ContactIndex {
    /// Entries by slot; edits append a new slot and empty the old one.
    slots: Vec<Option<Entry>>,
    slot_of: HashMap<ContactId, u32>,
    /// Live slots in name order; `rank[slot]` is a slot's position in it.
    order: Vec<u32>,
    rank: Vec<u32>,
    /// Every word of every contact, sorted by text: a prefix is a contiguous range.
    words: Vec<WordRef>,
    word_text: String,
    /// Every number's digits back to back (one allocation); each [`PhoneRef`] has its range.
    /// Numbers of emptied slots stay, and their hits are dropped.
    phone_blob: String,
    phones: Vec<PhoneRef>,
    matcher: Matcher,
    last: Option<LastScan>,
    scratch: Scratch,
}

impl std::fmt::Debug for ContactIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactIndex")
            .field("contacts", &self.order.len())
            .field("words", &self.words.len())
            .field("phones", &self.phones.len())
            .finish_non_exhaustive()
    }
}

impl ContactIndex {
    pub fn build(store: &Store) -> Result<Self> {
        Ok(Self::from_contacts(&store.contacts()?))
    }

    pub fn from_contacts(contacts: &[Contact]) -> Self {
        let mut index = ContactIndex {
            slots: Vec::with_capacity(contacts.len()),
            slot_of: HashMap::with_capacity(contacts.len()),
            order: Vec::new(),
            rank: Vec::new(),
            words: Vec::new(),
            word_text: String::new(),
            phone_blob: String::new(),
            phones: Vec::new(),
            matcher: Matcher::new(Config::DEFAULT),
            last: None,
            scratch: Scratch::default(),
        };
        let mut seen_ids = std::collections::HashSet::with_capacity(contacts.len());
        for contact in contacts.iter().rev() {
            // The last copy of a repeated id wins, as it would with upsert.
            if seen_ids.insert(contact.id) {
                index.append(contact);
            }
        }
        index.sort_words();
        let mut order: Vec<u32> = index.slot_of.values().copied().collect();
        order.sort_by(|&a, &b| index.compare_slots(a, b));
        index.order = order;
        index.renumber();
        index
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds a contact, or replaces it after an edit.
    pub fn upsert(&mut self, contact: &Contact) {
        self.remove(contact.id);
        let words_before = self.words.len();
        let slot = self.append(contact);
        let mut new_words = self.words.split_off(words_before);
        let text = &self.word_text;
        new_words.sort_by(|a, b| compare_words(text, a, b));
        for word in new_words {
            let at = self
                .words
                .partition_point(|w| compare_words(text, w, &word).is_lt());
            self.words.insert(at, word);
        }
        let at = self
            .order
            .partition_point(|&s| self.compare_slots(s, slot).is_lt());
        self.order.insert(at, slot);
        self.renumber();
    }

    pub fn remove(&mut self, id: ContactId) {
        let Some(slot) = self.slot_of.remove(&id) else {
            return;
        };
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = None;
        }
        self.words.retain(|w| w.slot != slot);
        self.order.retain(|&s| s != slot);
        // The phone blob keeps the digits: hits on empty slots are dropped.
        self.renumber();
    }

    /// Adds a contact's entry, words and phones in a new slot (words left unsorted).
    fn append(&mut self, contact: &Contact) -> u32 {
        let Ok(slot) = u32::try_from(self.slots.len()) else {
            return u32::MAX;
        };
        // Only the email's local part: the domain ("gmail.com") is shared by too many contacts
        // to tell them apart, and its letters would make most fuzzy queries match everyone.
        let local_part = contact.email.split('@').next().unwrap_or_default();
        let searched = [contact.name.as_str(), contact.company.as_str(), local_part];
        let folded = searched.map(fold);
        for (field, text) in [NAME, COMPANY, EMAIL].into_iter().zip(&folded) {
            let mut first = field == NAME;
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let (Ok(start), Ok(len)) = (
                    u32::try_from(self.word_text.len()),
                    u16::try_from(word.len()),
                ) else {
                    continue;
                };
                self.word_text.push_str(word);
                self.words.push(WordRef {
                    key: key_of(word),
                    slot,
                    start,
                    len,
                    field,
                    first,
                });
                first = false;
            }
        }
        for phone in &contact.phones {
            let digits: String = phone.number.chars().filter(char::is_ascii_digit).collect();
            let (Ok(start), Ok(len)) = (
                u32::try_from(self.phone_blob.len()),
                u32::try_from(digits.len()),
            ) else {
                continue;
            };
            if digits.is_empty() {
                continue;
            }
            self.phone_blob.push_str(&digits);
            self.phones.push(PhoneRef {
                grams: digit_grams(&digits),
                start,
                len,
                slot,
                international: is_e164(&phone.number),
            });
        }
        let (text, ends) = joined_fields(searched);
        let [name, company, email] = folded;
        self.slots.push(Some(Entry {
            id: contact.id,
            text,
            ends,
            masks: [mask(&name), mask(&company), mask(&email)],
            sort_key: name.into_boxed_str(),
        }));
        self.slot_of.insert(contact.id, slot);
        slot
    }

    fn sort_words(&mut self) {
        let text = &self.word_text;
        self.words
            .sort_unstable_by(|a, b| compare_words(text, a, b));
    }

    fn compare_slots(&self, a: u32, b: u32) -> std::cmp::Ordering {
        let key = |slot: u32| {
            self.slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .map(|e| (e.sort_key.as_ref(), e.id))
        };
        key(a).cmp(&key(b))
    }

    /// After any change: ranks from `order`, scratch sized to the slots, scan cache dropped.
    fn renumber(&mut self) {
        // Emptied slots must have no rank, or a stale one would name another contact.
        self.rank.clear();
        self.rank.resize(self.slots.len(), u32::MAX);
        for (rank, &slot) in self.order.iter().enumerate() {
            if let (Some(r), Ok(rank)) = (self.rank.get_mut(slot as usize), u32::try_from(rank)) {
                *r = rank;
            }
        }
        self.scratch.resize(self.slots.len());
        self.last = None;
    }

    /// The best `limit` contacts for `query`, best first, with their scores. An empty query
    /// lists contacts by name.
    pub fn search(&mut self, query: &str, limit: usize) -> Vec<(ContactId, u32)> {
        let query = query.trim();
        if limit == 0 {
            return Vec::new();
        }
        if query.is_empty() {
            self.last = None;
            return self
                .order
                .iter()
                .take(limit)
                .filter_map(|&slot| self.entry(slot).map(|e| (e.id, 0)))
                .collect();
        }
        // (score, rank) pairs: the rank breaks ties alphabetically and leads back to the slot.
        let mut scored = match digits_query(query) {
            Some(digits) => {
                self.last = None;
                self.score_digits(&digits)
            }
            None => self.score_text(query, limit),
        };
        let best_first = |a: &(u32, u32), b: &(u32, u32)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit - 1, best_first);
            scored.truncate(limit);
        }
        scored.sort_unstable_by(best_first);
        scored
            .into_iter()
            .filter_map(|(score, rank)| {
                let slot = *self.order.get(rank as usize)?;
                self.entry(slot).map(|e| (e.id, score))
            })
            .collect()
    }

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn rank_of(&self, slot: u32) -> Option<u32> {
        self.rank
            .get(slot as usize)
            .copied()
            .filter(|&r| r != u32::MAX)
    }

    fn score_text(&mut self, query: &str, limit: usize) -> Vec<(u32, u32)> {
        let words: Vec<&str> = query.split_whitespace().take(MAX_QUERY_WORDS).collect();
        // Word prefixes are tested part by part: "o'brien" is "o" and "brien", like the names.
        let parts: Vec<String> = words
            .iter()
            .flat_map(|w| {
                fold(w)
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|part| !part.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .take(MAX_QUERY_WORDS)
            .collect();

        // Leaves each prefix hit's tier score in `scratch.best` for the scan below.
        let prefix_hits = self.prefix_hits(&parts);
        if prefix_hits.len() >= limit {
            // The fuzzy tier cannot reach the top `limit`: skip it, and drop the scan cache,
            // which no longer describes the previous query.
            self.last = None;
            return prefix_hits;
        }

        let atoms: Vec<(Atom, u64)> = words
            .iter()
            .map(|word| {
                let atom = Atom::new(
                    word,
                    CaseMatching::Ignore,
                    Normalization::Smart,
                    AtomKind::Fuzzy,
                    false,
                );
                (atom, mask(&fold(word)))
            })
            .collect();
        // A longer version of the last query can only match a subset of its matches.
        let narrowing = self
            .last
            .take()
            .filter(|last| query.starts_with(&last.query));
        // Typing a name, the first letter starts a word, and nucleo ranks such matches far
        // above ones from the middle of a word: so the scan first covers only contacts with a
        // word starting with that letter (a fifth of them, say), and goes over everyone only
        // when that yields fewer than `limit` hits.
        let (candidates, restricted) = match narrowing {
            Some(last) => (last.slots, last.restricted),
            None => match parts.first().and_then(|p| p.chars().next()) {
                Some(first) => (self.word_start_slots(first), true),
                None => (self.all_slots(), false),
            },
        };
        let (mut matches, mut scored) = self.fuzzy_scan(candidates, &atoms);
        let mut restricted = restricted;
        if restricted && scored.len() < limit {
            (matches, scored) = self.fuzzy_scan(self.all_slots(), &atoms);
            restricted = false;
        }
        self.last = Some(LastScan {
            query: query.to_string(),
            slots: matches,
            restricted,
        });
        scored
    }

    /// Every slot, in slot order (memory order: the full scan is bound by cache misses).
    fn all_slots(&self) -> Vec<u32> {
        (0..u32::try_from(self.slots.len()).unwrap_or(u32::MAX)).collect()
    }

    /// Slots with a word (name, company or email) starting with `first`, in slot order.
    fn word_start_slots(&self, first: char) -> Vec<u32> {
        let mut prefix = [0u8; 4];
        let range = self.prefix_range(first.encode_utf8(&mut prefix));
        let mut slots: Vec<u32> = self
            .words
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|w| w.slot)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// Fuzzy-scores `candidates` (prefix hits keep their tier score): the matching slots and
    /// their (score, rank) pairs.
    fn fuzzy_scan(
        &mut self,
        candidates: Vec<u32>,
        atoms: &[(Atom, u64)],
    ) -> (Vec<u32>, Vec<(u32, u32)>) {
        let generation = self.scratch.generation;
        let mut scored = Vec::new();
        let mut matches = Vec::new();
        for slot in candidates {
            let (Some(entry), Some(rank)) = (
                self.slots.get(slot as usize).and_then(Option::as_ref),
                self.rank_of(slot),
            ) else {
                continue;
            };
            let s = slot as usize;
            let tier = match (self.scratch.seen.get(s), self.scratch.best.get(s)) {
                (Some(&seen), Some(&best)) if seen == generation => best,
                _ => 0,
            };
            let score = if tier > 0 {
                Some(tier)
            } else {
                fuzzy_score(entry, atoms, &mut self.matcher)
            };
            if let Some(score) = score {
                matches.push(slot);
                scored.push((score, rank));
            }
        }
        (matches, scored)
    }

    /// Contacts whose words start with every query part (tiers 1 and 2), from the word index
    /// alone. Each hit's score is also left in `scratch.best`.
    fn prefix_hits(&mut self, parts: &[String]) -> Vec<(u32, u32)> {
        self.scratch.next_generation();
        if parts.is_empty() {
            return Vec::new();
        }
        let mut touched: Vec<u32> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let bit = 1u8 << i;
            let range = self.prefix_range(part);
            for word in self.words.get(range).unwrap_or_default() {
                let slot = word.slot as usize;
                if i == 0 {
                    if self.scratch.touch(slot) {
                        touched.push(word.slot);
                    }
                } else if self.scratch.seen.get(slot) != Some(&self.scratch.generation) {
                    // Missed an earlier part: cannot be a hit.
                    continue;
                }
                if let Some(v) = self.scratch.any.get_mut(slot) {
                    *v |= bit;
                }
                if word.field == NAME {
                    if let Some(v) = self.scratch.name.get_mut(slot) {
                        *v |= bit;
                    }
                    if usize::from(word.len) == part.len() {
                        if let Some(v) = self.scratch.whole.get_mut(slot) {
                            *v |= bit;
                        }
                    }
                    if word.first {
                        if let Some(v) = self.scratch.first.get_mut(slot) {
                            *v = true;
                        }
                    }
                }
            }
        }
        let all = u8::try_from((1u16 << parts.len()) - 1).unwrap_or(u8::MAX);
        let mut hits = Vec::new();
        for slot in touched {
            let s = slot as usize;
            let (Some(&any), Some(&name), Some(&whole), Some(&first)) = (
                self.scratch.any.get(s),
                self.scratch.name.get(s),
                self.scratch.whole.get(s),
                self.scratch.first.get(s),
            ) else {
                continue;
            };
            if any != all {
                continue;
            }
            let score = if name == all {
                2 * TIER
                    + WHOLE_WORD_BONUS * whole.count_ones()
                    + if first { FIRST_WORD_BONUS } else { 0 }
            } else {
                TIER
            };
            if let Some(best) = self.scratch.best.get_mut(s) {
                *best = score;
            }
            if let Some(rank) = self.rank_of(slot) {
                hits.push((score, rank));
            }
        }
        hits
    }

    fn prefix_range(&self, prefix: &str) -> std::ops::Range<usize> {
        let text = &self.word_text;
        let key = key_of(prefix);
        let start = self
            .words
            .partition_point(|w| (w.key, word_text(text, w)) < (key, prefix));
        let rest = self.words.get(start..).unwrap_or_default();
        let len = rest.partition_point(|w| word_text(text, w).starts_with(prefix));
        start..start + len
    }

    fn score_digits(&mut self, digits: &str) -> Vec<(u32, u32)> {
        let significant = digits.trim_start_matches('0');
        let use_significant = significant.len() >= 3 && significant.len() < digits.len();
        let (wanted, wanted_significant) = (digit_grams(digits), digit_grams(significant));
        self.scratch.next_generation();
        let mut touched = Vec::new();
        for phone in &self.phones {
            let whole = phone.grams & wanted == wanted;
            let national = use_significant
                && phone.international
                && phone.grams & wanted_significant == wanted_significant;
            if !whole && !national {
                continue;
            }
            let start = phone.start as usize;
            let Some(number) = self.phone_blob.get(start..start + phone.len as usize) else {
                continue;
            };
            let tier = if number.starts_with(digits) {
                2 * TIER
            } else if number.contains(digits) || (national && number.contains(significant)) {
                TIER
            } else {
                continue;
            };
            // Shorter numbers first: the typed digits are more of them.
            let score = tier + 64u32.saturating_sub(phone.len);
            let slot = phone.slot as usize;
            if self.scratch.touch(slot) {
                touched.push(phone.slot);
            }
            if let Some(best) = self.scratch.best.get_mut(slot) {
                *best = (*best).max(score);
            }
        }
        touched
            .into_iter()
            .filter_map(|slot| {
                let rank = self.rank_of(slot)?;
                self.scratch
                    .best
                    .get(slot as usize)
                    .map(|&score| (score, rank))
            })
            .collect()
    }
}

/// The fields one after the other, as nucleo sees text (one char per grapheme), and the char
/// offset where each ends. Fields are converted one by one so no grapheme spans two.
fn joined_fields(fields: [&str; 3]) -> (Utf32String, [u32; 3]) {
    let mut ends = [0u32; 3];
    if fields.iter().all(|f| f.is_ascii()) {
        let mut text = String::new();
        for (end, field) in ends.iter_mut().zip(fields) {
            text.push_str(field);
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        return (Utf32String::Ascii(text.into_boxed_str()), ends);
    }
    let mut chars: Vec<char> = Vec::new();
    for (end, field) in ends.iter_mut().zip(fields) {
        chars.extend(nucleo_matcher::chars::graphemes(field));
        *end = u32::try_from(chars.len()).unwrap_or(u32::MAX);
    }
    (Utf32String::Unicode(chars.into_boxed_slice()), ends)
}

fn word_text<'a>(text: &'a str, word: &WordRef) -> &'a str {
    let start = word.start as usize;
    text.get(start..start + usize::from(word.len))
        .unwrap_or_default()
}

fn compare_words(text: &str, a: &WordRef, b: &WordRef) -> std::cmp::Ordering {
    a.key
        .cmp(&b.key)
        .then_with(|| word_text(text, a).cmp(word_text(text, b)))
        .then(a.slot.cmp(&b.slot))
}

/// The first 8 bytes, big-endian and zero-padded: orders like the text itself.
fn key_of(word: &str) -> u64 {
    let mut bytes = [0u8; 8];
    for (b, w) in bytes.iter_mut().zip(word.bytes()) {
        *b = w;
    }
    u64::from_be_bytes(bytes)
}

/// Sum over query words of the best nucleo score in any one field; `None` unless every word
/// matches some field.
fn fuzzy_score(entry: &Entry, atoms: &[(Atom, u64)], matcher: &mut Matcher) -> Option<u32> {
    let mut total = 0u32;
    for (atom, needed) in atoms {
        let mut best: Option<u16> = None;
        let mut start = 0u32;
        for (&end, &have) in entry.ends.iter().zip(&entry.masks) {
            let field = start..end;
            start = end;
            if needed & !have != 0 || field.is_empty() {
                continue;
            }
            if let Some(score) = atom.score(entry.text.slice_u32(field), matcher) {
                best = best.max(Some(score));
            }
        }
        total = total.saturating_add(u32::from(best?));
    }
    Some(total)
}

/// Bits for the digits and digit pairs (bigrams) in `digits`: 10 + 100 of the 128.
fn digit_grams(digits: &str) -> u128 {
    let values: Vec<u32> = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect();
    let singles = values.iter().fold(0u128, |m, &d| m | 1 << d);
    values
        .windows(2)
        .fold(singles, |m, pair| m | 1 << (10 + pair[0] * 10 + pair[1]))
}

/// Bits for a-z and 0-9 present in folded text.
fn mask(folded: &str) -> u64 {
    folded.bytes().fold(0u64, |mask, b| match b {
        b'a'..=b'z' => mask | 1 << (b - b'a'),
        b'0'..=b'9' => mask | 1 << (26 + b - b'0'),
        _ => mask,
    })
}

/// The digits of a query made only of phone characters, with at least one digit.
fn digits_query(query: &str) -> Option<String> {
    let phone_like = query
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    (phone_like && !digits.is_empty()).then_some(digits)
}

/// Lower case with accents removed, as nucleo compares.
fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.chars()
        .map(|c| nucleo_matcher::chars::to_lower_case(nucleo_matcher::chars::normalize(c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewContact, Phone};

    fn contact(id: i64, name: &str, company: &str, email: &str, phones: &[&str]) -> Contact {
        Contact {
            id: ContactId(id),
            name: name.into(),
            company: company.into(),
            phones: phones.iter().map(|p| Phone::new("", p)).collect(),
            email: email.into(),
            notes: String::new(),
        }
    }

    fn sample() -> ContactIndex {
        ContactIndex::from_contacts(&all_sample())
    }

    fn ids(hits: &[(ContactId, u32)]) -> Vec<i64> {
        hits.iter().map(|(id, _)| id.0).collect()
    }

    #[test]
    fn typos_scan_word_starts_first_and_everyone_when_that_is_not_enough() {
        // 60 people whose words start with m, and Omar, whose m is inside a word.
        let mut contacts: Vec<Contact> = (0..60)
            .map(|i| contact(i, &format!("Marta Rivera {i:02}"), "", "", &[]))
            .collect();
        contacts.push(contact(100, "Omar Trent", "", "", &[]));
        let mut index = ContactIndex::from_contacts(&contacts);
        let ids =
            |hits: Vec<(ContactId, u32)>| hits.into_iter().map(|(id, _)| id.0).collect::<Vec<_>>();
        // 50 wanted, 60 word-start matches: Omar is not needed, and not scanned.
        let hits = ids(index.search("mrt", 50));
        assert_eq!(hits.len(), 50);
        assert!(!hits.contains(&100));
        // Narrowing keeps the restriction while it still yields enough.
        let hits = ids(index.search("mrtr", 50));
        assert_eq!(hits.len(), 50);
        assert!(!hits.contains(&100));
        // 100 wanted: the word starts give 60, so everyone is scanned and Omar comes last.
        index.search("", 1);
        let hits = ids(index.search("mrt", 100));
        assert_eq!(hits.len(), 61, "{hits:?}");
        assert_eq!(hits.last(), Some(&100));
        // Same after narrowing from a restricted scan that had enough.
        index.search("", 1);
        index.search("mr", 50);
        let hits = ids(index.search("mrt", 100));
        assert_eq!(hits.len(), 61, "{hits:?}");
    }

    #[test]
    fn name_word_prefixes_beat_scattered_matches() {
        let mut index = sample();
        // "jo": "Jo Lee" (whole word), then John/Joanna/José (name prefixes), then the company
        // prefix "Journey", then scattered letters (BenJamin OkOnkwo, Hans OhlsOn / BJOrn).
        let hits = index.search("jo", 10);
        let order = ids(&hits);
        assert_eq!(&order[..4], [5, 2, 1, 4], "{hits:?}");
        assert_eq!(order[4], 3, "company prefix next: {hits:?}");
        assert!(
            hits[3].1 >= 2 * TIER && hits[4].1 < 2 * TIER && hits[4].1 >= TIER,
            "{hits:?}"
        );
        assert!(hits.iter().skip(5).all(|(_, s)| *s < TIER), "{hits:?}");
    }

    #[test]
    fn several_words_each_match_a_word() {
        let mut index = sample();
        let hits = index.search("jo sm", 10);
        assert_eq!(ids(&hits)[0], 1, "{hits:?}");
        // "lee" is a whole name word of Jo Lee and Ann Lee, only the company of Annabel.
        let hits = index.search("lee", 10);
        assert_eq!(&ids(&hits)[..3], [7, 5, 8], "{hits:?}");
        assert!(hits[1].1 > hits[2].1 + TIER / 2);
        // The rest are scattered letters (JoAnna JonEs · jj@mail.ExamplE...).
        assert!(hits[3..].iter().all(|(_, score)| *score < TIER), "{hits:?}");
    }

    #[test]
    fn accents_case_and_hyphens_do_not_matter() {
        let mut index = sample();
        assert_eq!(ids(&index.search("JOSE", 1)), [4]);
        assert_eq!(ids(&index.search("marie jose", 1)), [4]);
        assert_eq!(ids(&index.search("durand", 1)), [4]);
        assert_eq!(ids(&index.search("hopital", 1)), [4]);
        assert_eq!(ids(&index.search("mariejose", 1)), [4]);
        let hits = index.search("marie-josé", 1);
        assert_eq!(ids(&hits), [4]);
        assert!(
            hits[0].1 >= 2 * TIER,
            "both parts start name words: {hits:?}"
        );
    }

    #[test]
    fn combining_accents_keep_fields_apart() {
        // "e" + U+0301 is one grapheme: field boundaries must count graphemes, not chars.
        let mut index = ContactIndex::from_contacts(&[
            contact(
                1,
                "Rene\u{301}e Dubois",
                "Cafe\u{301} Noir",
                "renee@cafe.example",
                &[],
            ),
            contact(2, "Zoe Martin", "Noirmoutier Sel", "", &[]),
        ]);
        assert_eq!(ids(&index.search("noir", 5)), [1, 2]);
        assert_eq!(ids(&index.search("cfnr", 5)), [1]);
        assert_eq!(ids(&index.search("rnbs", 5)), [1]);
        assert_eq!(
            ids(&index.search("dbcf", 5)),
            Vec::<i64>::new(),
            "no match across fields"
        );
    }

    #[test]
    fn email_and_company_are_searched() {
        let mut index = sample();
        assert_eq!(ids(&index.search("acme", 10))[0], 1);
        // Scattered letters match elsewhere too (BenJamin Journey ben@), but rank below.
        assert_eq!(ids(&index.search("jj@", 10))[0], 2);
        assert_eq!(ids(&index.search("bjorn", 10))[0], 6);
    }

    #[test]
    fn digits_search_phone_numbers() {
        let mut index = sample();
        // A prefix of the stored E.164 digits.
        assert_eq!(ids(&index.search("+33 1 23", 10)), [1]);
        // The national form of the same number: trunk 0 dropped, found inside. Marie-José's
        // national "0612345678" holds "12345" too, but not after a trunk 0: no match.
        assert_eq!(ids(&index.search("01 23 45", 10)), [1]);
        // The last digits, as an agent reads them off a missed call.
        assert_eq!(ids(&index.search("3277", 10)), [5]);
        // "0000" ends two numbers.
        let both = index.search("0000", 10);
        assert_eq!(ids(&both), [3, 2], "shorter number first: {both:?}");
        // Starts-with outranks contains.
        let hits = index.search("44", 10);
        assert_eq!(ids(&hits)[0], 2, "{hits:?}");
        assert!(hits[0].1 >= 2 * TIER);
        assert_eq!(ids(&index.search("999", 10)), Vec::<i64>::new());
    }

    #[test]
    fn typing_narrows_and_deleting_widens() {
        let mut index = sample();
        let full: Vec<Vec<i64>> = ["j", "jo", "joa", "joan"]
            .iter()
            .map(|q| ids(&ContactIndex::from_contacts(&all_sample()).search(q, 50)))
            .collect();
        for (query, expected) in ["j", "jo", "joa", "joan"].iter().zip(&full) {
            assert_eq!(&ids(&index.search(query, 50)), expected, "{query}");
        }
        assert_eq!(ids(&index.search("joan", 50))[0], 2);
        // Backspace: the narrowed set must not stick.
        assert_eq!(ids(&index.search("jo", 50)), full[1]);
        assert_eq!(ids(&index.search("", 3)), [7, 8, 3]);
        assert_eq!(index.search("jo", 0), vec![]);
    }

    fn all_sample() -> Vec<Contact> {
        vec![
            contact(
                1,
                "John Smith",
                "Acme Corp",
                "john.smith@acme.example",
                &["+33 1 23 45 67 89"],
            ),
            contact(
                2,
                "Joanna Jones",
                "",
                "jj@mail.example",
                &["+44 20 7946 0000"],
            ),
            contact(
                3,
                "Benjamin Okonkwo",
                "Journey Travel",
                "ben@journey.example",
                &["+234 1 280 0000"],
            ),
            contact(
                4,
                "Marie-José Durand",
                "Hôpital Nord",
                "mj.durand@chu.example",
                &["06 12 34 56 78"],
            ),
            contact(5, "Jo Lee", "", "", &["+1 650 691 3277"]),
            contact(
                6,
                "Hans Ohlson",
                "Bjorn Import",
                "hans@bjorn.example",
                &["+46 8 765 432 10"],
            ),
            contact(7, "Ann Lee", "", "", &[]),
            contact(8, "Annabel Smythe", "Lee & Co", "", &[]),
        ]
    }

    #[test]
    fn a_short_list_is_the_head_of_the_long_one() {
        // Small limits take the prefix-only path; large ones add the fuzzy scan. Both must agree,
        // whether the index is fresh or carries a previous query.
        let queries = [
            "j", "jo", "joa", "l", "le", "lee", "a", "an", "ann", "m", "ma", "mar", "jo s",
            "jo sm", "x", "bj", "0", "00", "+44", "o", "on", "-", "jo-", "jj@", "marie-",
        ];
        let mut warm = sample();
        for query in queries {
            let full = ids(&sample().search(query, 100));
            for limit in [1, 2, 3, 5, 100] {
                let head: Vec<i64> = full.iter().take(limit).copied().collect();
                assert_eq!(
                    ids(&sample().search(query, limit)),
                    head,
                    "{query:?} limit {limit}"
                );
                assert_eq!(
                    ids(&warm.search(query, limit)),
                    head,
                    "{query:?} limit {limit} (warm)"
                );
            }
        }
    }

    #[test]
    fn upsert_and_remove_keep_the_index_current() {
        let mut index = sample();
        assert_eq!(index.len(), 8);
        assert_eq!(ids(&index.search("jo", 1)), [5]);
        index.upsert(&contact(5, "Zed Lee", "", "", &[]));
        assert_eq!(index.len(), 8);
        // Its old number is gone with the old version.
        assert_eq!(ids(&index.search("3277", 10)), Vec::<i64>::new());
        assert!(!ids(&index.search("jo", 10)).contains(&5));
        assert_eq!(ids(&index.search("zed", 10)), [5]);
        index.remove(ContactId(5));
        assert_eq!(ids(&index.search("zed", 10)), Vec::<i64>::new());
        index.upsert(&contact(9, "Aaron Abbott", "", "", &[]));
        assert_eq!(ids(&index.search("", 1)), [9], "kept in name order");
    }

    #[test]
    fn an_edited_index_answers_like_a_fresh_one() {
        let mut contacts: Vec<Contact> = all_sample();
        let mut index = ContactIndex::from_contacts(&contacts);
        let edits: Vec<Contact> = vec![
            contact(
                2,
                "Joanna Jones-Baker",
                "Baker Bros",
                "jj@mail.example",
                &["+44 20 7946 0001"],
            ),
            contact(
                9,
                "Aaron Abbott",
                "Acme Corp",
                "aaron@acme.example",
                &["0612345678"],
            ),
            contact(4, "Marie Durand", "", "", &[]),
            contact(
                10,
                "Zoë Jonas",
                "",
                "zoe@jonas.example",
                &["+33 6 11 22 33 44"],
            ),
        ];
        for edit in &edits {
            index.upsert(edit);
            contacts.retain(|c| c.id != edit.id);
            contacts.push(edit.clone());
        }
        for gone in [ContactId(1), ContactId(7), ContactId(404)] {
            index.remove(gone);
            contacts.retain(|c| c.id != gone);
        }
        let mut fresh = ContactIndex::from_contacts(&contacts);
        assert_eq!(index.len(), fresh.len());
        for query in [
            "", "j", "jo", "jon", "jones", "baker", "a", "ab", "acme", "mar", "marie jo", "zoe",
            "zoë", "0612", "44", "0001", "33 6", "3277", "123", "lee", "x", "durand", "bro",
        ] {
            assert_eq!(
                index.search(query, 100),
                fresh.search(query, 100),
                "{query:?}"
            );
        }
    }

    #[test]
    fn built_from_the_store() {
        let mut store = Store::open_in_memory().expect("open_in_memory");
        let grace = store
            .add_contact(&NewContact::named("Grace Hopper").with_phone("", "+1 650 691 3277"))
            .expect("add_contact");
        store
            .add_contact(&NewContact::named("Alan Turing"))
            .expect("add_contact");
        let mut index = ContactIndex::build(&store).expect("build");
        assert_eq!(index.len(), 2);
        assert_eq!(index.search("gra", 5).first().map(|h| h.0), Some(grace));
        assert_eq!(index.search("650", 5).first().map(|h| h.0), Some(grace));
    }

    #[test]
    fn digit_grams_mark_digits_and_pairs() {
        assert_eq!(digit_grams(""), 0);
        assert_eq!(digit_grams("7"), 1 << 7);
        assert_eq!(
            digit_grams("061"),
            1 | 1 << 6 | 1 << 1 | 1 << (10 + 6) | 1 << (10 + 61)
        );
        assert_eq!(digit_grams("99"), 1 << 9 | 1 << 109);
        let number = digit_grams("33612345678");
        assert_eq!(number & digit_grams("1234"), digit_grams("1234"));
        assert_ne!(number & digit_grams("0612"), digit_grams("0612"));
    }

    #[test]
    fn digit_queries_are_recognised() {
        assert_eq!(digits_query("+33 (1) 23-45"), Some("3312345".into()));
        assert_eq!(digits_query("jo 06"), None);
        assert_eq!(digits_query("+ -"), None);
    }
}
