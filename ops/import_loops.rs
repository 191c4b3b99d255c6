//! Import loops among the server's modules.
//!
//! Reads the library's source from `server/lib.rs` down (following `mod` declarations), collects
//! every crate-internal reference — `use crate::…`, `use super::…`, paths written in the code
//! (`crate::x::y`, `super::x`, or through a module brought in by `use`) — and groups the
//! modules into nodes: one per top-level module, and for `api/` and `auth/` one per child
//! (`api::collections`, `api::error`, `auth::caller`, …; see [`SPLIT`]). It prints every loop between nodes, each edge with the
//! line that makes it, and exits with 1 when there is one.
//!
//! Test code (`#[cfg(test)]` modules and items) is left out: only the built server counts.
//!
//! Usage (std only, built by ops/check-import-loops.sh):
//!   import_loops [--edges] [SRC_DIR]      SRC_DIR defaults to `server`
//!
//! Decisions:
//! - A lexer, not a regex: comments, strings and char literals never produce an edge.
//! - A path names the longest known module it starts with; items of `api/mod.rs` are the node
//!   `api`, so the services hang off the shared `api` root only through what it defines.
//! - A `mod x;` declaration is not an edge: a parent holding a child is the tree, not a loop.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let n = chars.len();
    let is_ident_start = |c: char| c == '_' || c.is_alphabetic();
    let is_ident_char = |c: char| c == '_' || c.is_alphanumeric();
    while i < n {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && i + 1 < n && chars[i + 1] == '/' {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && i + 1 < n && chars[i + 1] == '*' {
            let mut depth = 0;
            while i < n {
                if chars[i] == '/' && i + 1 < n && chars[i + 1] == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && i + 1 < n && chars[i + 1] == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&chars, i + 1, &mut line);
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if i + 1 < n && chars[i + 1] == '\\' {
                i += 2;
                while i < n && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if i + 2 < n && chars[i + 2] == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < n && is_ident_char(chars[i]) {
                    i += 1;
                }
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < n && is_ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let prefix = matches!(word.as_str(), "r" | "br" | "cr" | "b" | "c");
            if prefix && i < n && chars[i] == '"' {
                if word.contains('r') {
                    i = skip_raw_string(&chars, i, 0, &mut line);
                } else {
                    i = skip_string(&chars, i + 1, &mut line);
                }
            } else if prefix && word.contains('r') && i < n && chars[i] == '#' {
                let mut hashes = 0;
                let mut j = i;
                while j < n && chars[j] == '#' {
                    hashes += 1;
                    j += 1;
                }
                if j < n && chars[j] == '"' {
                    i = skip_raw_string(&chars, j, hashes, &mut line);
                } else {
                    // A raw identifier: r#type.
                    let start = j;
                    i = j;
                    while i < n && is_ident_char(chars[i]) {
                        i += 1;
                    }
                    let word: String = chars[start..i].iter().collect();
                    out.push(Token {
                        tok: Tok::Ident(word),
                        line,
                    });
                }
            } else if word == "b" && i < n && chars[i] == '\'' {
                i += 1;
                if i < n && chars[i] == '\\' {
                    i += 1;
                }
                while i < n && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else {
                out.push(Token {
                    tok: Tok::Ident(word),
                    line,
                });
            }
        } else if c.is_ascii_digit() {
            while i < n && (is_ident_char(chars[i])) {
                i += 1;
            }
        } else if c == ':' && i + 1 < n && chars[i + 1] == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    out
}

fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

/// `i` is at the opening quote; the string ends at a quote followed by `hashes` hashes.
fn skip_raw_string(chars: &[char], mut i: usize, hashes: usize, line: &mut usize) -> usize {
    i += 1;
    while i < chars.len() {
        if chars[i] == '\n' {
            *line += 1;
        }
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// One source file: its module path and its tokens.
struct File {
    path: PathBuf,
    module: Vec<String>,
    tokens: Vec<Token>,
}

/// A place in the tokens: which module (inline modules included) and whether test code.
#[derive(Clone)]
struct Scope {
    depth: usize,
    module: Vec<String>,
    test: bool,
}

/// Walks the tokens of one file, tracking inline modules and `#[cfg(test)]` blocks, and calls
/// `visit` at every token with the module it belongs to and whether it is test code.
/// `visit` returns how many tokens it consumed (0 to move on by one).
fn walk(
    file: &File,
    mut visit: impl FnMut(&[Token], usize, &[String], bool, &mut WalkEvent) -> usize,
) {
    let toks = &file.tokens;
    let mut stack = vec![Scope {
        depth: 0,
        module: file.module.clone(),
        test: false,
    }];
    let mut depth = 0usize;
    let mut pending_test = false;
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    while i < toks.len() {
        let scope = stack.last().unwrap().clone();
        match &toks[i].tok {
            Tok::Punct('#') if matches!(toks.get(i + 1).map(|t| &t.tok), Some(Tok::Punct('['))) => {
                let end = matching(toks, i + 1, '[', ']');
                let attr = &toks[i + 2..end];
                let ident = |k: usize| match attr.get(k).map(|t| &t.tok) {
                    Some(Tok::Ident(s)) => s.as_str(),
                    _ => "",
                };
                let names: Vec<&str> = (0..attr.len()).map(ident).collect();
                if ident(0) == "cfg" && names.contains(&"test") && !names.contains(&"not") {
                    pending_test = true;
                }
                i = end + 1;
                continue;
            }
            Tok::Punct('{') => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    let mut module = scope.module.clone();
                    module.push(name);
                    stack.push(Scope {
                        depth,
                        module,
                        test: scope.test || pending_test,
                    });
                } else if pending_test {
                    stack.push(Scope {
                        depth,
                        module: scope.module.clone(),
                        test: true,
                    });
                }
                pending_test = false;
                i += 1;
                continue;
            }
            Tok::Punct('}') => {
                if stack.last().unwrap().depth == depth && stack.len() > 1 {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
                continue;
            }
            Tok::Punct(';') => {
                pending_test = false;
                pending_mod = None;
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1).map(|t| &t.tok) {
                    if matches!(toks.get(i + 2).map(|t| &t.tok), Some(Tok::Punct(';'))) {
                        let mut event =
                            WalkEvent::ModDecl(name.clone(), scope.test || pending_test);
                        let _ = visit(toks, i, &scope.module, scope.test, &mut event);
                        pending_test = false;
                        i += 3;
                        continue;
                    }
                    pending_mod = Some(name.clone());
                    i += 2;
                    continue;
                }
            }
            _ => {}
        }
        let mut event = WalkEvent::None;
        let used = visit(
            toks,
            i,
            &scope.module,
            scope.test || pending_test,
            &mut event,
        );
        i += used.max(1);
    }
}

/// What `walk` tells its visitor besides the token position.
enum WalkEvent {
    None,
    /// `mod name;` (file module), and whether it is test code.
    ModDecl(String, bool),
}

fn matching(toks: &[Token], open_at: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().skip(open_at) {
        if t.tok == Tok::Punct(open) {
            depth += 1;
        } else if t.tok == Tok::Punct(close) {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
    }
    toks.len() - 1
}

/// Loads `file_path` as module `module` and every non-test file module it declares.
fn load(
    file_path: &Path,
    module: Vec<String>,
    files: &mut Vec<File>,
    modules: &mut BTreeSet<Vec<String>>,
) {
    let Ok(src) = std::fs::read_to_string(file_path) else {
        eprintln!("warning: cannot read {}", file_path.display());
        return;
    };
    let file = File {
        path: file_path.to_path_buf(),
        module: module.clone(),
        tokens: lex(&src),
    };
    modules.insert(module.clone());
    // Where a child `mod x;` of this file lives.
    let stem = file_path.file_stem().unwrap().to_string_lossy().to_string();
    let dir = file_path.parent().unwrap().to_path_buf();
    let own_dir = if stem == "mod" || stem == "lib" {
        dir
    } else {
        dir.join(&stem)
    };
    let mut children = Vec::new();
    let mut inline = BTreeSet::new();
    walk(&file, |toks, i, scope_module, test, event| {
        if let WalkEvent::ModDecl(name, decl_test) = event {
            if !*decl_test {
                children.push((scope_module.to_vec(), name.clone()));
            }
        } else if !test && scope_module.len() > module.len() {
            // Inside an inline module (`mod name { … }`).
            inline.insert(scope_module.to_vec());
        }
        let _ = (toks, i);
        0
    });
    modules.extend(inline);
    files.push(file);
    for (scope_module, name) in children {
        // Inline modules nest the directory: `mod a { mod b; }` in x.rs is x/a/b.rs.
        let mut child_dir = own_dir.clone();
        for seg in &scope_module[module.len()..] {
            child_dir = child_dir.join(seg);
        }
        let flat = child_dir.join(format!("{name}.rs"));
        let nested = child_dir.join(&name).join("mod.rs");
        let path = if flat.exists() { flat } else { nested };
        let mut child = scope_module.clone();
        child.push(name);
        load(&path, child, files, modules);
    }
}

/// A path, read from `toks[i]` on: identifiers separated by `::`. Returns the segments and the
/// index after them.
fn read_path(toks: &[Token], mut i: usize) -> (Vec<String>, usize) {
    let mut segs = Vec::new();
    while let Some(Tok::Ident(w)) = toks.get(i).map(|t| &t.tok) {
        segs.push(w.clone());
        if toks.get(i + 1).map(|t| &t.tok) == Some(&Tok::PathSep) {
            i += 2;
        } else {
            i += 1;
            break;
        }
    }
    (segs, i)
}

/// Expands the use tree starting at `toks[i]` into full paths with the name each binds
/// (None for globs). Returns the index after the tree.
fn use_tree(
    toks: &[Token],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    if toks.get(i).map(|t| &t.tok) == Some(&Tok::PathSep) {
        i += 1;
        path.push("::".into()); // a leading `::` is an external crate
    }
    loop {
        match toks.get(i).map(|t| &t.tok) {
            Some(Tok::Ident(w)) => {
                path.push(w.clone());
                i += 1;
                if toks.get(i).map(|t| &t.tok) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                let mut name = Some(w.clone());
                if let Some(Tok::Ident(a)) = toks.get(i).map(|t| &t.tok) {
                    if a == "as" {
                        name = match toks.get(i + 1).map(|t| &t.tok) {
                            Some(Tok::Ident(alias)) if alias != "_" => Some(alias.clone()),
                            _ => None,
                        };
                        i += 2;
                    }
                }
                if w == "self" {
                    path.pop();
                    if name.as_deref() == Some("self") {
                        name = path.last().cloned();
                    }
                }
                out.push((path, name));
                return i;
            }
            Some(Tok::Punct('*')) => {
                out.push((path, None));
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.tok) {
                        Some(Tok::Punct('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        None => return i,
                        _ => i = use_tree(toks, i, &path, out),
                    }
                }
            }
            _ => return i + 1,
        }
    }
}

struct Graph {
    modules: BTreeSet<Vec<String>>,
    /// Per module: names bound by `use` to a module of ours.
    aliases: HashMap<Vec<String>, HashMap<String, Vec<String>>>,
    /// (from node, to node) -> first evidence.
    edges: BTreeMap<(String, String), String>,
}

impl Graph {
    /// Resolves a path written in `module` to an absolute one, or None when it is not ours.
    fn absolute(&self, module: &[String], segs: &[String]) -> Option<Vec<String>> {
        let first = segs.first()?;
        let mut base: Vec<String>;
        let mut rest = segs;
        match first.as_str() {
            "crate" => {
                base = Vec::new();
                rest = &segs[1..];
            }
            "self" => {
                base = module.to_vec();
                rest = &segs[1..];
            }
            "super" => {
                base = module.to_vec();
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
            }
            "::" => return None,
            name => {
                let mut child = module.to_vec();
                child.push(name.to_string());
                if self.modules.contains(&child) {
                    base = module.to_vec();
                } else {
                    // A name bound by `use` here or in an enclosing module (inline tests
                    // see their parent's imports through `use super::*`).
                    let mut m = module.to_vec();
                    loop {
                        if let Some(target) = self.aliases.get(&m).and_then(|a| a.get(name)) {
                            base = target.clone();
                            rest = &segs[1..];
                            break;
                        }
                        if m.is_empty() {
                            return None;
                        }
                        m.pop();
                    }
                }
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The longest known module `path` starts with.
    fn module_of(&self, path: &[String]) -> Vec<String> {
        let mut p = path.to_vec();
        while !p.is_empty() && !self.modules.contains(&p) {
            p.pop();
        }
        p
    }

    fn add(&mut self, from_module: &[String], target: &[String], evidence: String) {
        let to_module = self.module_of(target);
        let (from, to) = (node(from_module), node(&to_module));
        if from != to && !to.is_empty() && !from.is_empty() {
            self.edges.entry((from, to)).or_insert(evidence);
        }
    }
}

/// Top-level modules whose children are nodes of their own: `api` holds one adapter per
/// service beside the shared files; `auth` holds both the identity types the store and the use
/// cases depend on (`auth::caller`, `auth::rbac`) and the middleware that reads the store
/// (`auth::layer`, `auth::standing`, `auth::roles`).
const SPLIT: [&str; 2] = ["api", "auth"];

/// The node a module belongs to: its top-level module, or `<top>::<child>` under [`SPLIT`].
fn node(module: &[String]) -> String {
    match module {
        [] => String::new(),
        [top, child, ..] if SPLIT.contains(&top.as_str()) => format!("{top}::{child}"),
        [top, ..] => top.clone(),
    }
}

fn main() -> ExitCode {
    let mut show_edges = false;
    let mut src = PathBuf::from("server");
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--edges" => show_edges = true,
            "-h" | "--help" => {
                println!("usage: import_loops [--edges] [SRC_DIR]");
                return ExitCode::SUCCESS;
            }
            dir => src = PathBuf::from(dir),
        }
    }
    let graph = read_graph(&src);
    let nodes: BTreeSet<String> = graph
        .modules
        .iter()
        .map(|m| node(m))
        .filter(|n| !n.is_empty())
        .collect();
    if show_edges {
        for ((from, to), evidence) in &graph.edges {
            println!("{from} -> {to}    {evidence}");
        }
    }
    let loops = cycles(&nodes, &graph.edges);
    if loops.is_empty() {
        println!(
            "no import loops: {} modules, {} nodes, {} edges",
            graph.modules.len(),
            nodes.len(),
            graph.edges.len()
        );
        return ExitCode::SUCCESS;
    }
    for (component, cycle) in &loops {
        println!("import loop among {}:", component.join(", "));
        for pair in cycle.windows(2) {
            let evidence = &graph.edges[&(pair[0].clone(), pair[1].clone())];
            println!("  {} -> {}    {}", pair[0], pair[1], evidence);
        }
    }
    println!("{} import loop(s)", loops.len());
    ExitCode::FAILURE
}

/// The graph of the library whose root is `src/lib.rs`.
fn read_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    let mut modules = BTreeSet::new();
    load(&src.join("lib.rs"), Vec::new(), &mut files, &mut modules);
    let mut graph = Graph {
        modules,
        aliases: HashMap::new(),
        edges: BTreeMap::new(),
    };

    // Pass 1: what each `use` binds (modules only) and the edges it makes.
    let mut uses: Vec<(Vec<String>, Vec<String>, String)> = Vec::new();
    for file in &files {
        walk(file, |toks, i, module, test, _| {
            if test || toks[i].tok != Tok::Ident("use".into()) {
                return 0;
            }
            let mut tree = Vec::new();
            let end = use_tree(toks, i + 1, &[], &mut tree);
            let evidence = format!("{}:{}", file.path.display(), toks[i].line);
            for (path, name) in tree {
                uses.push((module.to_vec(), path.clone(), evidence.clone()));
                if let (Some(name), Some(abs)) = (name, graph.absolute(module, &path)) {
                    if graph.modules.contains(&abs) {
                        graph
                            .aliases
                            .entry(module.to_vec())
                            .or_default()
                            .insert(name, abs);
                    }
                }
            }
            end - i
        });
    }
    for (module, path, evidence) in uses {
        if let Some(abs) = graph.absolute(&module, &path) {
            let shown = format!("{evidence} (use {})", abs.join("::"));
            graph.add(&module, &abs, shown);
        }
    }

    // Pass 2: paths written in the code.
    let mut refs = Vec::new();
    for file in &files {
        walk(file, |toks, i, module, test, _| {
            if let Tok::Ident(w) = &toks[i].tok {
                if w == "use" {
                    let mut tree = Vec::new();
                    return use_tree(toks, i + 1, &[], &mut tree) - i;
                }
                let after_sep = i > 0 && toks[i - 1].tok == Tok::PathSep;
                if !test && !after_sep && toks.get(i + 1).map(|t| &t.tok) == Some(&Tok::PathSep) {
                    let (segs, end) = read_path(toks, i);
                    let evidence = format!("{}:{}", file.path.display(), toks[i].line);
                    refs.push((module.to_vec(), segs, evidence));
                    return end - i;
                }
            }
            0
        });
    }
    for (module, segs, evidence) in refs {
        if let Some(abs) = graph.absolute(&module, &segs) {
            let shown = format!("{evidence} ({})", abs.join("::"));
            graph.add(&module, &abs, shown);
        }
    }

    graph
}

/// Strongly connected components with more than one node, each with one shortest loop through
/// its first node.
fn cycles(
    nodes: &BTreeSet<String>,
    edges: &BTreeMap<(String, String), String>,
) -> Vec<(Vec<String>, Vec<String>)> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let reach = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([start.to_string()]);
        while let Some(n) = queue.pop_front() {
            for m in next.get(n.as_str()).into_iter().flatten() {
                if seen.insert(m.to_string()) {
                    queue.push_back(m.to_string());
                }
            }
        }
        seen
    };
    let reach_all: BTreeMap<&str, BTreeSet<String>> =
        nodes.iter().map(|n| (n.as_str(), reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in nodes {
        if done.contains(n) || !reach_all[n.as_str()].contains(n) {
            continue;
        }
        let component: Vec<String> = nodes
            .iter()
            .filter(|m| reach_all[n.as_str()].contains(*m) && reach_all[m.as_str()].contains(n))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        // Shortest loop from n back to n.
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([n.clone()]);
        let mut found = false;
        while let Some(x) = queue.pop_front() {
            for y in next.get(x.as_str()).into_iter().flatten() {
                if *y == n.as_str() {
                    parent.insert(format!("{n}#end"), x.clone());
                    found = true;
                    break;
                }
                if !parent.contains_key(*y) {
                    parent.insert(y.to_string(), x.clone());
                    queue.push_back(y.to_string());
                }
            }
            if found {
                break;
            }
        }
        let mut cycle = vec![n.clone()];
        let mut at = parent[&format!("{n}#end")].clone();
        while at != *n {
            cycle.push(at.clone());
            at = parent[&at].clone();
        }
        cycle.push(n.clone());
        cycle.reverse();
        out.push((component, cycle));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(src: &str) -> Vec<String> {
        lex(src)
            .into_iter()
            .filter_map(|t| match t.tok {
                Tok::Ident(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_strings_and_chars_hide_their_paths() {
        let src = "// crate::a\n/* crate::b /* nested */ crate::c */ \"crate::d \\\" crate::e\" \
                   r#\"crate::f\"# b'x' 'y' '\\'' fn f<'a>() { crate::g }";
        assert_eq!(idents(src), ["fn", "f", "crate", "g"].map(String::from));
    }

    /// A small crate with a loop between `a` and `b` (through a use and a written path), a
    /// test-only edge and commented-out paths that must not count.
    #[test]
    fn finds_a_loop_and_only_real_edges() {
        let dir = std::env::temp_dir().join(format!("import-loops-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("api/users")).expect("dir");
        let files = [
            (
                "lib.rs",
                "pub mod a;\npub mod b;\npub mod c;\npub mod api;\n",
            ),
            ("a.rs", "use crate::b::Thing;\n// use crate::c;\n"),
            ("b.rs", "pub struct Thing;\nfn f() { super::a::g(); }\n"),
            (
                "c.rs",
                "use crate::api;\nfn h() { api::users::list(); }\n\
                 #[cfg(test)]\nmod tests { use crate::a; }\n",
            ),
            ("api/mod.rs", "pub mod users;\npub mod error;\n"),
            ("api/error.rs", "pub struct ApiError;\n"),
            (
                "api/users/mod.rs",
                "use super::error::ApiError;\npub fn list() {}\n",
            ),
        ];
        for (path, text) in files {
            std::fs::write(dir.join(path), text).expect("write");
        }
        let graph = read_graph(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let edges: Vec<(&str, &str)> = graph
            .edges
            .keys()
            .map(|(from, to)| (from.as_str(), to.as_str()))
            .collect();
        assert_eq!(
            edges,
            [
                ("a", "b"),
                ("api::users", "api::error"),
                ("b", "a"),
                ("c", "api"),
                ("c", "api::users"),
            ]
        );
        let nodes: BTreeSet<String> = graph.modules.iter().map(|m| node(m)).collect();
        let loops = cycles(&nodes, &graph.edges);
        assert_eq!(loops.len(), 1);
        assert_eq!(loops[0].0, ["a", "b"]);
        assert_eq!(loops[0].1, ["a", "b", "a"]);
    }
}
