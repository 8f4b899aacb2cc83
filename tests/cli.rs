//! The binary's user-facing errors: config problems name the file, line and key; `check`
//! diagnoses what it cannot reach. Secrets never appear.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ringside(dir: &Path, config: &str, args: &[&str]) -> Output {
    let path = dir.join("config.toml");
    std::fs::write(&path, config).expect("write config");
    Command::new(env!("CARGO_BIN_EXE_ringside"))
        .arg("--log-file")
        .arg(dir.join("ringside.log"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .expect("ringside runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn a_missing_parameter_is_named_with_its_file_and_line() {
    let dir = scratch("missing_parameter");
    let out = ringside(
        &dir,
        "# agent\n[account]\nusername = \"101\"\npassword = \"hunter2\"\n",
        &["check"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("config.toml:2: Missing parameter: [account].domain"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn a_bad_value_says_what_is_allowed() {
    let dir = scratch("bad_value");
    let out = ringside(
        &dir,
        "[account]\nusername = \"101\"\npassword = \"hunter2\"\ndomain = \"pbx\"\ntransport = \"sctp\"\n",
        &["shell"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.toml:5: [account].transport = \"sctp\": allowed values are udp, tcp"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn check_reports_a_name_that_does_not_resolve() {
    let dir = scratch("dns");
    let out = ringside(
        &dir,
        "[account]\nusername = \"101\"\npassword = \"hunter2\"\ndomain = \"pbx.invalid\"\n",
        &["check"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("FAILED: [account].registrar: cannot resolve pbx.invalid"),
        "{text}"
    );
}

#[test]
fn without_a_config_it_explains_where_one_goes() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env(
            "XDG_CONFIG_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-xdg"),
        )
        .env(
            "XDG_DATA_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-xdg-data"),
        )
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("No SIP account configured"), "{text}");
    assert!(text.contains("ringside check"), "{text}");
}
