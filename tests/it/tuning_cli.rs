//! Runs the real `palisade` binary for `tuning relogin`: the seed's Example 1 end to end, and the
//! seed's Example 2 (a table extended up to its profile's size), and the exit code and message for
//! a user count the profile does not cover.

use std::process::Command;

fn palisade(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .expect("the palisade binary runs")
}

#[test]
fn example_1_prints_120_and_253() {
    let out = palisade(&[
        "tuning",
        "relogin",
        "--profile",
        "15000",
        "--mode",
        "active-active",
        "--users",
        "2000",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Client Re-Login Lower Limit: 120\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Client Re-Login Upper Limit: 253\n"),
        "{stdout}"
    );
    assert!(stdout.contains("table 9"), "{stdout}");
}

#[test]
fn seed_example_2_gets_the_seeds_answer_with_a_note() {
    let out = palisade(&[
        "tuning",
        "relogin",
        "--profile",
        "5000",
        "--mode",
        "active-active",
        "--users",
        "4700",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("Client Re-Login Lower Limit: 120"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Client Re-Login Upper Limit: 953"),
        "{stdout}"
    );
    assert!(stdout.contains("table 7 stops at 2500"), "{stdout}");
}

#[test]
fn uncovered_user_count_fails_with_the_next_profile() {
    let out = palisade(&[
        "tuning",
        "relogin",
        "--profile",
        "5000",
        "--mode",
        "active-active",
        "--users",
        "5200,4700",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("does not cover 5200 users"), "{stderr}");
    assert!(stderr.contains("15000-full-uc"), "{stderr}");
}

#[test]
fn measured_runs_a_login_storm_end_to_end() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "tuning",
            "relogin",
            "--profile",
            "15000",
            "--mode",
            "active-standby",
            "--users",
            "15000",
        ])
        .args(["--measured", "--measure-for", "1s"])
        .output()
        .expect("palisade runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("measured here: a login storm (e_SESSION"),
        "{text}"
    );
    assert!(text.contains("Client Re-Login Lower Limit: 120"), "{text}");
    assert!(
        text.contains("sizing: the gateway and its compliance servers take"),
        "{text}"
    );
}
