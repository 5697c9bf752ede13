//! The layout `src/lib.rs` describes, held: each role of the shell imports only from the roles
//! below it, the decoder and the adapters use no reaction, and in `handlers` nothing but the
//! registry depends on a reaction. Read from the sources' `crate::` paths, so a new import
//! that points back up fails here with the file and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each role and the roles it may import from (`lib.rs`'s table).
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "lambda", "stream", "wiring", "batch", "adapters", "decode", "catalog", "stages",
        ],
    ),
    (
        "lambda",
        &["wiring", "batch", "adapters", "decode", "catalog", "stages"],
    ),
    (
        "stream",
        &["batch", "adapters", "decode", "catalog", "stages"],
    ),
    (
        "wiring",
        &["batch", "adapters", "decode", "catalog", "stages"],
    ),
    (
        "fuzz_target",
        &["wiring", "batch", "adapters", "decode", "catalog", "stages"],
    ),
    ("batch", &["adapters", "decode", "catalog", "stages"]),
    ("adapters", &["catalog", "stages"]),
    ("decode", &[]),
    ("catalog", &[]),
    ("stages", &[]),
];

/// Roles that may use `handlers::reactions` (building the reactions); the rest see only the
/// ports, items and changes.
const MAY_BUILD_REACTIONS: &[&str] = &["wiring", "cli", "lambda", "fuzz_target"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The role of a file under `src/`: its first folder, or its file stem.
fn role(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    Path::new(first)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Every `crate::<name>` a line names (in `use` lines and in paths alike), outside comments.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
        rest = after;
    }
    found
}

/// `(file:line, text)` of every line that breaks a rule, per rule.
fn violations() -> BTreeMap<&'static str, Vec<String>> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut broken: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();

    let src = manifest.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in &files {
        let own = role(&src, file);
        if own == "main" || own == "lib" {
            continue;
        }
        let Some(may) = allowed.get(own.as_str()) else {
            broken
                .entry("every file under src/ is in a role lib.rs names")
                .or_default()
                .push(file.display().to_string());
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}: {}", file.display(), n + 1, line.trim());
            for target in crate_paths(line) {
                if target != own && !may.contains(&target.as_str()) {
                    broken
                        .entry("a role imports only from the roles below it")
                        .or_default()
                        .push(at.clone());
                }
            }
            if line.contains("handlers::reactions") && !MAY_BUILD_REACTIONS.contains(&own.as_str())
            {
                broken
                    .entry("only the composition builds reactions")
                    .or_default()
                    .push(at.clone());
            }
        }
    }

    let handlers_src = manifest.join("handlers/src");
    let mut files = Vec::new();
    rust_files(&handlers_src, &mut files);
    for file in &files {
        if file.starts_with(handlers_src.join("reactions")) || file.ends_with("lib.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if crate_paths(line).iter().any(|t| t == "reactions") {
                broken
                    .entry("in handlers, only the reactions depend on a reaction")
                    .or_default()
                    .push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    broken
}

#[test]
fn no_role_imports_from_a_role_above_it() {
    let broken = violations();
    assert!(
        broken.is_empty(),
        "the layout in src/lib.rs is broken:\n{}",
        broken
            .iter()
            .map(|(rule, lines)| format!("{rule}:\n  {}", lines.join("\n  ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_check_sees_an_import_that_points_back_up() {
    // The reader itself: a `crate::batch` inside a path is found, one in a comment is not.
    assert_eq!(
        crate_paths("    let x = crate::batch::Worker::new(crate::catalog::Catalog::default());"),
        vec!["batch", "catalog"]
    );
    assert!(crate_paths("// see crate::batch").is_empty());
}

#[test]
fn every_role_in_the_layout_is_a_folder_or_file_of_src() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (role, _) in ALLOWED {
        assert!(
            src.join(role).is_dir() || src.join(format!("{role}.rs")).is_file(),
            "{role} is in the layout but not in src/"
        );
    }
}

/// Inside a folder, its rooms from the top down: a room names another (`super::<room>`) only
/// when that one comes after it. `mod.rs` (the folder's front: the `Worker`, the runner, the
/// reaction) may name any room, and the rooms take from it only what it defines itself (the
/// `Worker` whose methods they hold); every file of the folder must be listed, so a new room
/// takes a place.
const ROOMS: &[(&str, &[&str])] = &[
    (
        "src/batch",
        &[
            "window",
            "record",
            "plan",
            "deferred",
            "report",
            "effects",
            "request_count",
            "intercept",
            "idempotency",
            "lanes",
        ],
    ),
    (
        "src/stream",
        &[
            "capture",
            "delivery",
            "lane",
            "frontier",
            "counts",
            "on_failure",
            "checkpoints",
            "error",
            "progress",
            "sam_template",
            "settings",
            "stop",
            "filter_criteria",
            "reader",
            "get_records",
        ],
    ),
    (
        "handlers/src/reactions/provider_rating",
        &["reconcile", "memory", "fold", "booking_slots", "rules"],
    ),
    (
        "handlers/src/reactions/thread_stats",
        &["reconcile", "memory", "message_states"],
    ),
];

/// The names a file takes from `super::`, outside comments: `super::a::b` gives `a`,
/// `super::{a, b::c}` gives `a` and `b`, across lines.
fn super_names(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("super::") {
        rest = &rest[at + "super::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                names.extend(inner.split(',').map(ident));
            }
            None => names.push(ident(rest)),
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

#[test]
fn rooms_inside_a_folder_keep_their_direction() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    for (folder, order) in ROOMS {
        let dir = manifest.join(folder);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.extension().is_none_or(|e| e != "rs") || stem == "mod" {
                continue;
            }
            let Some(place) = order.iter().position(|room| *room == stem) else {
                broken.push(format!("{folder}/{stem}.rs is not in the rooms' order"));
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            for name in super_names(&text) {
                if let Some(target) = order.iter().position(|room| *room == name) {
                    if target <= place {
                        broken.push(format!("{folder}/{stem}.rs names super::{name}, above it"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_room_check_reads_grouped_and_multi_line_imports() {
    assert_eq!(
        super_names("use super::{lanes, BatchOptions,\n    record::Ran};\n// super::window\nsuper::plan::Plan"),
        vec!["lanes", "BatchOptions", "record", "plan"]
    );
}

/// The embedded tables (issue 42): the crate knows nothing of the worker (its API is tables,
/// items and keys), and the adapter's files in `src/adapters/embedded/` import no circle.
#[test]
fn the_embedded_tables_stand_alone_and_their_adapter_imports_no_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("embedded-tables/src"), &mut files);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            assert!(
                !line.contains("handlers::") && !line.contains("ddb_stream_worker::"),
                "{}:{}: the embedded-tables crate uses the worker: {line}",
                file.display(),
                number + 1
            );
        }
    }
    let dir = root.join("src/adapters/embedded");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let stems: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    // file -> the sibling modules it names (`super::store`, `use super::{files, store}`)
    let imports: BTreeMap<String, Vec<String>> = files
        .iter()
        .zip(&stems)
        .map(|(file, stem)| {
            let text = std::fs::read_to_string(file).unwrap();
            let named = stems
                .iter()
                .filter(|other| *other != stem && *other != "mod")
                .filter(|other| {
                    text.contains(&format!("super::{other}"))
                        || (stem == "mod" && text.contains(&format!("{other}::")))
                })
                .cloned()
                .collect();
            (stem.clone(), named)
        })
        .collect();
    for (file, named) in &imports {
        for other in named {
            let back = imports.get(other).is_some_and(|n| n.contains(file));
            assert!(!back, "{file}.rs and {other}.rs import each other");
        }
    }
}
