//! The layout's invariants, checked on the source tree: the runtime's modules, and the
//! engine's, import each other without a circle (each `super::name` of a directory's `*.rs`
//! is an edge), and the core crate depends on no I/O crate.

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
