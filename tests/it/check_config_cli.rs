//! `palisade check-config FILE` run as a real process: what it prints and its exit code.

use std::path::PathBuf;
use std::process::Command;

fn config(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

fn check_config(path: &PathBuf) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run palisade: {e}"));
    let code = out.status.code().unwrap_or(-1);
    (String::from_utf8_lossy(&out.stdout).into_owned(), code)
}

#[test]
fn ten_mistakes_give_ten_located_errors() {
    let path = config("ten_mistakes.toml");
    let (stdout, code) = check_config(&path);
    assert_eq!(code, 1, "{stdout}");
    let prefix = format!("{}:", path.display());
    let errors: Vec<(usize, usize, &str)> = stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let mut parts = rest.splitn(3, ':');
            let line_no = parts.next()?.parse().ok()?;
            let col = parts.next()?.parse().ok()?;
            let message = parts.next()?.strip_prefix(" error: ")?;
            Some((line_no, col, message))
        })
        .collect();
    let lines: Vec<usize> = errors.iter().map(|e| e.0).collect();
    assert_eq!(lines, [6, 9, 12, 13, 17, 21, 24, 29, 30, 34], "{stdout}");
    let expected_starts = [
        "`shards` cannot be negative",
        "`routers` is not an IP:port address",
        "`reconnect_min` (20s) is longer than `reconnect_max` (10s)",
        "`keepalive`: the duration \"30\" has no unit",
        "the secret of router `imp1.example.com` is empty",
        "invalid host \"10.0.0.5:7999\"",
        "server `cs1` is assigned unknown profile `EthicalWal`",
        "unknown event `es_OUTT`",
        "`packet` applies to JSM events only",
        "`SystemDefaultComplianceProfile` is built in and cannot be redefined",
    ];
    for ((_, _, message), want) in errors.iter().zip(expected_starts) {
        assert!(
            message.starts_with(want),
            "{message:?} should start with {want:?}"
        );
    }
    assert!(stdout.contains("hint: did you mean `es_OUT`?"), "{stdout}");
    assert!(
        stdout.contains("hint: did you mean `EthicalWall`?"),
        "{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .ends_with("invalid: 10 errors, 0 warnings"),
        "{stdout}"
    );
    assert!(!stdout.lines().any(|l| l == "ok"));
}

#[test]
fn valid_file_prints_ok() {
    for name in ["config_md_example.toml", "seed_outage_two_profiles.toml"] {
        let (stdout, code) = check_config(&config(name));
        assert_eq!((stdout.as_str(), code), ("ok\n", 0), "{name}");
    }
}

#[test]
fn warning_only_file_prints_the_warning_then_ok() {
    let path = config("warning_only.toml");
    let (stdout, code) = check_config(&path);
    assert_eq!(code, 0, "{stdout}");
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("{}:19:82: warning: ", path.display())),
        "{stdout}"
    );
    assert!(lines[0].ends_with(
        "If a combination of Bounce, and Fire and Forget is selected, an event to which this \
         applies will be passed to the compliance server and then discarded. This means it will \
         not be processed further by IM and Presence Service. Use this combination with care."
    ));
    assert!(lines[1].starts_with("    hint: "));
    assert_eq!(lines[2], "ok");
}

#[test]
fn missing_file_is_an_error() {
    let (stdout, code) = check_config(&config("does_not_exist.toml"));
    assert_eq!(code, 1);
    assert!(
        stdout.contains("error: cannot read the configuration file"),
        "{stdout}"
    );
}

#[test]
fn events_lists_the_whole_catalog() {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("events")
        .output()
        .unwrap_or_else(|e| panic!("cannot run palisade: {e}"));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = text
        .lines()
        .filter(|l| l.starts_with("JSM   ") || l.starts_with("TC    "))
        .count();
    assert_eq!(rows, 40);
    assert!(text.contains("onServiceReconfig"));
    assert!(text.contains("none (notification only)"));
}

#[test]
fn too_many_shards_is_an_error_with_its_reason() {
    let dir = std::env::temp_dir().join(format!("palisade-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shards.toml");
    std::fs::write(
        &path,
        "[gateway]\nname = \"palisade.example.com\"\nshards = 100000\n[[router]]\nname = \"imp1.example.com\"\nsecret = \"s\"\n[[server]]\nname = \"cs1\"\nhost = \"127.0.0.1\"\nport = 7999\npassword = \"p\"\n",
    )
    .unwrap();
    let (stdout, code) = check_config(&path);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:3:10: error: `shards` is 100000, more than the maximum of 256: ",
            path.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("io_uring"), "{stdout}");
}
