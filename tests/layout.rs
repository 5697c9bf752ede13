//! The layout `src/lib.rs` describes, held: each role of the shell imports only from the roles
//! below it, the decoder and the adapters use no reaction, and in `handlers` nothing but the
//! registry depends on a reaction. Read from the sources' `crate::` paths, so a new import
//! that points back up fails here with the file and the line.

use std::collections::{BTreeMap, BTreeSet};
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
/// adapters and options a batch runs with); every file of the folder must be listed, so a new
/// room takes a place.
const ROOMS: &[(&str, &[&str])] = &[
    (
        "src/batch",
        // The pipeline's steps from the last (each takes the value the one before it gives),
        // then what they share.
        &[
            "conclude",
            "notes",
            "deferred",
            "fold",
            "run",
            "lanes",
            "plan",
            "settle",
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
            "span",
            "delivery",
            "shard",
            "frontier",
            "counts",
            "on_failure",
            "checkpoints",
            "error",
            "progress",
            "sam_template",
            "mapping_settings",
            "stop",
            "filter_criteria",
            "reader",
            "get_records",
        ],
    ),
    (
        "handlers/src/reactions/provider_rating",
        &[
            "rating_reconcile",
            "rating_memory",
            "rating_fold",
            "booking_slots",
            "rules",
        ],
    ),
    (
        "handlers/src/reactions/thread_stats",
        &["thread_reconcile", "message_states"],
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

/// A batch's steps are types of their own rooms (issue 43): the `Worker` has its methods only
/// where it is defined, so no room's edge is the whole worker.
#[test]
fn the_worker_has_methods_only_in_its_own_room() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let elsewhere: Vec<String> = files
        .iter()
        .filter(|file| !file.ends_with("batch/mod.rs"))
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            text.lines()
                .any(|line| line.trim_start().starts_with("impl Worker"))
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        elsewhere.is_empty(),
        "impl Worker outside src/batch/mod.rs: {elsewhere:?}"
    );
}

#[test]
fn the_room_check_reads_grouped_and_multi_line_imports() {
    assert_eq!(
        super_names(
            "use super::{lanes, BatchOptions,\n    run::Ran};\n// super::window\nsuper::plan::Plan"
        ),
        vec!["lanes", "BatchOptions", "run", "plan"]
    );
}

/// The embedded tables (issue 42): the crate knows nothing of the worker (its API is tables,
/// items and keys).
#[test]
fn the_embedded_tables_stand_alone() {
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
}

/// The source folders of the three crates: every folder below them is checked.
const CRATE_SOURCES: &[&str] = &["src", "handlers/src", "embedded-tables/src"];

/// Names any number of files may share: a folder's front, a crate's root, a folder's errors.
const SHARED_NAMES: &[&str] = &["mod.rs", "lib.rs", "main.rs", "error.rs"];

#[test]
fn no_two_files_share_a_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for source in CRATE_SOURCES {
        let mut files = Vec::new();
        rust_files(&root.join(source), &mut files);
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if !SHARED_NAMES.contains(&name.as_str()) {
                let shown = file.strip_prefix(root).unwrap().display().to_string();
                by_name.entry(name).or_default().push(shown);
            }
        }
    }
    let shared: Vec<String> = by_name
        .into_values()
        .filter(|files| files.len() > 1)
        .map(|mut files| {
            files.sort();
            files.join(" and ")
        })
        .collect();
    assert!(
        shared.is_empty(),
        "files that share a name:\n{}",
        shared.join("\n")
    );
}

/// A module's path inside its crate (`batch/run`; a folder's `mod.rs` is the folder, the
/// crate's root is ""), from a file's path under the crate's sources.
fn module_of(sources: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(sources).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("/")
}

/// The module a path names, from `base` (a module) and the names after it (`a::b::Item`): the
/// longest run of names that is a module.
fn resolve(modules: &BTreeSet<String>, base: &str, names: &[String]) -> String {
    let mut found = base.to_string();
    let mut current = base.to_string();
    for name in names {
        current = if current.is_empty() {
            name.clone()
        } else {
            format!("{current}/{name}")
        };
        if !modules.contains(&current) {
            break;
        }
        found = current.clone();
    }
    found
}

/// The paths a file's code starts with `prefix` (`crate::`, `super::`), each as its names
/// (`crate::a::b::C` gives `[a, b, C]`; `super::{a, b::c}` gives `[a]` and `[b, c]`).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let names = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|part| {
                part.trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|name| !name.is_empty())
            .collect()
    };
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // the end of a longer name (`my_crate::`)
        }
        match rest.strip_prefix('{') {
            Some(group) => {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                found.extend(inner.split(',').map(names));
            }
            None => {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                found.push(names(&rest[..end]));
                rest = &rest[end..];
            }
        }
    }
    found.retain(|path| !path.is_empty());
    found
}

/// Every module's imports inside its crate, as `(from, to)` modules.
fn module_imports(sources: &Path) -> (BTreeSet<String>, Vec<(String, String, String)>) {
    let mut files = Vec::new();
    rust_files(sources, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(sources, f)).collect();
    let mut imports = Vec::new();
    for file in &files {
        let from = module_of(sources, file);
        let code: String = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let is_front = matches!(
            file.file_name().and_then(|n| n.to_str()),
            Some("mod.rs" | "lib.rs" | "main.rs")
        );
        let own = from.clone();
        let mut named = Vec::new();
        for path in paths_after(&code, "crate::") {
            named.push(resolve(&modules, "", &path));
        }
        // A file's inline test module (at its end, by custom) is one module further down:
        // its `super` is the file's own module.
        let (outer, inner) = code.split_at(code.find("mod tests {").unwrap_or(code.len()));
        let in_tests = format!("{own}/tests");
        let supers = (paths_after(outer, "super::").into_iter())
            .map(|path| (&own, path))
            .chain(
                paths_after(inner, "super::")
                    .into_iter()
                    .map(|path| (&in_tests, path)),
            );
        for (from_module, mut path) in supers {
            // One module up from where the path is, and one more per `super::` after it.
            let mut base = from_module.clone();
            path.insert(0, "super".to_string());
            while path.first().is_some_and(|name| name == "super") {
                path.remove(0);
                base.truncate(base.rfind('/').unwrap_or(0));
            }
            named.push(resolve(&modules, &base, &path));
        }
        if is_front {
            for path in paths_after(&code, "self::") {
                named.push(resolve(&modules, &own, &path));
            }
        }
        let shown = file.display().to_string();
        imports.extend(
            named
                .into_iter()
                .map(|to| (from.clone(), to, shown.clone())),
        );
    }
    (modules, imports)
}

/// The child of `folder` that holds `module`, if `module` is below `folder`.
fn child_of(folder: &str, module: &str) -> Option<String> {
    let rest = if folder.is_empty() {
        module
    } else {
        module.strip_prefix(folder)?.strip_prefix('/')?
    };
    let child = rest.split('/').next().filter(|c| !c.is_empty())?;
    Some(if folder.is_empty() {
        child.to_string()
    } else {
        format!("{folder}/{child}")
    })
}

/// A circle among `edges`, as the modules on it, if there is one.
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut circle = stack[at..].to_vec();
                circle.push(node.to_string());
                return Some(circle);
            }
            _ => {}
        }
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, state, stack) {
                return Some(circle);
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, edges, &mut state, &mut Vec::new()) {
            return Some(circle);
        }
    }
    None
}

/// In every folder of every crate (the crate's root included), the rooms import no circle: a
/// room's imports, its own rooms' included, point one way. The folder's front (`mod.rs`) may
/// name any room, and a room what the front defines (the front is not a room).
#[test]
fn no_import_circle_in_any_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut circles = Vec::new();
    let mut folders_checked = 0;
    for source in CRATE_SOURCES {
        let (modules, imports) = module_imports(&root.join(source));
        let folders: BTreeSet<String> = std::iter::once(String::new())
            .chain(
                modules
                    .iter()
                    .filter(|m| {
                        modules
                            .iter()
                            .any(|other| other.starts_with(&format!("{m}/")))
                    })
                    .cloned(),
            )
            .collect();
        for folder in &folders {
            folders_checked += 1;
            let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let mut seen_in: BTreeMap<(String, String), String> = BTreeMap::new();
            for (from, to, file) in &imports {
                let (Some(a), Some(b)) = (child_of(folder, from), child_of(folder, to)) else {
                    continue;
                };
                if a != b {
                    seen_in
                        .entry((a.clone(), b.clone()))
                        .or_insert(file.clone());
                    edges.entry(a).or_default().insert(b);
                }
            }
            if let Some(circle) = find_circle(&edges) {
                let files: Vec<String> = circle
                    .windows(2)
                    .map(|pair| seen_in[&(pair[0].clone(), pair[1].clone())].clone())
                    .collect();
                circles.push(format!(
                    "{source}: {} (in {})",
                    circle.join(" -> "),
                    files.join(", ")
                ));
            }
        }
    }
    // Every folder of the three crates, and their roots.
    assert!(folders_checked >= 17, "only {folders_checked} folders seen");
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_check_resolves_paths_to_modules() {
    let modules: BTreeSet<String> = ["batch", "batch/run", "stream"]
        .iter()
        .map(|m| m.to_string())
        .collect();
    let path = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
    assert_eq!(resolve(&modules, "", &path("batch::run::Ran")), "batch/run");
    assert_eq!(resolve(&modules, "", &path("batch::Worker")), "batch");
    assert_eq!(resolve(&modules, "batch", &path("run")), "batch/run");
    assert_eq!(
        paths_after("use super::{run::Ran, lanes};\nsuper::super::x", "super::"),
        vec![path("run::Ran"), path("lanes"), path("super::x")]
    );
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(find_circle(&edges), Some(path("a::b::a")));
    assert_eq!(
        child_of("batch", "batch/run/x"),
        Some("batch/run".to_string())
    );
    assert_eq!(child_of("batch", "batch"), None);
}
