//! `palisade check-config`'s file checks: every certificate, key and CA the configuration
//! names exists and parses, each key matches its certificate, and certificates that expire
//! within 30 days are warned about, each at the key that names the file (`FILE:LINE:COL`).

use super::material::Material;
use crate::policy::{check_report, load_file, Config, Diagnostic};
use std::path::Path;
use std::time::SystemTime;

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
