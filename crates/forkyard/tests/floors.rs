//! The library's floors: each module uses only modules on floors below its own, so there is
//! no cycle and each floor can be read (and tested) without the ones above it. This test reads
//! the sources and fails on a `crate::` path that climbs, or that goes through a re-export at
//! the crate root (which hides where an item lives). docs/architecture.md explains the floors.

use std::path::Path;

/// Lowest first. A module may use its own floor's modules only if listed here as lower.
const FLOORS: &[&[&str]] = &[
    &["pid", "users"],
    &["sys"],
    &["signal::number"],
    &["status"],
    &["error"],
    &["signal"],
    &["child", "time", "subreaper", "procs"],
    &["fork", "spawn", "reap"],
    &["pool", "async_child"],
];

/// The crate root: it only declares the modules and re-exports their items.
const EXEMPT: &[&str] = &["lib"];

fn floor(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

/// The module a source file belongs to: `reap/pidfd.rs` is part of `reap`.
fn module_of(relative: &Path) -> String {
    let parts: Vec<String> = relative.with_extension("").iter().map(|p| p.to_string_lossy().into_owned()).collect();
    match parts.as_slice() {
        [one] => one.clone(),
        [dir, file] if dir == "signal" && file == "number" => "signal::number".into(),
        [dir, ..] => dir.clone(),
        [] => String::new(),
    }
}

/// The modules named by `crate::` paths in code (comments are skipped).
fn uses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let name =
                if name == "signal" && rest.starts_with("signal::number") { "signal::number".into() } else { name };
            found.push(name);
        }
        // `use crate::{a, b}` names modules (or root items) inside braces.
        if let Some(list) = line.trim_start().strip_prefix("use crate::{") {
            for item in list.trim_end_matches("};").split(',') {
                found.push(item.split("::").next().unwrap_or_default().trim().to_string());
            }
        }
    }
    found.retain(|n| !n.is_empty() && n != "{");
    found
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut climbs = Vec::new();
    for file in files {
        let module = module_of(file.strip_prefix(&src).expect("under src"));
        if EXEMPT.contains(&module.as_str()) {
            continue;
        }
        let mine = floor(&module).unwrap_or_else(|| panic!("module {module} is on no floor: add it to FLOORS"));
        let text = std::fs::read_to_string(&file).expect("read");
        for used in uses(&text) {
            if used == module {
                continue;
            }
            match floor(&used) {
                Some(theirs) if theirs < mine => {}
                Some(_) => climbs.push(format!("{module} uses {used}, which is not below it")),
                None => climbs.push(format!("{module} uses crate::{used}: name the module that defines it")),
            }
        }
    }
    assert!(climbs.is_empty(), "floors broken:\n{}", climbs.join("\n"));
}
