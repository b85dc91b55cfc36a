//! Tests that hold `host/src` to the project's structural rules (docs/architecture.md): only
//! `provider/` names wasmtime, no two public types share a name, no function outside tests is
//! longer than 80 lines, no import cycle joins two files or two top-level modules, and only
//! `environment.rs` reads the process environment.
//!
//! They read the source as text: comments, string literals and `#[cfg(test)]` items are blanked
//! first, then `use` trees and qualified paths (`crate::…`, `super::…`, imported module names)
//! give the edges between files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// Longest function allowed outside tests, in lines from `fn` to its closing brace.
const MAX_FUNCTION_LINES: usize = 80;

/// One source file of the library.
struct SourceFile {
    /// Path under `host/src`, e.g. `lease/access.rs`.
    rel: String,
    /// Its module path, e.g. `["lease", "access"]` (empty for `lib.rs`).
    module: Vec<String>,
    /// The code, with comments, literals and test items blanked (lines kept).
    code: String,
}

fn sources() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // The binary's two lines, and these tests themselves.
            if !rel.ends_with(".rs") || rel == "main.rs" || rel == "tree_rules.rs" {
                continue;
            }
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(String::from)
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.push(SourceFile {
                rel,
                module,
                code: blank_tests(&strip(&text)),
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// `text` with comments and string and character literals replaced by spaces (newlines kept).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|c| *c == b'\n')
                .map_or(b.len(), |e| i + e);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some(end) = raw_string_end(b, i) {
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|c| *c == b'\'')
                    .map(|e| i + 2 + e + 1)
            } else {
                let ch = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch) == Some(&b'\'')).then_some(i + 2 + ch)
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The end of a raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i`, if one does.
fn raw_string_end(b: &[u8], i: usize) -> Option<usize> {
    let start = if b[i..].starts_with(b"br") {
        i + 2
    } else if b[i] == b'r' {
        i + 1
    } else {
        return None;
    };
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
        return None;
    }
    let hashes = b[start..].iter().take_while(|c| **c == b'#').count();
    if b.get(start + hashes) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = start + hashes + 1;
    b[body..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map(|p| body + p + close.len())
}

/// The index of the brace closing the one at `open`.
fn closing_brace(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// `code` with every `#[cfg(test)]` item blanked.
fn blank_tests(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(test)]").map(|p| from + p) {
        let b = code.as_bytes();
        let end = match b[at..].iter().position(|c| *c == b'{' || *c == b';') {
            Some(p) if b[at + p] == b'{' => closing_brace(b, at + p).map_or(b.len(), |e| e + 1),
            Some(p) => at + p + 1,
            None => b.len(),
        };
        for c in &mut out[at..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether the word at `at..at+len` stands alone (not part of a longer identifier or path).
fn word_at(b: &[u8], at: usize, len: usize) -> bool {
    let before = at == 0 || !(is_ident(b[at - 1]) || b[at - 1] == b':');
    let after = b.get(at + len).is_none_or(|c| !is_ident(*c));
    before && after
}

#[test]
fn only_provider_names_wasmtime() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|f| f.module.first().is_none_or(|m| m != "provider"))
        .filter(|f| {
            let b = f.code.as_bytes();
            f.code
                .match_indices("wasmtime")
                .any(|(at, w)| word_at(b, at, w.len()))
        })
        .map(|f| f.rel)
        .collect();
    assert!(
        offenders.is_empty(),
        "only provider/ may name wasmtime; also: {offenders:?}"
    );
}

#[test]
fn no_two_public_types_share_a_name() {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in sources() {
        let b = f.code.as_bytes();
        for kind in ["pub struct ", "pub enum ", "pub trait ", "pub type "] {
            let mut from = 0;
            while let Some(at) = f.code[from..].find(kind).map(|p| from + p) {
                from = at + kind.len();
                if !word_at(b, at, 3) {
                    continue;
                }
                let name: String = f.code[from..]
                    .bytes()
                    .take_while(|c| is_ident(*c))
                    .map(char::from)
                    .collect();
                seen.entry(name).or_default().push(f.rel.clone());
            }
        }
    }
    let shared: Vec<_> = seen
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .collect();
    assert!(shared.is_empty(), "public types sharing a name: {shared:?}");
}

/// Every function outside tests, with where it is and how many lines it has.
fn functions() -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for f in sources() {
        let b = f.code.as_bytes();
        let mut from = 0;
        while let Some(at) = f.code[from..].find("fn ").map(|p| from + p) {
            from = at + 3;
            if !word_at(b, at, 2) {
                continue;
            }
            // The body, unless a `;` comes first (a declaration without one).
            let Some(p) = b[at..].iter().position(|c| *c == b'{' || *c == b';') else {
                continue;
            };
            if b[at + p] == b';' {
                continue;
            }
            let Some(end) = closing_brace(b, at + p) else {
                continue;
            };
            let line = |i: usize| f.code[..i].matches('\n').count() + 1;
            let name: String = f.code[from..]
                .bytes()
                .take_while(|c| is_ident(*c))
                .map(char::from)
                .collect();
            out.push((
                format!("{}::{name}", f.rel),
                line(at),
                line(end) - line(at) + 1,
            ));
        }
    }
    out
}

#[test]
fn no_function_outside_tests_is_over_80_lines() {
    let mut functions = functions();
    assert!(functions.len() > 100, "the scan found too few functions");
    functions.sort_by_key(|(_, _, lines)| std::cmp::Reverse(*lines));
    println!("the longest functions: {:?}", &functions[..5]);
    let long: Vec<_> = functions
        .iter()
        .filter(|(_, _, lines)| *lines > MAX_FUNCTION_LINES)
        .collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines: {long:?}"
    );
}

#[test]
fn only_environment_rs_reads_the_environment() {
    let reads = [
        "env::var(",
        "env::var_os(",
        "env::vars(",
        "env::vars_os(",
        "env::temp_dir(",
        "env::home_dir(",
        "EnvFilter::try_from_env",
        "EnvFilter::from_default_env",
    ];
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|f| f.rel != "environment.rs")
        .filter(|f| reads.iter().any(|r| f.code.contains(r)))
        .map(|f| f.rel)
        .collect();
    assert!(
        offenders.is_empty(),
        "read the environment through environment::Environment: {offenders:?}"
    );
}

/// The modules `code` refers to: every `use` tree and qualified path starting with `crate`,
/// `super`, `self` or a module name a `use` brought in, as absolute module paths.
fn references(file: &SourceFile) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    for (path, alias) in use_trees(&file.code) {
        if let Some(abs) = absolute(file, &path) {
            aliases.insert(alias, abs.clone());
            paths.push(abs);
        }
    }
    let b = file.code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_ident(b[i]) || (i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let path = path_at(b, i);
        let step = path.iter().map(|s| s.len() + 2).sum::<usize>().max(1);
        if path.len() > 1 {
            let abs = match path[0].as_str() {
                "crate" | "super" | "self" => absolute(file, &path),
                head => aliases.get(head).map(|a| {
                    let mut a = a.clone();
                    a.extend(path[1..].iter().cloned());
                    a
                }),
            };
            paths.extend(abs);
        }
        i += step;
    }
    paths
}

/// The `a::b::c` path starting at `i`.
fn path_at(b: &[u8], mut i: usize) -> Vec<String> {
    let mut path = Vec::new();
    loop {
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        if start == i {
            break;
        }
        path.push(String::from_utf8_lossy(&b[start..i]).into_owned());
        if b[i..].starts_with(b"::") && b.get(i + 2).is_some_and(|c| is_ident(*c)) {
            i += 2;
        } else {
            break;
        }
    }
    path
}

/// Every path a `use` item names, with the name it is imported as.
fn use_trees(code: &str) -> Vec<(Vec<String>, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("use ").map(|p| from + p) {
        from = at + 4;
        if !word_at(b, at, 3) {
            continue;
        }
        let Some(end) = code[at..].find(';').map(|e| at + e) else {
            break;
        };
        let tokens = tokenize(&code[at + 4..end]);
        let mut pos = 0;
        expand(&tokens, &mut pos, &[], &mut out);
        from = end;
    }
    out
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if is_ident(b[i]) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            tokens.push(text[start..i].to_string());
        } else if b[i..].starts_with(b"::") {
            i += 2;
        } else if b"{},*".contains(&b[i]) {
            tokens.push(char::from(b[i]).to_string());
            i += 1;
        } else {
            i += 1;
        }
    }
    tokens
}

/// Expands one use tree at `pos` under `prefix`.
fn expand(
    tokens: &[String],
    pos: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, String)>,
) {
    let mut path = prefix.to_vec();
    while *pos < tokens.len() {
        let t = tokens[*pos].clone();
        *pos += 1;
        match t.as_str() {
            "{" => {
                while *pos < tokens.len() && tokens[*pos] != "}" {
                    expand(tokens, pos, &path, out);
                    if tokens.get(*pos).is_some_and(|t| t == ",") {
                        *pos += 1;
                    }
                }
                *pos += 1;
                return;
            }
            "," | "}" => {
                *pos -= 1;
                break;
            }
            "*" => {}
            "as" => {
                let alias = tokens.get(*pos).cloned().unwrap_or_default();
                *pos += 1;
                out.push((path.clone(), alias));
                return;
            }
            "self" if !path.is_empty() => {}
            _ => path.push(t),
        }
    }
    if let Some(last) = path.last() {
        out.push((path.clone(), last.clone()));
    }
}

/// `path` (starting with `crate`, `super` or `self`) as an absolute module path from `file`.
fn absolute(file: &SourceFile, path: &[String]) -> Option<Vec<String>> {
    let mut here = file.module.clone();
    let mut rest = path;
    match rest.first()?.as_str() {
        "crate" => {
            here.clear();
            rest = &rest[1..];
        }
        "self" => rest = &rest[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                here.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    here.extend(rest.iter().cloned());
    Some(here)
}

/// The file defining the longest prefix of `path` that is a module.
fn file_of(path: &[String], files: &HashMap<Vec<String>, usize>) -> Option<usize> {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n]).copied())
}

/// The strongly connected components of more than one node (cycles), by Tarjan's algorithm.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        w.on_stack.insert(v);
        for u in w.edges.get(v).into_iter().flatten() {
            let u = u.as_str();
            if !w.index.contains_key(u) {
                visit(w, u);
                let low = w.low[v].min(w.low[u]);
                w.low.insert(v, low);
            } else if w.on_stack.contains(u) {
                let low = w.low[v].min(w.index[u]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(u) = w.stack.pop() {
                w.on_stack.remove(u);
                component.push(u.to_string());
                if u == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut w = Walk {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}

/// The edges between files, and between top-level modules (a folder or a file of `src`).
fn import_graphs() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let files = sources();
    let index: HashMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let top = |f: &SourceFile| f.module.first().cloned().unwrap_or_else(|| "lib".into());
    let mut by_file: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        by_file.entry(f.rel.clone()).or_default();
        for path in references(f) {
            let Some(to) = file_of(&path, &index).map(|i| &files[i]) else {
                continue;
            };
            if to.rel == f.rel || to.module.is_empty() {
                continue;
            }
            by_file
                .entry(f.rel.clone())
                .or_default()
                .insert(to.rel.clone());
            if top(to) != top(f) {
                by_top.entry(top(f)).or_default().insert(top(to));
            }
        }
    }
    (by_file, by_top)
}

#[test]
fn no_import_cycles_between_files_or_folders() {
    let (by_file, by_top) = import_graphs();
    let edges: usize = by_file.values().map(BTreeSet::len).sum();
    assert!(edges > 100, "the scan found too few imports ({edges})");
    assert!(
        by_file["lease/access.rs"].contains("ssh/mod.rs"),
        "the scan misses imports: {:?}",
        by_file["lease/access.rs"]
    );
    println!("top-level imports: {by_top:?}");
    assert_eq!(
        cycles(&by_file),
        Vec::<Vec<String>>::new(),
        "files import each other"
    );
    assert_eq!(
        cycles(&by_top),
        Vec::<Vec<String>>::new(),
        "folders import each other"
    );
    // The leaves stay leaves (`terminal`, which every output path uses, imports nothing).
    for leaf in [
        "ssh",
        "diagnostic",
        "environment",
        "provenance",
        "error",
        "redact",
        "progress",
        "terminal",
    ] {
        let reaches: BTreeSet<&String> = by_top
            .get(leaf)
            .into_iter()
            .flatten()
            .filter(|t| {
                ![
                    "error",
                    "paths",
                    "progress",
                    "redact",
                    "remote",
                    "environment",
                    "terminal",
                ]
                .contains(&t.as_str())
            })
            .collect();
        assert!(reaches.is_empty(), "{leaf} imports {reaches:?}");
    }
    assert_eq!(
        by_top.get("terminal"),
        None,
        "terminal must import nothing of cbx"
    );
}

#[test]
fn the_scanner_sees_what_it_must() {
    let code = strip("let s = \"use crate::x;\"; // crate::y\nlet c = '\\'';\nfn f<'a>() {}\n");
    assert!(
        !code.contains("crate::x") && !code.contains("crate::y"),
        "{code}"
    );
    assert!(code.contains("fn f<'a>() {}"), "{code}");
    let trees = use_trees("use crate::{a::{self, B}, c as d};");
    let names: Vec<String> = trees
        .iter()
        .map(|(p, a)| format!("{}={a}", p.join("::")))
        .collect();
    assert_eq!(names, ["crate::a=a", "crate::a::B=B", "crate::c=d"]);
    let blanked = blank_tests("fn a() {}\n#[cfg(test)]\nmod tests {\n fn b() {}\n}\nfn c() {}\n");
    assert!(
        !blanked.contains("fn b") && blanked.contains("fn c"),
        "{blanked}"
    );
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&edges), [["a".to_string(), "b".to_string()]]);
}
