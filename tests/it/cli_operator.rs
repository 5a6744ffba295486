//! The command line as operators use it: `--version` with the commit, shell completions, the
//! manual page, where `run` finds its configuration, and `palisade reload`.

use crate::support;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env_remove("PALISADE_CONFIG")
        .output()
        .expect("palisade runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_names_the_commit() {
    let out = palisade(&["--version"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let expected = match commit {
        Some(c) => format!("palisade {} (commit {c})\n", env!("CARGO_PKG_VERSION")),
        None => format!("palisade {} (commit unknown)\n", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(text, expected);
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef palisade"),
        ("fish", "complete -c palisade"),
    ] {
        let out = palisade(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("check-config"), "{shell}");
    }
    let out = palisade(&["completions", "tcsh"]);
    assert!(!out.status.success());
}

/// The scripts are valid for their shells, where the shell is installed (bash always is).
#[test]
fn the_bash_script_loads_in_bash() {
    let script = stdout(&palisade(&["completions", "bash"]));
    let dir = std::env::temp_dir().join(format!("palisade-compl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("palisade.bash");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p palisade", path.display()))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success() && stdout(&out).contains("palisade"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_manual_page_renders() {
    let out = palisade(&["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH palisade 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    let dir = std::env::temp_dir().join(format!("palisade-man-{}", std::process::id()));
    let out = palisade(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success());
    for page in ["palisade.1", "palisade-run.1", "palisade-reload.1"] {
        assert!(dir.join(page).is_file(), "{page}");
    }
    // man(1), where installed, formats it without warnings.
    if let Ok(man) = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(dir.join("palisade.1"))
        .env("MANWIDTH", "80")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
    {
        if man.status.success() {
            assert!(stdout(&man).contains("COMMAND OPTIONS"));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["reload", "--help"],
        &["completions", "--help"],
    ] {
        let out = palisade(args);
        assert!(out.status.success(), "{args:?}");
        assert!(!stdout(&out).is_empty());
    }
    let help = stdout(&palisade(&["run", "--help"]));
    for flag in ["--config", "--log-level", "--log-format", "PALISADE_CONFIG"] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn run_reads_palisade_config_when_no_flag_names_a_file() {
    // A configuration with free ports, named only by the environment.
    let port = free_port();
    let text = config(1, FAST_TIMERS, "")
        .replace("{ROUTER_PORT}", &port.to_string())
        .replace("{COMPLIANCE_PORT}", &free_port().to_string())
        .replace("{ADMIN_PORT}", &free_port().to_string());
    let dir = std::env::temp_dir().join(format!("palisade-env-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("from-env.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("run")
        .env("PALISADE_CONFIG", &path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut listening = false;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(listening, "it never listened on the file's port");
    assert!(status.success(), "{status:?}");
}

#[test]
fn run_without_any_file_warns_that_it_runs_the_embedded_configuration() {
    // With an installed package, `run` reads /etc/palisade/palisade.toml instead.
    let installed = std::path::Path::new("/etc/palisade/palisade.toml").exists();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("run")
        .env_remove("PALISADE_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let first = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let warned =
        first.contains("WARN") && first.contains("running the embedded loopback configuration");
    assert_eq!(warned, !installed, "{first}");
}

const PROFILE: &str = "SystemDefaultComplianceProfile";

#[test]
fn reload_through_the_admin_endpoint_reports_the_new_generation_or_the_error() {
    let port = free_port();
    let body = server_block("cs1", port, PROFILE);
    let gw = Gateway::start(&config(1, FAST_TIMERS, &body));
    let admin = gw.admin_addr.to_string();
    let out = palisade(&["reload", "--admin", &admin]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("Configuration reloaded from") && text.contains("(generation 1)"),
        "{text}"
    );

    // The file is now broken: the reload is refused, and the exit code says so.
    let broken = std::fs::read_to_string(&gw.config_path).unwrap() + "\n[log]\nlevel = \"x\"\n";
    std::fs::write(&gw.config_path, broken).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["reload", "--admin", &admin])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains("configuration NOT reloaded"),
        "{out:?}"
    );
    let status = gw.admin_get("/status", WAIT).unwrap();
    let body = status.split_once("\r\n\r\n").unwrap().1;
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["config"]["generation"], 1, "{body}");
}

#[test]
fn reload_reads_the_admin_address_from_the_configuration_and_can_signal_a_pid() {
    let port = free_port();
    let gw = Gateway::start(&config(1, FAST_TIMERS, &server_block("cs1", port, PROFILE)));
    let path = gw.config_path.to_str().unwrap().to_owned();
    let out = palisade(&["reload", "--config", &path]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("(generation 1)"), "{out:?}");

    let out = palisade(&["reload", "--pid", &gw.pid().to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert!(gw.log.wait_for("(generation 2)", WAIT), "{}", gw.log.all());
    // No endpoint at all: a clear error.
    let out = palisade(&["reload", "--admin", &format!("127.0.0.1:{}", free_port())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the admin endpoint"));
}
