//! The workspace's module structure: no crate has an import cycle between its modules.
//!
//! Run: `cargo test -p tether-tests --test structure` (no root, no built binaries; it reads the
//! sources).
//!
//! # What counts as a cycle
//! - **Nodes**: the modules of one crate target (`src/lib.rs` or `src/main.rs` and every module
//!   reachable from it through `mod` declarations, `#[path]` honoured, `foo.rs` + `foo/` and
//!   `foo/mod.rs` alike). An inline `mod x { .. }` is a module of its own.
//! - **Edges**: A → B when A's code names a path into B: `use crate::b::..`, `use super::..`,
//!   `use self::c::..`, `use c::..` for a child `c` of A, and the same paths in expressions and
//!   types (`crate::b::f()`, `super::f()`, `c::f()`). The target is the deepest module the path
//!   names (`crate::netlink::link::Link` is `netlink::link`); `super::Item` is the parent. A
//!   child's references to its parent are edges like any other.
//! - **Not edges**: `mod c;` declarations, and re-exports (`pub use`, any visibility) of a
//!   module's own descendants: a parent that only declares and re-exports its children is not
//!   in a cycle with them. A re-export of anything else (a sibling, the parent) is an edge.
//! - **Left out**: items under `#[cfg(test)]` (test modules inline or in files, test-only
//!   helpers): tests may reach anywhere. Comments and string literals are not code.
//! - **A cycle** is a strongly connected component of two or more modules; the failure names one
//!   cycle through each component with the file and line of every edge. A child calling into
//!   its parent's other children while the parent calls the child is one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Rust source as tokens, without comments; string and char literals are single tokens.
fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let push = |out: &mut Vec<Token>, tok, line| out.push(Token { tok, line });
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some((len, text)) = raw_string(&chars[i..]) {
            line += text.matches('\n').count();
            push(&mut out, Tok::Str(text), line);
            i += len;
        } else if c == '"' || (c == 'b' && next == Some('"')) {
            let start_line = line;
            i += if c == 'b' { 2 } else { 1 };
            let mut text = String::new();
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    line += usize::from(ch == '\n');
                    text.push(ch);
                }
                i += 1;
            }
            push(&mut out, Tok::Str(text), start_line);
            i += 1;
        } else if c == '\'' || (c == 'b' && next == Some('\'')) {
            // a char literal ('x', '\n', b'x') or a lifetime ('a)
            let q = if c == 'b' { i + 1 } else { i };
            if chars.get(q + 1) == Some(&'\\') {
                i = q + 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(q + 2) == Some(&'\'') {
                i = q + 3;
            } else {
                i = q + 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            push(&mut out, Tok::Ident(chars[start..i].iter().collect()), line);
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            push(&mut out, Tok::PathSep, line);
            i += 2;
        } else {
            push(&mut out, Tok::Punct(c), line);
            i += 1;
        }
    }
    out
}

/// `r"..."`, `r#"..."#`, `br"..."`: its length in chars and its text.
fn raw_string(s: &[char]) -> Option<(usize, String)> {
    let mut i = usize::from(s.first() == Some(&'b'));
    if s.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = s[i..].iter().take_while(|c| **c == '#').count();
    i += hashes;
    if s.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    let start = i;
    while i < s.len() {
        if s[i] == '"' && s[i + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes {
            return Some((i + 1 + hashes, s[start..i].iter().collect()));
        }
        i += 1;
    }
    None
}

fn is_ident(t: Option<&Token>, name: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(s), .. }) if s == name)
}

fn is_punct(t: Option<&Token>, c: char) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(p), .. }) if *p == c)
}

/// The index just past the bracketed group opening at `open` (`(`, `[` or `{`).
fn group_end(toks: &[Token], open: usize) -> usize {
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// The index just past the `;` that ends the statement starting at `start` (`use a::{b, c};`).
fn statement_end(toks: &[Token], start: usize) -> usize {
    let mut i = start;
    while i < toks.len() {
        match toks[i].tok {
            Tok::Punct(';') => return i + 1,
            Tok::Punct('(' | '[' | '{') => i = group_end(toks, i),
            _ => i += 1,
        }
    }
    toks.len()
}

/// The index just past the item starting at `start`: its `;` or its outermost `{ .. }`.
fn item_end(toks: &[Token], start: usize) -> usize {
    let mut i = start;
    while i < toks.len() {
        match toks[i].tok {
            Tok::Punct(';') => return i + 1,
            Tok::Punct('{') => return group_end(toks, i),
            Tok::Punct('(' | '[') => i = group_end(toks, i),
            _ => i += 1,
        }
    }
    toks.len()
}

// ---------------------------------------------------------------------------------------------
// The module tree

type ModPath = Vec<String>;

#[derive(Debug)]
struct Module {
    file: PathBuf,
    /// The module's own code: without its child modules and without `#[cfg(test)]` items.
    code: Vec<Token>,
    /// The names of the items it defines at its top level (what a glob import of it brings).
    defined: BTreeSet<String>,
    /// Its re-exports: the name, and the path it stands for.
    reexports: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default)]
struct Crate {
    name: String,
    /// Files are shown relative to this directory.
    base: PathBuf,
    modules: BTreeMap<ModPath, Module>,
}

fn show(path: &ModPath) -> String {
    if path.is_empty() {
        "crate".to_string()
    } else {
        path.join("::")
    }
}

impl Crate {
    /// The crate whose root file is `root`, its files shown relative to `base`.
    fn load(name: &str, root: &Path, base: &Path) -> Result<Crate, String> {
        let mut krate = Crate { name: name.to_string(), base: base.to_path_buf(), modules: BTreeMap::new() };
        let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
        krate.load_file(root, Vec::new(), &dir)?;
        Ok(krate)
    }

    /// Load the file of module `path`; its non-inline children live in `child_dir`.
    fn load_file(&mut self, file: &Path, path: ModPath, child_dir: &Path) -> Result<(), String> {
        let src = fs::read_to_string(file).map_err(|e| format!("read {}: {e}", file.display()))?;
        self.load_tokens(file, path, child_dir, &tokenize(&src))
    }

    fn load_tokens(&mut self, file: &Path, path: ModPath, child_dir: &Path, toks: &[Token]) -> Result<(), String> {
        let mut code = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            // attributes: remember #[cfg(test)] and #[path = ".."]
            let (mut test_only, mut path_attr, mut j) = (false, None, i);
            while is_punct(toks.get(j), '#') && is_punct(toks.get(j + 1), '[') {
                let end = group_end(toks, j + 1);
                let attr = &toks[j + 2..end - 1];
                test_only |= attr.len() == 4
                    && is_ident(attr.first(), "cfg")
                    && is_ident(attr.get(2), "test")
                    && is_punct(attr.get(3), ')');
                if is_ident(attr.first(), "path") {
                    if let Some(Token { tok: Tok::Str(p), .. }) = attr.get(2) {
                        path_attr = Some(p.clone());
                    }
                }
                j = end;
            }
            if test_only {
                i = item_end(toks, j);
                continue;
            }
            // `[pub[(..)]] mod name ;` or `mod name { .. }`
            let mut k = j;
            if is_ident(toks.get(k), "pub") {
                k += 1;
                if is_punct(toks.get(k), '(') {
                    k = group_end(toks, k);
                }
            }
            if is_ident(toks.get(k), "mod") {
                if let Some(Token { tok: Tok::Ident(name), .. }) = toks.get(k + 1) {
                    let mut child = path.clone();
                    child.push(name.clone());
                    if is_punct(toks.get(k + 2), ';') {
                        let candidates = match &path_attr {
                            Some(p) => vec![file.parent().unwrap_or(Path::new(".")).join(p)],
                            None => vec![child_dir.join(format!("{name}.rs")), child_dir.join(name).join("mod.rs")],
                        };
                        let found = candidates.iter().find(|c| c.is_file()).ok_or_else(|| {
                            format!("{}: module {} declared but none of {candidates:?} exists", file.display(), name)
                        })?;
                        // `foo/mod.rs` keeps its children beside it, `foo.rs` in `foo/`
                        let dir = found.parent().unwrap_or(Path::new("."));
                        let grandchildren = if found.ends_with("mod.rs") { dir.to_path_buf() } else { dir.join(name) };
                        self.load_file(found, child, &grandchildren)?;
                        i = k + 3;
                        continue;
                    }
                    if is_punct(toks.get(k + 2), '{') {
                        let end = group_end(toks, k + 2);
                        self.load_tokens(file, child, &child_dir.join(name), &toks[k + 3..end - 1])?;
                        i = end;
                        continue;
                    }
                }
            }
            let next = if j > i { j } else { i + 1 };
            code.extend_from_slice(&toks[i..next]);
            i = next;
        }
        let (defined, reexports) = (defined_items(&code), reexports(&code));
        self.modules.insert(path, Module { file: file.to_path_buf(), code, defined, reexports });
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// References

/// One edge: from a module to another, first seen at a line of the source.
#[derive(Debug, Clone)]
struct Edge {
    to: ModPath,
    file: PathBuf,
    line: usize,
}

/// The paths of a `use` tree (`a::{b, c::{self, d}}`), each with the line it starts on.
fn use_paths(toks: &[Token], prefix: &[String], out: &mut Vec<(Vec<String>, usize)>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].tok {
            Tok::Ident(s) if s == "as" => {
                i += 2; // the alias
                continue;
            }
            Tok::Ident(s) if s == "self" && !path.is_empty() => {} // `a::{self}`: `a` itself
            Tok::Ident(s) => path.push(s.clone()),
            Tok::Punct('*') => path.push("*".to_string()),
            Tok::Punct('{') => {
                let end = group_end(toks, i);
                let inner = &toks[i + 1..end - 1];
                let mut start = 0;
                for (k, _) in inner.iter().enumerate().filter(|(k, t)| {
                    t.tok == Tok::Punct(',') && inner[..*k].iter().fold(0i32, |d, t| d + depth_change(t)) == 0
                }) {
                    use_paths(&inner[start..k], &path, out);
                    start = k + 1;
                }
                use_paths(&inner[start..], &path, out);
                return;
            }
            _ => {}
        }
        i += 1;
    }
    if path.len() > prefix.len() || (!path.is_empty() && toks.iter().any(|t| is_ident(Some(t), "self"))) {
        out.push((path, toks.first().map_or(0, |t| t.line)));
    }
}

fn depth_change(t: &Token) -> i32 {
    match t.tok {
        Tok::Punct('{') => 1,
        Tok::Punct('}') => -1,
        _ => 0,
    }
}

/// The names after `fn`, `struct`, `enum`, ... at the top level of a module's code.
fn defined_items(code: &[Token]) -> BTreeSet<String> {
    const KEYWORDS: [&str; 8] = ["fn", "struct", "enum", "const", "static", "type", "trait", "union"];
    let mut names = BTreeSet::new();
    let mut depth = 0i32;
    for (i, t) in code.iter().enumerate() {
        depth += depth_change(t);
        if depth == 0 && KEYWORDS.iter().any(|k| is_ident(Some(t), k)) {
            if let Some(Token { tok: Tok::Ident(name), .. }) = code.get(i + 1) {
                names.insert(name.clone());
            }
        }
    }
    names
}

/// Whether the `use` at `i` is a re-export: `pub use`, `pub(crate) use`, ...
fn is_reexport(code: &[Token], i: usize) -> bool {
    (i >= 1 && is_ident(code.get(i - 1), "pub"))
        || (i >= 1 && is_punct(code.get(i - 1), ')') && {
            let open = code[..i].iter().rposition(|t| t.tok == Tok::Punct('('));
            open.is_some_and(|o| o >= 1 && is_ident(code.get(o - 1), "pub"))
        })
}

/// The re-exported names of a module and the paths they stand for (globs are not followed).
fn reexports(code: &[Token]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < code.len() {
        if is_ident(code.get(i), "use") && is_reexport(code, i) {
            let end = statement_end(code, i);
            let mut paths = Vec::new();
            use_paths(&code[i + 1..end.saturating_sub(1)], &[], &mut paths);
            for (path, _) in paths {
                if let Some(name) = path.last().filter(|n| *n != "*") {
                    out.insert(name.clone(), path.clone());
                }
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

impl Crate {
    /// The module a path used in `from` leads into, if it is one of this crate's. A path through
    /// a re-export (`crate::NftError` for `pub use error::NftError`) leads to the re-exported
    /// item's module.
    fn resolve(&self, from: &ModPath, path: &[String]) -> Option<ModPath> {
        self.resolve_within(from, path, 8)
    }

    fn resolve_within(&self, from: &ModPath, path: &[String], hops: usize) -> Option<ModPath> {
        let mut segs = path.iter().peekable();
        let mut base = match segs.peek()?.as_str() {
            "crate" => {
                segs.next();
                Vec::new()
            }
            "super" | "self" => from.clone(),
            first => {
                let mut child = from.clone();
                child.push(first.to_string());
                if !self.modules.contains_key(&child) {
                    return None;
                }
                segs.next();
                child
            }
        };
        let mut leading = true;
        for seg in segs {
            if leading && seg == "super" {
                base.pop()?;
                continue;
            }
            if leading && seg == "self" {
                continue;
            }
            leading = false;
            let mut deeper = base.clone();
            deeper.push(seg.clone());
            if self.modules.contains_key(&deeper) {
                base = deeper;
                continue;
            }
            if let Some(target) = self.modules.get(&base).and_then(|m| m.reexports.get(seg)).filter(|_| hops > 0) {
                return self.resolve_within(&base, target, hops - 1).or(Some(base));
            }
            break;
        }
        Some(base)
    }

    /// What `use <path>::*` in `from` makes `from` depend on: the glob's module when `from` names
    /// one of the items it defines, and the modules of the re-exports it names.
    fn glob_targets(&self, from: &ModPath, path: &[String]) -> Vec<ModPath> {
        let (Some(target), Some(user)) = (self.resolve(from, path), self.modules.get(from)) else { return Vec::new() };
        let Some(glob) = self.modules.get(&target) else { return Vec::new() };
        let used: BTreeSet<&String> =
            user.code.iter().filter_map(|t| if let Tok::Ident(s) = &t.tok { Some(s) } else { None }).collect();
        let mut targets = Vec::new();
        if glob.defined.iter().any(|name| used.contains(name)) {
            targets.push(target.clone());
        }
        for (name, reexport) in &glob.reexports {
            if used.contains(name) {
                targets.extend(self.resolve(&target, reexport));
            }
        }
        targets
    }

    /// Every module's edges (first occurrence per target).
    fn edges(&self) -> BTreeMap<ModPath, BTreeMap<ModPath, Edge>> {
        let mut graph = BTreeMap::new();
        for (from, module) in &self.modules {
            let mut found: Vec<(Vec<String>, usize, bool)> = Vec::new();
            let toks = &module.code;
            let mut i = 0;
            while i < toks.len() {
                if is_ident(toks.get(i), "use") {
                    let end = statement_end(toks, i);
                    let reexport = is_reexport(toks, i);
                    let mut paths = Vec::new();
                    use_paths(&toks[i + 1..end.saturating_sub(1)], &[], &mut paths);
                    found.extend(paths.into_iter().map(|(p, line)| (p, line, reexport)));
                    i = end;
                    continue;
                }
                let starts_path = matches!(toks[i].tok, Tok::Ident(_))
                    && toks.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep)
                    && !(i >= 1 && toks[i - 1].tok == Tok::PathSep);
                if starts_path {
                    let mut path = Vec::new();
                    let mut k = i;
                    while let Some(Token { tok: Tok::Ident(s), .. }) = toks.get(k) {
                        path.push(s.clone());
                        if toks.get(k + 1).is_some_and(|t| t.tok == Tok::PathSep) {
                            k += 2;
                        } else {
                            break;
                        }
                    }
                    found.push((path, toks[i].line, false));
                    i = k + 1;
                    continue;
                }
                i += 1;
            }
            let mut out: BTreeMap<ModPath, Edge> = BTreeMap::new();
            for (path, line, reexport) in found {
                let targets = if path.last().is_some_and(|s| s == "*") {
                    self.glob_targets(from, &path[..path.len() - 1])
                } else {
                    self.resolve(from, &path).into_iter().collect()
                };
                for to in targets {
                    if to == *from || (reexport && to.starts_with(from)) {
                        continue;
                    }
                    out.entry(to.clone()).or_insert(Edge { to, file: module.file.clone(), line });
                }
            }
            graph.insert(from.clone(), out);
        }
        graph
    }

    /// One description per cycle (strongly connected component of two or more modules).
    fn cycles(&self) -> Vec<String> {
        let graph = self.edges();
        let mut reports = Vec::new();
        for component in components(&graph) {
            let Some(start) = component.iter().next() else { continue };
            let cycle = shortest_cycle(&graph, start, &component);
            let cycle_len = cycle.len();
            let mut text = format!("{}: {}", self.name, show(start));
            for edge in cycle {
                let file = edge.file.strip_prefix(&self.base).unwrap_or(&edge.file);
                text.push_str(&format!(" -> {} ({}:{})", show(&edge.to), file.display(), edge.line));
            }
            if component.len() > cycle_len {
                let all: Vec<String> = component.iter().map(show).collect();
                text.push_str(&format!("; the modules caught in it: {}", all.join(", ")));
            }
            reports.push(text);
        }
        reports
    }
}

/// Tarjan's strongly connected components with more than one node.
fn components(graph: &BTreeMap<ModPath, BTreeMap<ModPath, Edge>>) -> Vec<BTreeSet<ModPath>> {
    struct State<'a> {
        graph: &'a BTreeMap<ModPath, BTreeMap<ModPath, Edge>>,
        index: BTreeMap<&'a ModPath, (usize, usize)>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        out: Vec<BTreeSet<ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        let n = s.index.len();
        s.index.insert(v, (n, n));
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.index[w].1.min(s.index[v].1);
                s.index.entry(v).and_modify(|e| e.1 = low);
            } else if s.on_stack.contains(w) {
                let low = s.index[w].0.min(s.index[v].1);
                s.index.entry(v).and_modify(|e| e.1 = low);
            }
        }
        if s.index[v].0 == s.index[v].1 {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut s = State { graph, index: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), out: Vec::new() };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The shortest cycle from `start` back to itself inside `component` (breadth first).
fn shortest_cycle(
    graph: &BTreeMap<ModPath, BTreeMap<ModPath, Edge>>,
    start: &ModPath,
    component: &BTreeSet<ModPath>,
) -> Vec<Edge> {
    let mut came_from: BTreeMap<ModPath, Edge> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    let mut prev: BTreeMap<ModPath, ModPath> = BTreeMap::new();
    while let Some(v) = queue.pop_front() {
        for (w, edge) in graph.get(&v).into_iter().flatten() {
            if !component.contains(w) || came_from.contains_key(w) {
                continue;
            }
            came_from.insert(w.clone(), edge.clone());
            prev.insert(w.clone(), v.clone());
            if w == start {
                let mut path = vec![edge.clone()];
                let mut at = v.clone();
                while at != *start {
                    path.push(came_from[&at].clone());
                    at = prev[&at].clone();
                }
                path.reverse();
                return path;
            }
            queue.push_back(w.clone());
        }
    }
    Vec::new()
}

// ---------------------------------------------------------------------------------------------
// The workspace

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("..")).to_path_buf()
}

/// `(package name, crate root file)` of every lib and main target of every workspace member.
fn workspace_targets() -> Vec<(String, PathBuf)> {
    let root = workspace_root();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let members = manifest.split("members").nth(1).and_then(|s| s.split(']').next()).unwrap_or_default();
    let mut targets = Vec::new();
    for member in members.split('"').skip(1).step_by(2) {
        let dir = root.join(member);
        let cargo = fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        let name = cargo
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = \""))
            .and_then(|l| l.split('"').next())
            .unwrap_or(member)
            .to_string();
        for (file, kind) in [("src/lib.rs", "lib"), ("src/main.rs", "bin")] {
            if dir.join(file).is_file() {
                targets.push((format!("{name} ({kind})"), dir.join(file)));
            }
        }
    }
    targets
}

/// The cycles of every workspace target whose name does not start with one of `skip`.
fn workspace_cycles(skip: &[&str]) -> Vec<String> {
    let targets = workspace_targets();
    assert!(targets.len() >= 8, "found only {targets:?}: is the workspace manifest still read right?");
    let mut cycles = Vec::new();
    for (name, root) in targets.iter().filter(|(n, _)| !skip.iter().any(|s| n.starts_with(&format!("{s} ")))) {
        let krate = Crate::load(name, root, &workspace_root()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!krate.modules.is_empty());
        cycles.extend(krate.cycles());
    }
    cycles
}

#[test]
fn no_crate_has_an_import_cycle() {
    let cycles = workspace_cycles(&[]);
    assert!(cycles.is_empty(), "import cycles (see this file's doc for the rules):\n{}", cycles.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The rules, on a made-up crate

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, files: &[(&str, &str)]) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tether-structure-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (path, text) in files {
            let file = dir.join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, text).unwrap();
        }
        Scratch(dir)
    }

    fn cycles(&self) -> Vec<String> {
        Crate::load("scratch", &self.0.join("lib.rs"), &self.0).unwrap().cycles()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_parent_that_declares_and_reexports_its_children_is_no_cycle() {
    let s = Scratch::new(
        "reexport",
        &[
            ("lib.rs", "mod store;\npub use store::Disk;\n"),
            ("store/mod.rs", "mod disk;\npub use disk::Disk;\npub(crate) use self::disk::open;\npub struct Owner;\n"),
            ("store/disk.rs", "use super::Owner;\npub struct Disk;\npub fn open() {}\n"),
        ],
    );
    assert_eq!(s.cycles(), Vec::<String>::new());
}

#[test]
fn a_child_and_its_parent_calling_each_other_is_a_cycle() {
    let s = Scratch::new(
        "parent",
        &[
            ("lib.rs", "mod bridge;\nmod check;\n"),
            ("bridge/mod.rs", "mod check;\npub fn wire() { check::verify() }\npub fn helper() {}\n"),
            ("bridge/check.rs", "pub fn verify() { super::helper() }\n"),
            ("check.rs", "pub fn run() {}\n"),
        ],
    );
    let cycles = s.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].starts_with("scratch: bridge -> bridge::check ("), "{cycles:?}");
    assert!(cycles[0].contains(") -> bridge ("), "{cycles:?}");
}

#[test]
fn siblings_through_use_groups_and_expression_paths_are_a_cycle() {
    let s = Scratch::new(
        "siblings",
        &[
            ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("a.rs", "use crate::{c, b::{self as bee}};\npub fn f() {}\n"),
            ("b.rs", "// crate::a::f() in a comment is no edge\nconst S: &str = \"crate::a::f\";\n"),
            ("c.rs", "pub fn g() { crate::a::f() }\n"),
        ],
    );
    let cycles = s.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].contains("a -> c (") && cycles[0].contains("-> a ("), "{cycles:?}");
    assert!(!cycles[0].contains(" b "), "{cycles:?}");
}

#[test]
fn the_last_member_of_a_use_group_and_re_exported_items_lead_to_their_module() {
    let s = Scratch::new(
        "groups",
        &[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::{b::x::X, b::Y};\n"),
            ("b/mod.rs", "pub mod x;\npub mod y;\npub use y::Y;\n"),
            ("b/x.rs", "pub struct X;\n"),
            ("b/y.rs", "pub struct Y;\npub fn f() { crate::a::g() }\n"),
        ],
    );
    let cycles = s.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].starts_with("scratch: a -> b::y (a.rs:1) -> a (b/y.rs:2)"), "{cycles:?}");
}

#[test]
fn a_parent_calling_into_a_grandchild_by_its_path_is_an_edge_to_it() {
    let s = Scratch::new(
        "deep",
        &[
            ("lib.rs", "mod b;\n"),
            ("b/mod.rs", "mod x;\npub fn h() { x::deep::f() }\n"),
            ("b/x.rs", "pub mod deep;\n"),
            ("b/x/deep.rs", "pub fn f() { super::super::h() }\n"),
        ],
    );
    let cycles = s.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].starts_with("scratch: b -> b::x::deep (b/mod.rs:2) -> b (b/x/deep.rs:1)"), "{cycles:?}");
}

#[test]
fn test_code_is_left_out() {
    let s = Scratch::new(
        "tests",
        &[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "pub fn f() { crate::b::g() }\n#[cfg(test)]\n#[path = \"a_tests.rs\"]\nmod tests;\n"),
            ("a_tests.rs", "use crate::b::*;\n"),
            ("b.rs", "pub fn g() {}\n#[cfg(test)]\nmod tests {\n    use crate::a::f;\n}\n"),
        ],
    );
    assert_eq!(s.cycles(), Vec::<String>::new());
}

#[test]
fn the_workspace_graph_is_read() {
    // conf's root re-exports, its config reads env: the parser sees real code
    let conf = workspace_root().join("conf/src/lib.rs");
    let krate = Crate::load("tether-conf", &conf, &workspace_root()).unwrap();
    let edges = krate.edges();
    let config = edges.get(&vec!["config".to_string()]).expect("conf::config is a module");
    assert!(config.contains_key(&vec!["error".to_string()]), "{config:?}");
    assert!(edges.get(&Vec::new()).is_some_and(BTreeMap::is_empty), "the root only declares and re-exports");
}
