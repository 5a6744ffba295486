//! Configuration files: reading one (the core parses and checks the text; this module is the
//! only place that opens the file), and `palisade check-config`'s report, which adds the checks
//! of the files the configuration names: every certificate, key and CA exists and parses, each
//! key matches its certificate, and certificates that expire within 30 days are warned about,
//! each at the key that names the file (`FILE:LINE:COL`).

use palisade_core::policy::{
    check_report, load_bytes, unreadable_file, Config, Diagnostic, Loaded,
};
use palisade_tls::Material;
use std::path::Path;
use std::time::SystemTime;

/// Reads and loads a configuration file: every problem, including an unreadable file or a
/// byte that is not UTF-8, comes back as diagnostics that name the file.
pub fn load_file(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    let origin = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => load_bytes(bytes, &origin),
        Err(e) => Err(unreadable_file(&origin, &e)),
    }
}

/// Every problem with the files `config` names (`origin`: the configuration file, as
/// diagnostics name it).
pub fn check_files(config: &Config, origin: &str, now: SystemTime) -> Vec<Diagnostic> {
    Material::build(config, origin, now).1
}

/// Exactly what `palisade check-config FILE` prints, and its exit code: the configuration's
/// own diagnostics and those of the files it names.
pub fn check_config_report(path: &Path) -> (String, i32) {
    let origin = path.display().to_string();
    let checked = load_file(path).and_then(|mut loaded| {
        let files = check_files(&loaded.config, &origin, SystemTime::now());
        let failed = files.iter().any(Diagnostic::is_error);
        loaded.warnings.extend(files);
        loaded.warnings.sort_by_key(|d| (d.line, d.col, d.severity));
        if failed {
            Err(loaded.warnings)
        } else {
            Ok(loaded)
        }
    });
    check_report(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plus one valid outbound server: 10 lines in all.
    const BASE: &str = r#"[gateway]
name = "palisade.example.com"
[[router]]
name = "imp1.example.com"
secret = "s3cret"
[[server]]
name = "cs1"
host = "127.0.0.1"
port = 7999
password = "pw"
"#;

    #[test]
    fn report_for_an_invalid_file() {
        let dir = std::env::temp_dir().join(format!("palisade-cfg-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("bad.toml");
        let _ = std::fs::write(&path, format!("{BASE}[timers]\nkeepalive = \"0s\"\n"));
        let (text, code) = check_config_report(&path);
        let file = path.display();
        assert_eq!(code, 1);
        assert_eq!(
            text,
            format!("{file}:12:13: error: `keepalive` must be greater than zero\ninvalid: 1 error, 0 warnings\n")
        );
        let _ = std::fs::write(&path, format!("{BASE}[[profile]]\nname = \"E\"\n"));
        let (text, code) = check_config_report(&path);
        assert_eq!(code, 0);
        assert_eq!(
            text,
            format!("{file}:12:8: warning: profile `E` has no events: it matches nothing\nok\n")
        );
        let _ = std::fs::write(&path, b"[gateway]\nname = \"\xff\"\n");
        let (text, code) = check_config_report(&path);
        assert_eq!((text, code), (format!("{file}:2:9: error: the configuration file is not valid UTF-8\ninvalid: 1 error, 0 warnings\n"), 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn report_for_a_missing_file() {
        let (text, code) = check_config_report(Path::new("/nonexistent/palisade.toml"));
        assert_eq!(code, 1);
        assert!(
            text.starts_with(
                "/nonexistent/palisade.toml: error: cannot read the configuration file: "
            ),
            "{text}"
        );
    }
}
