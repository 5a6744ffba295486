//! Shared by the interop tests: running the harness scripts of `tests/interop/`, and skipping
//! loudly when a third-party peer is missing. In CI (`PALISADE_INTEROP_REQUIRED=1`) a missing
//! peer is a failure, never a skip.
#![allow(dead_code)]
// Shared by many test crates, each using part of it: `pub` here is for them, not an API.
#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reports a skip where people see it (not swallowed by the test harness's capture), or fails
/// when peers are required.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("PALISADE_INTEROP_REQUIRED").is_some() {
        panic!("{test}: interop peer missing but PALISADE_INTEROP_REQUIRED is set: {why}");
    }
    let banner = format!(
        "\n*** SKIPPED {test}: {why}\n*** (this interop test did NOT run; install the peer, see tests/interop/README.md)\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
}

/// Runs a harness script; `Err(reason)` when it says SKIP (exit 77).
pub fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.code() == Some(77) {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("SKIP"))
            .unwrap_or("SKIP: exit 77");
        return Err(line.to_owned());
    }
    Ok(out)
}

/// A private Prosody (tests/interop/prosody/start.sh); stopped on drop.
pub struct Prosody {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
}

impl Prosody {
    pub fn start(test: &str) -> Option<Prosody> {
        Prosody::start_with(test, &[])
    }

    /// As `start`, with start.sh's optional settings (`PROSODY_MUC`, `PROSODY_VHOST_LINES`...).
    pub fn start_with(test: &str, env: &[(&str, &str)]) -> Option<Prosody> {
        let dir =
            std::env::temp_dir().join(format!("palisade-prosody-{}-{}", std::process::id(), test));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        let script = root().join("tests/interop/prosody/start.sh");
        let out = match run(Command::new(&script).arg(&dir).envs(env.iter().copied())) {
            Ok(o) => o,
            Err(why) => {
                skip(test, &why);
                return None;
            }
        };
        assert!(
            out.status.success(),
            "prosody did not start: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Some(Prosody { dir, env })
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing: {:?}", self.env))
    }

    pub fn port(&self, key: &str) -> u16 {
        self.get(key).parse().expect("a port")
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = Command::new(root().join("tests/interop/prosody/stop.sh"))
            .arg(&self.dir)
            .output();
    }
}

/// The slixmpp venv (created by tests/interop/slixmpp/setup.sh if needed); `None` = skipped.
pub fn slixmpp_python(test: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("PALISADE_INTEROP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/interop-venv"));
    let setup = root().join("tests/interop/slixmpp/setup.sh");
    match run(Command::new(setup).arg(&venv)) {
        Ok(out) if out.status.success() => Some(venv.join("bin/python")),
        Ok(out) => {
            let why = format!(
                "slixmpp setup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            skip(test, &why);
            None
        }
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

pub fn write_temp(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("palisade-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("temp file");
    path
}

pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
