//! The layering rule of DESIGN.md, enforced: the sans-IO core (src/sip, and later media, queue,
//! lab) must not reach for tokio, sockets (`std::net`) or the system clock. Test code inside a
//! file (after its `#[cfg(test)]`) may make a base instant.

use std::path::Path;

const CORE_DIRS: &[&str] = &["src/sip", "src/media", "src/queue", "src/lab", "src/mail"];
const FORBIDDEN: &[&str] = &[
    "tokio",
    "std::net",
    "Instant::now",
    "SystemTime::now",
    "std::thread",
    "UdpSocket",
    "TcpStream",
];

fn scan(dir: &Path, offences: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            scan(&path, offences);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (number, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                let code = line.split("//").next().unwrap_or_default();
                for word in FORBIDDEN {
                    if code.contains(word) {
                        offences.push(format!(
                            "{}:{}: {word}: {}",
                            path.display(),
                            number + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
}

#[test]
fn the_core_is_sans_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offences = Vec::new();
    for dir in CORE_DIRS {
        scan(&root.join(dir), &mut offences);
    }
    assert!(
        offences.is_empty(),
        "I/O or wall clock in the sans-IO core:\n{}",
        offences.join("\n")
    );
}

#[test]
fn only_msg_rs_imports_rsip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut users = Vec::new();
    fn walk(dir: &Path, users: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, users);
            } else if path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path)
                    .unwrap_or_default()
                    .contains("rsip::")
            {
                users.push(path.display().to_string());
            }
        }
    }
    walk(&root, &mut users);
    assert!(
        users.len() == 1 && users[0].ends_with("sip/msg.rs"),
        "rsip must stay behind src/sip/msg.rs, found in: {users:?}"
    );
}
