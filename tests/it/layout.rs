//! The layout's invariants, checked on the source tree: the runtime's modules, and the
//! engine's, import each other without a circle (each `super::name` of a directory's `*.rs`
//! is an edge), the runtime reads none of the settings the gateway core decides by, and the
//! core crate depends on no I/O crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `module -> modules it names through super::`, among the files of `dir`.
fn imports(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: BTreeMap<String, String> = std::fs::read_dir(dir)
        .expect("the modules' directory")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let module = name.strip_suffix(".rs")?.to_owned();
            Some((module, std::fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    files
        .iter()
        .map(|(module, text)| {
            let named = text
                .split("super::")
                .skip(1)
                .map(|rest| {
                    rest.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .filter(|m| m != module && files.contains_key(m))
                .collect();
            (module.clone(), named)
        })
        .collect()
}

/// A path from `from` back to itself, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_owned(), vec![from.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == from {
                let mut path = path.clone();
                path.push(next.clone());
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut path = path.clone();
                path.push(next.clone());
                stack.push((next.clone(), path));
            }
        }
    }
    None
}

#[test]
fn the_runtime_modules_import_each_other_without_a_circle() {
    let graph = imports(&root().join("src/runtime"));
    assert!(graph.len() > 10, "the runtime's modules were not found");
    for module in graph.keys() {
        if let Some(path) = circle(&graph, module) {
            panic!("an import circle in src/runtime: {}", path.join(" -> "));
        }
    }
}

#[test]
fn the_engine_modules_import_each_other_without_a_circle() {
    for (dir, least) in [
        ("crates/core/src/engine", 8),
        ("crates/core/src/engine/shard", 4),
    ] {
        let graph = imports(&root().join(dir));
        assert!(graph.len() >= least, "the modules of {dir} were not found");
        for module in graph.keys() {
            if let Some(path) = circle(&graph, module) {
                panic!("an import circle in {dir}: {}", path.join(" -> "));
            }
        }
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        circle(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(circle(&graph, "d"), None);
}

#[test]
fn the_core_crate_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(root().join("crates/core/Cargo.toml"))
        .expect("the core's manifest");
    let table: toml::Table = manifest.parse().expect("the core's manifest parses");
    let deps = table
        .get("dependencies")
        .and_then(|d| d.as_table())
        .expect("[dependencies]");
    for io in [
        "glommio",
        "socket2",
        "libc",
        "getrandom",
        "futures-lite",
        "signal-hook",
        "tracing",
    ] {
        assert!(
            !deps.contains_key(io),
            "palisade-core must not depend on {io}"
        );
    }
    let ahash = deps.get("ahash").expect("ahash");
    let workspace: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .expect("the workspace manifest")
        .parse()
        .expect("parses");
    let seeded = workspace["workspace"]["dependencies"]["ahash"]
        .get("default-features")
        .and_then(toml::Value::as_bool);
    assert_eq!(
        seeded,
        Some(false),
        "ahash must be built without runtime-rng ({ahash:?})"
    );
}

/// What only the gateway core may decide by: the flow-control and timer settings behind read
/// holds, room, the engine's tick and the shutdown, and the reload's planning.
const CORE_DECIDES_BY: [&str; 6] = [
    "max_in_flight",
    "stream_buffer_bytes",
    "event_timeout",
    "outage_window",
    "reload::plan",
    "compile_after",
];

/// The names of [`CORE_DECIDES_BY`] that `text` uses outside comments.
fn decisions_named(text: &str) -> Vec<&'static str> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    CORE_DECIDES_BY
        .into_iter()
        .filter(|name| code.contains(name))
        .collect()
}

#[test]
fn the_runtime_reads_none_of_the_settings_the_core_decides_by() {
    let mut files = vec![root().join("src/runtime.rs")];
    for dir in ["src/runtime", "src/runtime/conn"] {
        for entry in std::fs::read_dir(root().join(dir)).expect("the runtime's directory") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "the runtime's files were not found");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a runtime file");
        let named = decisions_named(&text);
        assert!(
            named.is_empty(),
            "{} decides by {named:?}: that decision is the gateway core's",
            file.display()
        );
    }
    // The check sees code and skips comments.
    let sample = "// max_in_flight, in a comment\nlet low = c.limits.stream_buffer_bytes / 2;";
    assert_eq!(decisions_named(sample), ["stream_buffer_bytes"]);
}
