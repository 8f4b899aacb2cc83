//! Store costs: contact search per keystroke over 100k contacts (goal ≤ 5 ms in release), the
//! index build, and the call-history insert rate (start + finish, on a file in WAL mode).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringside::store::{
    CallDirection, CallFinish, CallOutcome, CallStart, Contact, ContactId, ContactIndex,
    NewContact, Phone, Store,
};

const CONTACTS: usize = 100_000;
/// Typed one key at a time: "m", "ma", ... "martin".
const QUERY: &str = "martin";
const TYPO: &str = "mrtn";

const FIRST: &[&str] = &[
    "Ada", "Alan", "Amina", "André", "Anna", "Arjun", "Ben", "Chen", "Chloé", "David", "Elena",
    "Emma", "Fatima", "Grace", "Hans", "Hiro", "Ines", "Ivan", "Jana", "John", "José", "Kofi",
    "Lea", "Liam", "Lucia", "Marie", "Mateo", "Mia", "Noah", "Noor", "Olga", "Omar", "Paul",
    "Priya", "Quentin", "Rosa", "Sam", "Sofia", "Tariq", "Yuki",
];
const LAST: &[&str] = &[
    "Martin", "Smith", "Garcia", "Müller", "Rossi", "Dubois", "Nowak", "Silva", "Kim", "Khan",
    "Okafor", "Ivanova", "Tanaka", "Jensen", "Novak", "Costa", "Haddad", "Cohen", "Larsen",
    "Moreau", "Bianchi", "Santos", "Fischer", "Lopez", "Nguyen", "Patel", "Yilmaz", "Horvat",
    "Kowalski", "Martinez", "Petit", "Schmidt", "Wang", "Sato", "Andersen", "Dupont", "Lambert",
    "Meyer", "Weber", "Young",
];
const COMPANIES: &[&str] = &[
    "Acme Logistics",
    "Northwind Traders",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Tools",
    "Wayne Freight",
    "Hooli",
    "Vandelay Import",
    "Soylent Foods",
    "",
    "",
    "",
];

/// A deterministic generator, so every run searches the same contacts.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[(self.next() as usize) % list.len()]
    }
}

fn generated_contacts(count: usize) -> Vec<Contact> {
    let mut rng = Lcg(7);
    (0..count)
        .map(|i| {
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            let company = rng.pick(COMPANIES);
            let mut phones = vec![Phone::new(
                "mobile",
                &format!("+33 6 {:08}", rng.next() % 100_000_000),
            )];
            if rng.next().is_multiple_of(3) {
                phones.push(Phone::new(
                    "work",
                    &format!("+44 20 {:08}", rng.next() % 100_000_000),
                ));
            }
            Contact {
                id: ContactId(i as i64 + 1),
                name: format!("{first} {last}"),
                company: company.to_string(),
                email: format!(
                    "{}.{}{}@mail.example",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i
                ),
                phones,
                notes: String::new(),
            }
        })
        .collect()
}

fn search(c: &mut Criterion) {
    let contacts = generated_contacts(CONTACTS);
    let mut index = ContactIndex::from_contacts(&contacts);

    let mut group = c.benchmark_group("contact_search_100k");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    // The figure to compare with the 5 ms goal: time per element = time per keystroke.
    group.throughput(Throughput::Elements(QUERY.len() as u64));
    group.bench_function("type_martin_per_keystroke", |b| {
        b.iter(|| {
            index.search("", 1); // a fresh search box
            for end in 1..=QUERY.len() {
                black_box(index.search(&QUERY[..end], 50));
            }
        })
    });
    // A typo: no name word starts with "mr", so from the second key on the fuzzy scan runs
    // (the slow path), then narrows.
    group.throughput(Throughput::Elements(TYPO.len() as u64));
    group.bench_function("type_mrtn_per_keystroke", |b| {
        b.iter(|| {
            index.search("", 1);
            for end in 1..=TYPO.len() {
                black_box(index.search(&TYPO[..end], 50));
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("typo_full_fuzzy_scan", |b| {
        b.iter(|| {
            index.search("", 1);
            black_box(index.search("mr", 50));
        })
    });
    // The worst single keystroke: the first letter scans every contact.
    group.bench_function("first_letter_full_scan", |b| {
        b.iter(|| {
            index.search("", 1);
            black_box(index.search("m", 50));
        })
    });
    group.bench_function("last_name_full_scan_no_narrowing", |b| {
        b.iter(|| {
            index.search("", 1);
            black_box(index.search(QUERY, 50));
        })
    });
    group.bench_function("digits_0612", |b| {
        b.iter(|| black_box(index.search("06 12", 50)))
    });
    group.finish();

    let mut group = c.benchmark_group("contact_index_100k");
    group.sample_size(10);
    group.bench_function("build_from_contacts", |b| {
        b.iter(|| black_box(ContactIndex::from_contacts(&contacts)))
    });
    // An edit saved from the contact card: the index is patched, not rebuilt.
    let mut edited = contacts[CONTACTS / 2].clone();
    let mut round = 0u32;
    group.bench_function("upsert_one_contact", |b| {
        b.iter(|| {
            round += 1;
            edited.name = format!("Renamed Person {round}");
            index.upsert(black_box(&edited));
        })
    });
    group.finish();
}

fn history(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ringside-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = match Store::open_in_dir(&dir) {
        Ok(store) => store,
        Err(e) => panic!("cannot open the bench store: {e}"),
    };
    for i in 0..1000 {
        let contact = NewContact::named(&format!("Caller {i}"))
            .with_phone("", &format!("+33 1 00 00 {:04}", i));
        if let Err(e) = store.add_contact(&contact) {
            panic!("{e}");
        }
    }

    let mut group = c.benchmark_group("call_history");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(8));
    let mut n: i64 = 0;
    // One call: its row written at start (with caller lookup) and completed at the end, each a
    // committed transaction as in real use.
    group.bench_function("start_and_finish_call_wal_file", |b| {
        b.iter(|| {
            n += 1;
            let started = 1_796_000_000 + n * 60;
            let start = CallStart {
                direction: CallDirection::Inbound,
                local_number: "1001".into(),
                remote_number: format!("+3310000{:04}", n % 1000),
                contact_id: None,
                queue: Some("support".into()),
                started,
                activity_id: None,
            };
            let id = store.start_call(&start).unwrap_or_else(|e| panic!("{e}"));
            let finish = CallFinish {
                outcome: CallOutcome::Answered,
                answered: Some(started + 3),
                ended: started + 45,
                recording_path: None,
            };
            store
                .finish_call(id, &finish)
                .unwrap_or_else(|e| panic!("{e}"));
        })
    });
    group.bench_function("recent_calls_50", |b| {
        b.iter(|| black_box(store.recent_calls(50, false).map(|v| v.len()).unwrap_or(0)))
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, search, history);
criterion_main!(benches);
