//! Architecture rules for `src/`, checked on the source text.
//!
//! A small lexer (no `syn`, std only, no `use consent_ledger::…`) blanks
//! comments and literals, drops `#[cfg(test)] mod … { … }` blocks, and finds
//! every path to crate code: `crate::…`, `$crate::…`, `super::…`, `self::…`,
//! a child module's `name::…`, and `consent_ledger::…` in `src/main.rs`.
//! Each path is resolved to the file that defines it, following simple
//! `pub use` re-exports. Each rule is one `#[test]`; a failure lists every
//! violation as `file:line: what`, so the message says exactly what to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------
// The rules' data
// ---------------------------------------------------------------------------

/// Which other top-level modules each top-level module may refer to (a module
/// may always refer to itself); `main` is the binary, `src/main.rs`.
/// Dependencies point inward: `api` handles HTTP only; `services` compose
/// store calls with files and signing; `store` is diesel; `domain`,
/// `providers` (what a provider's message means) and `ledger` are pure.
const LAYERS: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("ledger", &["domain"]),
    ("keys", &[]),
    ("metrics", &[]),
    ("config", &[]),
    ("providers", &["domain", "keys"]),
    (
        "store",
        &["domain", "ledger", "providers", "keys", "config", "metrics"],
    ),
    (
        "services",
        &[
            "store",
            "domain",
            "ledger",
            "providers",
            "keys",
            "config",
            "metrics",
        ],
    ),
    ("error", &["domain", "store", "services"]),
    (
        "api",
        &[
            "services",
            "store",
            "domain",
            "ledger",
            "providers",
            "keys",
            "config",
            "error",
            "metrics",
        ],
    ),
    ("telemetry", &["config"]),
    (
        "startup",
        &[
            "api",
            "services",
            "store",
            "domain",
            "ledger",
            "providers",
            "keys",
            "config",
            "error",
            "telemetry",
            "metrics",
        ],
    ),
    (
        "cli",
        &[
            "startup",
            "services",
            "store",
            "domain",
            "ledger",
            "providers",
            "keys",
            "config",
            "error",
            "telemetry",
        ],
    ),
    ("main", &["cli", "config", "telemetry", "startup", "error"]),
];

/// Modules that must stay free of I/O frameworks, so they run anywhere
/// (an auditor's tool, a benchmark) and test in microseconds.
const PURE_MODULES: &[&str] = &["domain", "ledger", "providers"];

/// The crates the pure modules may not name.
const FRAMEWORK_CRATES: &[&str] = &[
    "actix_web",
    "actix_rt",
    "actix_http",
    "diesel",
    "tokio",
    "reqwest",
];

/// Longest allowed `fn`, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 100;

/// What of `store` the HTTP layer (`src/api/`, webhooks and hosted pages
/// too) may name itself, as (file, or folder ending in `/`; item; why):
/// plain reads (one query, or a few read together, that decide nothing),
/// the HTTP layer's own plumbing, and types. Everything else that writes,
/// decides or composes store calls is a use case in `services/`. Rule 5
/// fails on a store item not listed here, and on an entry naming nothing.
const STORE_FROM_API: &[(&str, &str, &str)] = &[
    // Types: names, rows and plumbing; naming one runs no query.
    ("src/api/", "store::audit::AuditKind", "the trail's vocabulary, an enum: handlers name what they note"),
    ("src/api/mod.rs", "store::DbConn", "AppState hands a connection to the work it runs"),
    ("src/api/mod.rs", "store::DbPool", "AppState holds the pool"),
    ("src/api/mod.rs", "store::pool::PooledConn", "AppState runs work on a pooled connection and drops a lost one"),
    ("src/api/mod.rs", "store::group_commit::Write", "AppState::write queues a request's work into its log's group commit"),
    ("src/api/mod.rs", "store::group_commit::Groups", "AppState holds the group-commit queues"),
    ("src/api/mod.rs", "store::log::NodeCache", "AppState holds the cache of upper Merkle nodes proofs read"),
    ("src/api/idempotent.rs", "store::DbConn", "the work run under an Idempotency-Key gets the connection"),
    ("src/api/webhooks/mod.rs", "store::DbConn", "a verified request's recording runs on the connection of its log's group commit"),
    ("src/api/webhooks/mod.rs", "store::tenants::TenantRow", "the tenant a webhook names, read with its settings by services/channel_settings.rs"),
    ("src/api/idempotent.rs", "store::idempotency::IdempotencyScope", "the key's scope, handed to the service that stores the answer"),
    ("src/api/idempotent.rs", "store::idempotency::Begin", "what taking a key found: run, replay or wait"),
    ("src/api/idempotent.rs", "store::idempotency::begin", "takes the Idempotency-Key before the work (docs/api.md), whatever the service"),
    ("src/api/idempotent.rs", "store::idempotency::current", "reads the key's state while a first request runs"),
    ("src/api/idempotent.rs", "store::idempotency::abandon", "gives back a key whose work failed, so a retry runs"),
    ("src/api/log.rs", "store::DbConn", "its read helpers take the connection"),
    ("src/api/log.rs", "store::log::CheckpointRow", "a checkpoint read, rendered"),
    ("src/api/export.rs", "store::DbConn", "the export's pieces are read on the connection the stream holds"),
    ("src/api/export.rs", "store::log::CheckpointRow", "a checkpoint read, rendered"),
    ("src/api/entries.rs", "store::consent::StoredEntry", "an entry read, rendered"),
    ("src/api/records.rs", "store::append::Appended", "what a service appended, rendered"),
    ("src/api/brands.rs", "store::tenants::BrandRow", "a brand read or written by services/brands.rs, rendered"),
    ("src/api/keys.rs", "store::tenants::ApiKeyRow", "a key read or written by services/keys.rs, rendered"),
    ("src/api/forms.rs", "store::forms::StoredForm", "a form read or saved by services/forms.rs, rendered"),
    ("src/api/dead_letters.rs", "store::dead_letters::DeadLetterRow", "a letter read, rendered"),
    ("src/api/documents.rs", "store::documents::NewDocument", "the upload handed to services/documents.rs"),
    ("src/api/tenants.rs", "store::tenants::TenantRow", "the tenant's settings, rendered"),
    ("src/api/tenants.rs", "store::tenants::SettingsChange", "a PATCH parsed, handed to services/tenants.rs"),
    ("src/api/auth.rs", "store::tenants::TenantRow", "the caller's tenant, read with its key"),
    ("src/api/auth.rs", "store::tenants::TOUCH_INTERVAL_MILLIS", "how often a key's last use is noted"),
    ("src/api/auth.rs", "store::connection::OPERATOR_TOKEN_META", "where the operator token's hash is kept, for the CLI"),
    // Plain reads: one query, or a few read together, deciding nothing.
    ("src/api/auth.rs", "store::tenants::find_api_key", "authentication: the key by id, before any input is read (a short read on the HTTP worker)"),
    ("src/api/auth.rs", "store::connection::meta_get", "authentication: the operator token's hash"),
    ("src/api/audit.rs", "store::audit::list", "a page of the audit trail"),
    ("src/api/health.rs", "store::connection::ping", "/readyz: the database answers"),
    ("src/api/health.rs", "store::connection::migrations_current", "/readyz: the schema is current"),
    ("src/api/health.rs", "store::log::overview", "/metrics: the logs' sizes, read at each scrape"),
    ("src/api/health.rs", "store::dead_letters::waiting_count", "/metrics: letters waiting, read at each scrape"),
    ("src/api/health.rs", "store::reviews::count_waiting", "/metrics: ambiguous messages waiting for review, read at each scrape"),
    ("src/api/health.rs", "store::events::counts", "/metrics: outbound event deliveries by status, read at each scrape"),
    ("src/api/brands.rs", "store::tenants::list_brands", "the tenant's brands"),
    ("src/api/keys.rs", "store::tenants::list_api_keys", "the tenant's keys"),
    ("src/api/forms.rs", "store::forms::list", "the tenant's forms"),
    ("src/api/forms.rs", "store::forms::find", "one form"),
    ("src/api/channel_settings.rs", "store::channels::settings_of", "the tenant's channel settings"),
    ("src/api/dead_letters.rs", "store::dead_letters::list_dead_letters", "a page of dead letters"),
    ("src/api/documents.rs", "store::documents::info", "a document's size and type, before its bytes are read within the memory budget"),
    ("src/api/documents.rs", "store::documents::body", "a document's bytes"),
    ("src/api/entries.rs", "store::consent::entry_at", "one entry"),
    ("src/api/tenants.rs", "store::log::current_signing_key", "the tenant's verifier key"),
    ("src/api/log.rs", "store::consent::entry_at", "a receipt's entry, read in one snapshot with its proof"),
    ("src/api/log.rs", "store::log::log_head", "a log's size"),
    ("src/api/log.rs", "store::log::latest_checkpoint", "the latest checkpoint"),
    ("src/api/log.rs", "store::log::checkpoint_of_size", "a checkpoint of one size"),
    ("src/api/log.rs", "store::log::signing_keys_of", "the log's verifier keys"),
    ("src/api/log.rs", "store::log::DbNodes", "Merkle nodes read for a proof"),
    ("src/api/log.rs", "store::log::cached_inclusion_proof", "an inclusion proof"),
    ("src/api/log.rs", "store::log::cached_consistency_proof", "a consistency proof"),
    ("src/api/log.rs", "store::log::inclusion_proof", "a receipt's proof, in the receipt's snapshot"),
    ("src/api/log.rs", "store::log::key_for_size", "a receipt's verifier key, in the receipt's snapshot"),
    ("src/api/export.rs", "store::log::checkpoint_of_size", "the checkpoint an export is verified against"),
    ("src/api/export.rs", "store::log::key_for_size", "the verifier key of that checkpoint"),
    ("src/api/export.rs", "store::subjects::newest_live_subject", "the identity a dossier is of"),
    // The audit trail's note: HTTP-side, after the action and outside its
    // transaction; a failure is logged, never answered.
    ("src/api/trail.rs", "store::audit::record", "the trail's note, after the action and outside its transaction: a failure is logged, never answered"),
    ("src/api/trail.rs", "store::audit::AuditEvent", "what the note records"),
    // The erasure handler and the hosted pages: types they pass on, one plain read.
    ("src/api/subjects.rs", "store::append::Answer", "the idempotent answer an erasure stores with its entry: HTTP plumbing"),
    ("src/api/pages/", "store::forms::StoredForm", "a type: the form a page renders"),
    ("src/api/pages/", "store::tenants::TenantRow", "a type: the tenant a page belongs to"),
    ("src/api/pages/", "store::tenants::active_brands", "plain read: the brand names the opt-out page lists"),
];

/// How `src/main.rs` names the library.
const LIBRARY_NAME: &str = "consent_ledger";

// ---------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------

/// Rule 1: modules only refer to the layers below them (see `LAYERS`), so HTTP, SQL and I/O stay out of the core.
#[test]
fn layers_point_one_way() {
    report(
        "layers point one way (see LAYERS)",
        layer_violations(tree()),
    );
}

/// The layer table is a DAG naming only its own rows, else rule 1 would allow a cycle by construction.
#[test]
fn layer_table_is_acyclic() {
    report("the layer table is acyclic", layer_table_problems());
}

/// Rule 2: no two files of a top-level module import each other (directly or in a longer cycle), so each file can be read and moved on its own.
#[test]
fn no_two_files_import_each_other() {
    report("no file cycles inside a module", cycle_violations(tree()));
}

/// Rule 3: `domain`, `ledger` and `providers` name no web, database or async framework, so they stay pure.
#[test]
fn pure_layers_import_no_framework() {
    report(
        "pure layers import no framework",
        framework_violations(tree()),
    );
}

/// Rule 4: no `fn` outside tests spans more than 100 lines, so each one can be read on a screen or two.
#[test]
fn functions_stay_short() {
    report("functions stay short", long_function_violations(tree()));
}

/// Rule 5: handlers and webhooks (`src/api/`) reach `store` only through `services`, except the plain reads, the HTTP plumbing and the types named in `STORE_FROM_API`, each with why.
#[test]
fn api_reaches_store_only_through_services() {
    report(
        "api reaches store only through services (see STORE_FROM_API)",
        store_reach_violations(tree(), STORE_FROM_API),
    );
}

/// Rule 6: `services` and `store` take a tenant as `TenantId`, never as `tenant: &str`, so an id is checked once, where it enters.
#[test]
fn services_and_store_take_a_tenant_id() {
    report(
        "services and store take a TenantId",
        tenant_str_violations(tree()),
    );
}

/// Fails with every violation, one per line, or passes when there is none.
fn report(rule: &str, violations: Vec<String>) {
    if !violations.is_empty() {
        panic!(
            "architecture rule \"{rule}\": {} violation(s)\n{}\n",
            violations.len(),
            violations.join("\n")
        );
    }
}

/// The source tree, read and lexed once for all the rules.
fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| Tree::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")))
}

// ---------------------------------------------------------------------------
// Rule 1: layers
// ---------------------------------------------------------------------------

/// The modules a top-level module may refer to, or `None` if it has no row.
fn allowed_targets(module: &str) -> Option<&'static [&'static str]> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, allowed)| *allowed)
}

/// Every reference to a module not in its file's row, and every module without a row.
fn layer_violations(tree: &Tree) -> Vec<String> {
    let mut out = unknown_modules(tree);
    for file in &tree.files {
        let Some(from) = file.top_level() else {
            continue;
        };
        let Some(allowed) = allowed_targets(&from) else {
            continue;
        };
        for r in &file.refs {
            let Some(to) = tree.target_top_level(&r.path) else {
                continue;
            };
            if to != from && !allowed.contains(&to.as_str()) {
                out.push(format!(
                    "{}:{}: {from} may not depend on {to} ({})",
                    file.path, r.line, r.written
                ));
            }
        }
    }
    out
}

/// One line per top-level module that the layer table does not know.
fn unknown_modules(tree: &Tree) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for file in &tree.files {
        let Some(top) = file.top_level() else {
            continue;
        };
        if allowed_targets(&top).is_none() && seen.insert(top.clone()) {
            let root = tree.module_file(std::slice::from_ref(&top)).unwrap_or(file);
            out.push(format!(
                "{}: module {top} is not in the layer table",
                root.path
            ));
        }
    }
    out
}

/// Rows naming unknown modules, and cycles in the table.
fn layer_table_problems() -> Vec<String> {
    let mut out = Vec::new();
    let mut graph: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (name, allowed) in LAYERS {
        for target in *allowed {
            if allowed_targets(target).is_none() {
                out.push(format!("LAYERS: {name} allows {target}, which has no row"));
            }
            graph
                .entry(name.to_string())
                .or_default()
                .insert(target.to_string(), 0);
        }
    }
    for cycle in elementary_cycles(&graph) {
        let names: Vec<&str> = cycle.iter().map(|(name, _)| name.as_str()).collect();
        out.push(format!(
            "LAYERS: cycle {} -> {}",
            names.join(" -> "),
            names[0]
        ));
    }
    out
}

// ---------------------------------------------------------------------------
// Rule 2: no file cycles inside a top-level module
// ---------------------------------------------------------------------------

/// Edges between files of one top-level module: from → to → first line.
type FileGraph = BTreeMap<String, BTreeMap<String, usize>>;

/// Every elementary cycle between files of the same top-level module.
fn cycle_violations(tree: &Tree) -> Vec<String> {
    let mut graphs: BTreeMap<String, FileGraph> = BTreeMap::new();
    for file in &tree.files {
        let Some(from_top) = file.top_level() else {
            continue;
        };
        for r in &file.refs {
            // A module map's `pub use` is the module's table of contents.
            if r.from_pub_use && tree.is_module_map(file) {
                continue;
            }
            let Some(target) = tree.resolve(&r.path).map(|i| &tree.files[i]) else {
                continue;
            };
            if target.path != file.path && target.top_level().as_ref() == Some(&from_top) {
                let edges = graphs.entry(from_top.clone()).or_default();
                let to = edges.entry(file.path.clone()).or_default();
                to.entry(target.path.clone()).or_insert(r.line);
            }
        }
    }
    let mut out = Vec::new();
    for graph in graphs.values() {
        for cycle in elementary_cycles(graph) {
            out.push(format_cycle(&cycle));
        }
    }
    out
}

/// `a.rs:3 -> b.rs:7 -> a.rs`: each hop with the line of its first reference.
fn format_cycle(cycle: &[(String, usize)]) -> String {
    let hops: Vec<String> = cycle
        .iter()
        .map(|(file, line)| format!("{file}:{line}"))
        .collect();
    format!("cycle: {} -> {}", hops.join(" -> "), cycle[0].0)
}

/// Elementary cycles of a small graph, each listed once from its smallest
/// node, as (node, line of the edge to the next node). Capped, because a
/// tangled module could have very many; the first ones say enough.
fn elementary_cycles(graph: &FileGraph) -> Vec<Vec<(String, usize)>> {
    let mut search = CycleSearch {
        graph,
        cycles: Vec::new(),
        steps: 0,
    };
    for start in graph.keys() {
        let mut path = Vec::new();
        search.walk(start, start, &mut path);
    }
    search.cycles
}

/// Depth-first search for simple paths that return to their start.
struct CycleSearch<'g> {
    graph: &'g FileGraph,
    cycles: Vec<Vec<(String, usize)>>,
    /// Bounds the search so a dense graph cannot make the test slow.
    steps: usize,
}

impl CycleSearch<'_> {
    const MAX_CYCLES: usize = 100;
    const MAX_STEPS: usize = 200_000;

    /// Extends `path` (ending before `node`) from `node`, visiting only nodes
    /// after `start` so each cycle is found once, from its smallest node.
    fn walk(&mut self, start: &str, node: &str, path: &mut Vec<(String, usize)>) {
        let Some(edges) = self.graph.get(node) else {
            return;
        };
        for (next, line) in edges {
            self.steps += 1;
            if self.cycles.len() >= Self::MAX_CYCLES || self.steps > Self::MAX_STEPS {
                return;
            }
            path.push((node.to_string(), *line));
            if next == start {
                self.cycles.push(path.clone());
            } else if next.as_str() > start && !path.iter().any(|(n, _)| n == next) {
                self.walk(start, next, path);
            }
            path.pop();
        }
    }
}

// ---------------------------------------------------------------------------
// Rule 3: pure layers import no framework
// ---------------------------------------------------------------------------

/// Every path starting with a framework crate in a pure module's file.
fn framework_violations(tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for file in &tree.files {
        let Some(top) = file.top_level() else {
            continue;
        };
        if !PURE_MODULES.contains(&top.as_str()) {
            continue;
        }
        for (i, token) in file.tokens.iter().enumerate() {
            if FRAMEWORK_CRATES.contains(&token.text.as_str()) && names_a_crate(&file.tokens, i) {
                out.push(format!(
                    "{}:{}: {top} is pure but names {} ({})",
                    file.path,
                    token.line,
                    token.text,
                    written_path(&file.tokens, i)
                ));
            }
        }
    }
    out
}

/// The path at `i` as written, a group shortened: `actix_web::{…}`.
fn written_path(tokens: &[Token], i: usize) -> String {
    let (segments, end) = path_at(tokens, i);
    let text = |k: usize| tokens.get(k).map_or("", |t| t.text.as_str());
    let group = if text(end) == "::" && text(end + 1) == "{" {
        "::{…}"
    } else {
        ""
    };
    format!("{}{group}", segments.join("::"))
}

/// Whether the identifier at `i` starts a path (`tokio::…`, `::tokio::…`,
/// `use tokio;`) rather than being a later segment (`my::tokio`).
fn names_a_crate(tokens: &[Token], i: usize) -> bool {
    let text = |k: usize| tokens.get(k).map_or("", |t| t.text.as_str());
    let before = if i == 0 { "" } else { text(i - 1) };
    let later_segment = before == "::" && i >= 2 && {
        let t = &tokens[i - 2];
        t.is_ident() || t.text == ">"
    };
    let used = before == "use" || (before == "crate" && i >= 2 && text(i - 2) == "extern");
    !later_segment && (text(i + 1) == "::" || used)
}

// ---------------------------------------------------------------------------
// Rule 4: functions stay short
// ---------------------------------------------------------------------------

/// Every `fn` longer than `MAX_FN_LINES`.
fn long_function_violations(tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for file in &tree.files {
        for f in function_spans(&file.tokens) {
            if f.lines > MAX_FN_LINES {
                out.push(format!(
                    "{}:{} {} ({} lines)",
                    file.path, f.line, f.name, f.lines
                ));
            }
        }
    }
    out
}

/// Every `tenant: &str` (a parameter or field) in `services` or `store`.
fn tenant_str_violations(tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for file in &tree.files {
        if !matches!(file.top_level().as_deref(), Some("services" | "store")) {
            continue;
        }
        for w in file.tokens.windows(4) {
            let texts: Vec<&str> = w.iter().map(|t| t.text.as_str()).collect();
            if texts == ["tenant", ":", "&", "str"] {
                out.push(format!("{}:{} tenant: &str", file.path, w[0].line));
            }
        }
    }
    out
}

/// A function with a body: its name, `fn` line and length in lines.
#[derive(Debug, PartialEq)]
struct FnSpan {
    name: String,
    line: usize,
    lines: usize,
}

/// The functions with a body, measured by brace matching.
fn function_spans(tokens: &[Token]) -> Vec<FnSpan> {
    let mut spans = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        // `fn(u8)` is a pointer type and `fn $name` a macro template: skip.
        let Some(name) = tokens
            .get(i + 1)
            .filter(|t| token.text == "fn" && t.is_ident())
        else {
            continue;
        };
        let Some(open) = body_start(tokens, i + 2) else {
            continue;
        };
        let Some(close) = matching(tokens, open) else {
            continue;
        };
        spans.push(FnSpan {
            name: name.text.clone(),
            line: token.line,
            lines: tokens[close].line - token.line + 1,
        });
    }
    spans
}

/// The `{` opening a signature's body, or `None` for a declaration ending
/// in `;`. `;` and `{` inside `(…)` or `[…]` (say `[u8; 32]`) do not count.
fn body_start(tokens: &[Token], from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (k, token) in tokens.iter().enumerate().skip(from) {
        match token.text.as_str() {
            "(" | "[" => depth += 1,
            ")" | "]" => depth -= 1,
            "{" if depth == 0 => return Some(k),
            ";" if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Rule 5: the HTTP layer reaches the store through services
// ---------------------------------------------------------------------------

/// Every item of `store` a file of `src/api/` names that `allowed` does not
/// cover (`file:line: item`), and every entry of `allowed` that covers
/// nothing any more.
fn store_reach_violations(tree: &Tree, allowed: &[(&str, &str, &str)]) -> Vec<String> {
    let mut used = vec![false; allowed.len()];
    let mut out = Vec::new();
    let api = tree
        .files
        .iter()
        .filter(|f| f.top_level().as_deref() == Some("api"));
    for file in api {
        for (line, item) in store_reaches(tree, file) {
            let entry = allowed
                .iter()
                .position(|(at, name, _)| covers(at, &file.path) && names(name, &item));
            match entry {
                Some(k) => used[k] = true,
                None => out.push(format!(
                    "{}:{line}: {item}: the HTTP layer reaches the store; call a service, or name this plain read in STORE_FROM_API with why",
                    file.path
                )),
            }
        }
    }
    for ((at, name, _), used) in allowed.iter().zip(used) {
        if !used {
            out.push(format!(
                "STORE_FROM_API: {at} no longer names {name}: take it off the list"
            ));
        }
    }
    out
}

/// What a file names in `store`, as (line, crate-absolute item) in source
/// order: each path and `use` leaf, and, for a module imported whole
/// (`use crate::store::tenants::{self as store}`), each path through it
/// (`store::create_brand` is `store::tenants::create_brand`).
fn store_reaches(tree: &Tree, file: &SourceFile) -> Vec<(usize, String)> {
    let in_store = |path: &[String]| path.first().is_some_and(|m| m == "store");
    let mut out = Vec::new();
    for r in file.refs.iter().filter(|r| in_store(&r.path)) {
        let glob = r.written.ends_with("::*");
        if glob {
            out.push((r.line, format!("{}::*", r.path.join("::"))));
        } else if !tree.modules.contains_key(&r.path) {
            out.push((r.line, r.path.join("::")));
        }
    }
    for (i, token) in file.tokens.iter().enumerate() {
        let Some(module) = file.imports.get(&token.text) else {
            continue;
        };
        if in_store(module) && tree.modules.contains_key(module) && starts_path(&file.tokens, i) {
            let (segments, _) = path_at(&file.tokens, i);
            let item: Vec<String> = module.iter().chain(&segments[1..]).cloned().collect();
            out.push((token.line, item.join("::")));
        }
    }
    out.sort();
    out
}

/// Whether an allow-list entry's file (or folder, ending in `/`) covers `path`.
fn covers(at: &str, path: &str) -> bool {
    match at.ends_with('/') {
        true => path.starts_with(at),
        false => path == at,
    }
}

/// Whether an allowed item names `item`: itself, or something in it (an
/// enum's variant, an associated function).
fn names(allowed: &str, item: &str) -> bool {
    item.strip_prefix(allowed)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

// ---------------------------------------------------------------------------
// The source tree
// ---------------------------------------------------------------------------

/// The lexed files of `src/` and which file holds which module.
struct Tree {
    files: Vec<SourceFile>,
    /// Module path → index in `files`; `[]` is `lib.rs`.
    modules: BTreeMap<Vec<String>, usize>,
    /// `#[macro_export]` macros (named `crate::name!`) → the file defining them.
    macros: BTreeMap<String, usize>,
}

impl Tree {
    /// Reads every `.rs` file under `src`, in a stable order.
    fn load(src: &Path) -> Tree {
        let mut sources = Vec::new();
        collect_rs_files(src, src, &mut sources);
        sources.sort();
        let borrowed: Vec<(&str, &str)> = sources
            .iter()
            .map(|(p, s)| (p.as_str(), s.as_str()))
            .collect();
        Tree::from_sources(&borrowed)
    }

    /// Builds the tree from (path like `src/api/mod.rs`, source text) pairs.
    fn from_sources(sources: &[(&str, &str)]) -> Tree {
        let mut files: Vec<SourceFile> = sources
            .iter()
            .map(|(p, s)| SourceFile::parse(p, s))
            .collect();
        // Files declared `#[cfg(test)] mod name;` are test code: drop them.
        let test_modules: Vec<Vec<String>> = files
            .iter()
            .flat_map(SourceFile::test_child_paths)
            .collect();
        files.retain(|f| {
            !test_modules
                .iter()
                .any(|t| !f.is_main && f.module.starts_with(t))
        });
        let (mut modules, mut macros) = (BTreeMap::new(), BTreeMap::new());
        for (i, file) in files.iter().enumerate() {
            if !file.is_main {
                modules.insert(file.module.clone(), i);
                macros.extend(
                    exported_macros(&file.tokens)
                        .into_iter()
                        .map(|name| (name, i)),
                );
            }
        }
        Tree {
            files,
            modules,
            macros,
        }
    }

    /// The file of exactly this module path.
    fn module_file(&self, module: &[String]) -> Option<&SourceFile> {
        self.modules.get(module).map(|&i| &self.files[i])
    }

    /// The file of the longest prefix of `path` that is a module, and that prefix's length.
    fn longest_module(&self, path: &[String]) -> Option<(usize, usize)> {
        (0..=path.len())
            .rev()
            .find_map(|k| self.modules.get(&path[..k]).map(|&i| (i, k)))
    }

    /// The file defining what a crate-absolute path names: the deepest module
    /// file on the path, then through that file's `pub use` re-exports.
    fn resolve(&self, path: &[String]) -> Option<usize> {
        let mut path = path.to_vec();
        let mut found = None;
        // Bounded: re-exports could (wrongly) point at each other.
        for _ in 0..8 {
            let (file, depth) = self.longest_module(&path)?;
            // An exported macro sits at the crate root but lives in its file.
            if let Some(&defined_in) = path
                .first()
                .filter(|_| depth == 0)
                .and_then(|m| self.macros.get(m))
            {
                return Some(defined_in);
            }
            found = Some(file);
            let Some(name) = path.get(depth) else { break };
            match self.files[file].exports.get(name) {
                Some(target) if target[..] != path[..=depth] => {
                    path = target.iter().chain(&path[depth + 1..]).cloned().collect();
                }
                _ => break,
            }
        }
        found
    }

    /// The top-level module a crate-absolute path depends on: its first
    /// segment when that is a module, else where a root re-export leads.
    /// `None` for items of the crate root (say an exported macro).
    fn target_top_level(&self, path: &[String]) -> Option<String> {
        let first = path.first()?;
        if self.modules.contains_key(&path[..1]) || allowed_targets(first).is_some() {
            return Some(first.clone());
        }
        let file = &self.files[self.resolve(path)?];
        file.module.first().cloned()
    }

    /// A `mod.rs`, or an `x.rs` with files under `x/`: the map of its module.
    fn is_module_map(&self, file: &SourceFile) -> bool {
        file.path.ends_with("/mod.rs")
            || self
                .modules
                .keys()
                .any(|m| m.len() > file.module.len() && m.starts_with(&file.module))
    }
}

/// The names of the `#[macro_export] macro_rules! name` macros in a file.
fn exported_macros(tokens: &[Token]) -> Vec<String> {
    let mut names = Vec::new();
    let mut exported = false;
    for (i, token) in tokens.iter().enumerate() {
        match token.text.as_str() {
            "macro_export" => exported = true,
            "macro_rules" if tokens.get(i + 1).is_some_and(|t| t.text == "!") => {
                if let Some(name) = tokens.get(i + 2).filter(|t| exported && t.is_ident()) {
                    names.push(name.text.clone());
                }
                exported = false;
            }
            _ => {}
        }
    }
    names
}

/// Appends (path like `src/a/b.rs`, text) for every `.rs` file under `dir`.
fn collect_rs_files(src: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let relative = path
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        // `src/bin/*` would be other binaries, not library modules.
        if path.is_dir() && relative != "bin" {
            collect_rs_files(src, &path, out);
        } else if relative.ends_with(".rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push((format!("src/{relative}"), text));
        }
    }
}

/// The module path of a file: `src/api/checks.rs` → `api::checks`,
/// `src/api/mod.rs` → `api`, `src/lib.rs` and `src/main.rs` → the root.
fn module_path_of(path: &str) -> Vec<String> {
    let relative = path.strip_prefix("src/").unwrap_or(path);
    let relative = relative.strip_suffix(".rs").unwrap_or(relative);
    let mut segments: Vec<String> = relative.split('/').map(str::to_string).collect();
    let last = segments.last().map(String::as_str);
    if last == Some("mod") || (segments.len() == 1 && matches!(last, Some("lib" | "main"))) {
        segments.pop();
    }
    segments
}

/// One lexed file of `src/`.
struct SourceFile {
    /// Path from the crate root, e.g. `src/api/checks.rs`.
    path: String,
    /// Module path, e.g. `["api", "checks"]`; empty for `lib.rs` and `main.rs`.
    module: Vec<String>,
    /// `src/main.rs`: the binary, which names the library `consent_ledger`.
    is_main: bool,
    /// The code's tokens, without comments, literals' contents and test modules.
    tokens: Vec<Token>,
    /// Every path to crate code, in source order.
    refs: Vec<Reference>,
    /// `pub use` re-exports at file level: exported name → crate-absolute path.
    exports: BTreeMap<String, Vec<String>>,
    /// Every `use` at file level (re-exports too): name in scope → crate-absolute path.
    imports: BTreeMap<String, Vec<String>>,
    /// Child modules declared `#[cfg(test)] mod name;`.
    test_children: Vec<String>,
}

/// A path to crate code as written, and where it points.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    line: usize,
    /// As written, e.g. `super::records::parse_number`.
    written: String,
    /// Crate-absolute, e.g. `["api", "records", "parse_number"]`.
    path: Vec<String>,
    /// Part of a `pub use` (a re-export).
    from_pub_use: bool,
}

impl SourceFile {
    /// Lexes one file and finds its references and re-exports.
    fn parse(path: &str, source: &str) -> SourceFile {
        let (code, test_children) = blank_test_modules(&strip(source));
        let tokens = tokenize(&code);
        let is_main = path == "src/main.rs";
        let module = module_path_of(path);
        let scan = Scanner::new(&tokens, &module, is_main).run();
        SourceFile {
            path: path.to_string(),
            module,
            is_main,
            tokens,
            refs: scan.refs,
            exports: scan.exports,
            imports: scan.imports,
            test_children,
        }
    }

    /// The top-level module this file belongs to; `main` for the binary and
    /// `None` for `lib.rs`, which only declares modules.
    fn top_level(&self) -> Option<String> {
        if self.is_main {
            return Some("main".to_string());
        }
        self.module.first().cloned()
    }

    /// Module paths of the test-only child files this file declares.
    fn test_child_paths(&self) -> Vec<Vec<String>> {
        let child = |name: &String| self.module.iter().chain([name]).cloned().collect();
        if self.is_main {
            Vec::new()
        } else {
            self.test_children.iter().map(child).collect()
        }
    }
}

// ---------------------------------------------------------------------------
// Lexing
// ---------------------------------------------------------------------------

/// Blanks comments (doc comments too) and the insides of string, raw string,
/// byte string and char literals with spaces, keeping every newline, so that
/// positions and line numbers stay those of the source.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        i = match chars[i] {
            '/' if next == Some('/') => blank_line_comment(&chars, &mut out, i),
            '/' if next == Some('*') => blank_block_comment(&chars, &mut out, i),
            '"' => blank_string(&chars, &mut out, i + 1),
            '\'' => blank_char_literal(&chars, &mut out, i),
            c if is_ident_start(c) => skip_word(&chars, &mut out, i),
            _ => i + 1,
        };
    }
    out.into_iter().collect()
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Replaces `out[from..to]` with spaces, newlines excepted.
fn blank(out: &mut [char], from: usize, to: usize) {
    let to = to.min(out.len());
    for c in &mut out[from..to] {
        if *c != '\n' {
            *c = ' ';
        }
    }
}

/// `// …` up to the end of the line; returns where the newline is.
fn blank_line_comment(chars: &[char], out: &mut [char], start: usize) -> usize {
    let end = (start..chars.len())
        .find(|&k| chars[k] == '\n')
        .unwrap_or(chars.len());
    blank(out, start, end);
    end
}

/// `/* … */`, which nests in Rust; returns the index after it.
fn blank_block_comment(chars: &[char], out: &mut [char], start: usize) -> usize {
    let (mut depth, mut k) = (0, start);
    while k < chars.len() {
        let pair = (chars[k], chars.get(k + 1).copied().unwrap_or(' '));
        if pair == ('/', '*') {
            depth += 1;
            k += 2;
        } else if pair == ('*', '/') {
            depth -= 1;
            k += 2;
            if depth == 0 {
                break;
            }
        } else {
            k += 1;
        }
    }
    blank(out, start, k);
    k
}

/// The contents of a `"…"` string starting at `start` (after the quote),
/// with `\` escapes; returns the index after the closing quote.
fn blank_string(chars: &[char], out: &mut [char], start: usize) -> usize {
    let mut k = start;
    while k < chars.len() && chars[k] != '"' {
        k += if chars[k] == '\\' { 2 } else { 1 };
    }
    blank(out, start, k);
    k + 1
}

/// A raw string whose `#`s or quote start at `start` (after `r`/`br`/`cr`);
/// returns the index after it. `r#ident` (a raw identifier) is left alone.
fn blank_raw_string(chars: &[char], out: &mut [char], start: usize) -> usize {
    let hashes = chars[start..].iter().take_while(|&&c| c == '#').count();
    let quote = start + hashes;
    if chars.get(quote) != Some(&'"') {
        return quote;
    }
    let closes_at =
        |k: usize| chars[k] == '"' && (1..=hashes).all(|h| chars.get(k + h) == Some(&'#'));
    let end = (quote + 1..chars.len())
        .find(|&k| closes_at(k))
        .unwrap_or(chars.len());
    blank(out, quote + 1, end);
    end + 1 + hashes
}

/// A char literal at `start` (`'x'`, `'\n'`, `'\u{1F600}'`) has its contents
/// blanked; a lifetime or label (`'a`, `'static`) is skipped.
fn blank_char_literal(chars: &[char], out: &mut [char], start: usize) -> usize {
    let at = |k: usize| chars.get(k).copied();
    if at(start + 1) == Some('\\') {
        // The escaped char may be a quote, so look from after it.
        let end = (start + 3..chars.len())
            .find(|&k| chars[k] == '\'')
            .unwrap_or(chars.len());
        blank(out, start + 1, end);
        return end + 1;
    }
    if at(start + 2) == Some('\'') && at(start + 1) != Some('\n') {
        blank(out, start + 1, start + 2);
        return start + 3;
    }
    start + 1
}

/// Skips an identifier, or blanks the literal it prefixes (`r"…"`, `r#"…"#`,
/// `b"…"`, `br"…"`, `b'x'`, `c"…"`, `cr"…"`); returns the index after it.
fn skip_word(chars: &[char], out: &mut [char], start: usize) -> usize {
    let end = (start..chars.len())
        .find(|&k| !is_ident_char(chars[k]))
        .unwrap_or(chars.len());
    let word: String = chars[start..end].iter().collect();
    match (word.as_str(), chars.get(end)) {
        ("r" | "br" | "cr", Some('"' | '#')) => blank_raw_string(chars, out, end),
        ("b" | "c", Some('"')) => blank_string(chars, out, end + 1),
        ("b", Some('\'')) => blank_char_literal(chars, out, end),
        _ => end,
    }
}

/// A token of stripped code: an identifier (`$crate` included), `::`, or
/// one punctuation character.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    /// 1-based line.
    line: usize,
    /// Byte range in the code.
    start: usize,
    end: usize,
}

impl Token {
    fn is_ident(&self) -> bool {
        self.text
            .starts_with(|c: char| is_ident_start(c) || c == '$')
    }
}

/// Splits stripped code into tokens. Numbers become word tokens too, which is
/// harmless: no rule looks at them.
fn tokenize(code: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    let byte = |k: usize| chars.get(k).map_or(code.len(), |&(b, _)| b);
    let at = |k: usize| chars.get(k).map(|&(_, c)| c);
    let (mut tokens, mut line, mut i) = (Vec::new(), 1, 0);
    while let Some(c) = at(i) {
        let mut end = i + 1;
        if c.is_whitespace() {
            line += usize::from(c == '\n');
            i += 1;
            continue;
        } else if is_ident_char(c) || (c == '$' && at(i + 1).is_some_and(is_ident_start)) {
            end = (i + 1..chars.len())
                .find(|&k| !is_ident_char(chars[k].1))
                .unwrap_or(chars.len());
        } else if c == ':' && at(i + 1) == Some(':') {
            end = i + 2;
        }
        let mut text = code[byte(i)..byte(end)].to_string();
        // `r#type` is the identifier `type`.
        if text == "r" && at(end) == Some('#') && at(end + 1).is_some_and(is_ident_start) {
            let word_end = (end + 1..chars.len())
                .find(|&k| !is_ident_char(chars[k].1))
                .unwrap_or(chars.len());
            text = code[byte(end + 1)..byte(word_end)].to_string();
            end = word_end;
        }
        tokens.push(Token {
            text,
            line,
            start: byte(i),
            end: byte(end),
        });
        i = end;
    }
    tokens
}

/// The index of the bracket closing the one at `open` (`{`, `(` or `[`).
fn matching(tokens: &[Token], open: usize) -> Option<usize> {
    let (opener, closer) = match tokens[open].text.as_str() {
        "{" => ("{", "}"),
        "(" => ("(", ")"),
        "[" => ("[", "]"),
        _ => return None,
    };
    let mut depth = 0usize;
    for (k, token) in tokens.iter().enumerate().skip(open) {
        if token.text == opener {
            depth += 1;
        } else if token.text == closer {
            depth -= 1;
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

/// Blanks `#[cfg(test)] mod name { … }` blocks (found by brace matching) and
/// `#[cfg(test)] mod name;` lines; returns the code and those out-of-line
/// test modules' names.
fn blank_test_modules(code: &str) -> (String, Vec<String>) {
    let tokens = tokenize(code);
    let mut bytes = code.as_bytes().to_vec();
    let mut test_children = Vec::new();
    let texts: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
    let mut i = 0;
    while i < tokens.len() {
        if !texts[i..].starts_with(&["#", "[", "cfg", "(", "test", ")", "]"]) {
            i += 1;
            continue;
        }
        let Some((end, out_of_line)) = test_module_end(&tokens, i + 7) else {
            i += 1;
            continue;
        };
        test_children.extend(out_of_line);
        for b in &mut bytes[tokens[i].start..tokens[end].end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        i = end + 1;
    }
    // Only whole tokens (or ASCII) were replaced, so this is still UTF-8.
    (
        String::from_utf8(bytes).expect("blanking keeps UTF-8"),
        test_children,
    )
}

/// After a `#[cfg(test)]` ending at `from`: if a module follows (after more
/// attributes and a visibility), the index of its last token, and its name
/// when it lives in its own file.
fn test_module_end(tokens: &[Token], from: usize) -> Option<(usize, Option<String>)> {
    let text = |k: usize| tokens.get(k).map_or("", |t| t.text.as_str());
    let mut k = from;
    while text(k) == "#" && text(k + 1) == "[" {
        k = matching(tokens, k + 1)? + 1;
    }
    if text(k) == "pub" {
        k += 1;
        if text(k) == "(" {
            k = matching(tokens, k)? + 1;
        }
    }
    if text(k) != "mod" || !tokens.get(k + 1)?.is_ident() {
        return None;
    }
    match text(k + 2) {
        "{" => Some((matching(tokens, k + 2)?, None)),
        ";" => Some((k + 2, Some(text(k + 1).to_string()))),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Finding references
// ---------------------------------------------------------------------------

/// A leaf of a `use` tree: `use a::{b, c::d as e}` has `a::b` and `a::c::d` (alias `e`).
#[derive(Debug, Clone, PartialEq)]
struct UseLeaf {
    segments: Vec<String>,
    line: usize,
    alias: Option<String>,
    glob: bool,
}

/// What scanning one file finds.
struct Scan {
    refs: Vec<Reference>,
    exports: BTreeMap<String, Vec<String>>,
    imports: BTreeMap<String, Vec<String>>,
}

/// Walks a file's tokens, tracking inline `mod name { … }` blocks (which
/// change what `self` and `super` mean), and collects references.
struct Scanner<'t> {
    tokens: &'t [Token],
    file_module: &'t [String],
    is_main: bool,
    /// Child modules declared in this file (`mod name;` or `mod name { … }`).
    children: BTreeSet<String>,
    /// Enclosing inline modules with the brace depth they opened at.
    inline: Vec<(String, usize)>,
    depth: usize,
    scan: Scan,
}

impl<'t> Scanner<'t> {
    fn new(tokens: &'t [Token], file_module: &'t [String], is_main: bool) -> Self {
        let children = (0..tokens.len().saturating_sub(1))
            .filter(|&i| tokens[i].text == "mod" && tokens[i + 1].is_ident())
            .map(|i| tokens[i + 1].text.clone())
            .collect();
        let scan = Scan {
            refs: Vec::new(),
            exports: BTreeMap::new(),
            imports: BTreeMap::new(),
        };
        Scanner {
            tokens,
            file_module,
            is_main,
            children,
            inline: Vec::new(),
            depth: 0,
            scan,
        }
    }

    fn text(&self, k: usize) -> &str {
        self.tokens.get(k).map_or("", |t| t.text.as_str())
    }

    fn run(mut self) -> Scan {
        let mut i = 0;
        while i < self.tokens.len() {
            i = match self.text(i) {
                "{" => self.open_brace(i),
                "}" => self.close_brace(i),
                "use" if self.text(i + 1) != "<" => self.use_declaration(i),
                _ if self.starts_path(i) => self.inline_path(i),
                _ => i + 1,
            };
        }
        self.scan
    }

    fn open_brace(&mut self, i: usize) -> usize {
        if i >= 2 && self.text(i - 2) == "mod" && self.tokens[i - 1].is_ident() {
            self.inline.push((self.text(i - 1).to_string(), self.depth));
        }
        self.depth += 1;
        i + 1
    }

    fn close_brace(&mut self, i: usize) -> usize {
        self.depth = self.depth.saturating_sub(1);
        if self.inline.last().is_some_and(|&(_, d)| d == self.depth) {
            self.inline.pop();
        }
        i + 1
    }

    /// The module the current position is in, inline modules included.
    fn here(&self) -> Vec<String> {
        let inline = self.inline.iter().map(|(name, _)| name.clone());
        self.file_module.iter().cloned().chain(inline).collect()
    }

    /// `use …;` (also `pub use`, `pub(crate) use`): one reference per leaf,
    /// and file-level `pub use` leaves are recorded as re-exports.
    fn use_declaration(&mut self, i: usize) -> usize {
        let mut leaves = Vec::new();
        let end = parse_use_tree(self.tokens, i + 1, &[], &mut leaves);
        let is_pub = self.is_pub_before(i);
        let here = self.here();
        for leaf in leaves {
            let Some(path) = self.absolute(&leaf.segments, &here) else {
                continue;
            };
            if self.inline.is_empty() && !leaf.glob {
                let name = leaf.alias.clone().or_else(|| leaf.segments.last().cloned());
                if let Some(name) = name.filter(|n| n != "_") {
                    if is_pub {
                        self.scan.exports.insert(name.clone(), path.clone());
                    }
                    self.scan.imports.insert(name, path.clone());
                }
            }
            let glob = if leaf.glob { "::*" } else { "" };
            let written = format!("{}{glob}", leaf.segments.join("::"));
            self.scan.refs.push(Reference {
                line: leaf.line,
                written,
                path,
                from_pub_use: is_pub,
            });
        }
        // Resume after the `;` (a malformed tree stops where parsing did).
        (end..self.tokens.len())
            .find(|&k| self.text(k) == ";")
            .map_or(end, |k| k + 1)
    }

    /// Whether `use` at `i` follows `pub` or `pub(…)`.
    fn is_pub_before(&self, i: usize) -> bool {
        if i >= 1 && self.text(i - 1) == "pub" {
            return true;
        }
        if i >= 1 && self.text(i - 1) == ")" {
            let open = (0..i - 1).rev().find(|&k| self.text(k) == "(");
            return open.is_some_and(|k| k >= 1 && self.text(k - 1) == "pub");
        }
        false
    }

    fn starts_path(&self, i: usize) -> bool {
        starts_path(self.tokens, i)
    }

    /// A path in code such as `crate::store::connection::lock_log(…)`.
    fn inline_path(&mut self, i: usize) -> usize {
        let (segments, end) = path_at(self.tokens, i);
        let here = self.here();
        if let Some(path) = self.absolute(&segments, &here) {
            let written = segments.join("::");
            let line = self.tokens[i].line;
            self.scan.refs.push(Reference {
                line,
                written,
                path,
                from_pub_use: false,
            });
        }
        end
    }

    /// The crate-absolute path of `segments` written in module `here`, or
    /// `None` when it names another crate (or, in `main.rs`, the binary).
    fn absolute(&self, segments: &[String], here: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?.as_str();
        if self.is_main {
            return (first == LIBRARY_NAME).then(|| segments[1..].to_vec());
        }
        let at_file_level = self.inline.is_empty();
        let (base, rest): (Vec<String>, &[String]) = match first {
            "crate" | "$crate" => (Vec::new(), &segments[1..]),
            "self" => (here.to_vec(), &segments[1..]),
            "super" => {
                let supers = segments.iter().take_while(|s| *s == "super").count();
                let keep = here.len().checked_sub(supers)?;
                (here[..keep].to_vec(), &segments[supers..])
            }
            // 2018 paths: a child module is in scope by its bare name.
            name if at_file_level && self.children.contains(name) => (here.to_vec(), segments),
            _ => return None,
        };
        Some(base.into_iter().chain(rest.iter().cloned()).collect())
    }
}

/// Whether a path `x::y…` starts at `i`: not a later segment, a method
/// call's field, nor `pub(in crate::x)` (a visibility, not a dependency).
fn starts_path(tokens: &[Token], i: usize) -> bool {
    let text = |k: usize| tokens.get(k).map_or("", |t| t.text.as_str());
    let before = if i == 0 { "" } else { text(i - 1) };
    let visibility = before == "in" && i >= 2 && text(i - 2) == "(";
    tokens[i].is_ident()
        && text(i + 1) == "::"
        && tokens.get(i + 2).is_some_and(Token::is_ident)
        && before != "::"
        && before != "."
        && !visibility
}

/// The segments of the path starting at `i` (`a::b::c`, stopping before a
/// turbofish or a group) and the index after it.
fn path_at(tokens: &[Token], i: usize) -> (Vec<String>, usize) {
    let mut segments = vec![tokens[i].text.clone()];
    let mut k = i;
    while tokens.get(k + 1).is_some_and(|t| t.text == "::")
        && tokens.get(k + 2).is_some_and(Token::is_ident)
    {
        segments.push(tokens[k + 2].text.clone());
        k += 2;
    }
    (segments, k + 1)
}

/// Parses the use tree at `i` under the segments in `prefix`, pushing one
/// leaf per imported path (`self` in a group names the prefix itself);
/// returns the index after the tree.
fn parse_use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
    leaves: &mut Vec<UseLeaf>,
) -> usize {
    let mut segments = prefix.to_vec();
    while let Some(token) = tokens.get(i) {
        match token.text.as_str() {
            "{" => return parse_use_group(tokens, i, &segments, leaves),
            "*" => {
                leaves.push(UseLeaf {
                    segments,
                    line: token.line,
                    alias: None,
                    glob: true,
                });
                return i + 1;
            }
            // A leading `::` names an extern crate; a marker keeps it external.
            "::" if segments.is_empty() => segments.push("::".to_string()),
            "::" => {}
            _ if token.is_ident() => {
                segments.push(token.text.clone());
                if tokens.get(i + 1).is_some_and(|t| t.text == "::") {
                    i += 2;
                    continue;
                }
                return finish_use_leaf(tokens, i + 1, segments, token.line, leaves);
            }
            _ => return i,
        }
        i += 1;
    }
    i
}

/// `{ tree, tree, … }` at `open`; returns the index after the `}`.
fn parse_use_group(
    tokens: &[Token],
    open: usize,
    prefix: &[String],
    leaves: &mut Vec<UseLeaf>,
) -> usize {
    let mut i = open + 1;
    while tokens.get(i).is_some_and(|t| t.text != "}") {
        let next = parse_use_tree(tokens, i, prefix, leaves);
        // Always make progress, even on a token the grammar does not expect.
        i = if next == i { i + 1 } else { next };
        if tokens.get(i).is_some_and(|t| t.text == ",") {
            i += 1;
        }
    }
    i + 1
}

/// Pushes a leaf whose last segment was just read, with its `as` alias if
/// one follows at `i`; returns the index after it.
fn finish_use_leaf(
    tokens: &[Token],
    mut i: usize,
    mut segments: Vec<String>,
    line: usize,
    leaves: &mut Vec<UseLeaf>,
) -> usize {
    let mut alias = None;
    if tokens.get(i).is_some_and(|t| t.text == "as") {
        alias = tokens.get(i + 1).map(|t| t.text.clone());
        i += 2;
    }
    if segments.last().is_some_and(|s| s == "self") {
        segments.pop();
    }
    leaves.push(UseLeaf {
        segments,
        line,
        alias,
        glob: false,
    });
    i
}

// ---------------------------------------------------------------------------
// Tests of the checker itself
// ---------------------------------------------------------------------------

/// The references of one file in a small tree, as (line, crate-absolute path).
fn refs_of(tree: &Tree, path: &str) -> Vec<(usize, String)> {
    let file = tree
        .files
        .iter()
        .find(|f| f.path == path)
        .expect("a file of the tree");
    file.refs
        .iter()
        .map(|r| (r.line, r.path.join("::")))
        .collect()
}

/// The file a crate-absolute path like `store::DbConn` resolves to.
fn resolved(tree: &Tree, path: &str) -> Option<String> {
    let segments: Vec<String> = path.split("::").map(str::to_string).collect();
    tree.resolve(&segments).map(|i| tree.files[i].path.clone())
}

#[test]
fn strip_blanks_comments_and_literals_but_keeps_lines() {
    let source = "/// see crate::api\nlet s = \"crate::api\"; // crate::api\n/* a /* nested */ crate::api */ x\nlet r = r#\"a \" crate::api\"#; let c = '\"'; let b = b\"crate::api\";\nfn f<'a>(x: &'a str) -> char { '{' }\n";
    let stripped = strip(source);
    assert_eq!(stripped.lines().count(), source.lines().count());
    assert!(!stripped.contains("api"), "{stripped}");
    assert!(
        stripped.contains("fn f<'a>(x: &'a str) -> char { ' ' }"),
        "{stripped}"
    );
    assert!(
        stripped.contains(" x\n"),
        "text after a nested comment survives: {stripped}"
    );
    assert_eq!(strip("let q = '\\''; crate::x"), "let q = '  '; crate::x");
}

#[test]
fn comments_and_strings_make_no_references() {
    let tree = Tree::from_sources(&[
        ("src/lib.rs", ""),
        ("src/domain/mod.rs", "//! Not `crate::api`.\n/// Unlike crate::api::x.\nfn f() -> &'static str { \"crate::api\" }\n"),
    ]);
    assert_eq!(refs_of(&tree, "src/domain/mod.rs"), vec![]);
}

#[test]
fn grouped_use_gives_one_reference_per_leaf() {
    let source = "use crate::{a::b, c::{self, d as e}, f::*};\npub(crate) use super::{\n    g,\n    h::i,\n};\nuse std::io;\n";
    let tree = Tree::from_sources(&[("src/lib.rs", ""), ("src/api/x.rs", source)]);
    let expected = [
        (1, "a::b"),
        (1, "c"),
        (1, "c::d"),
        (1, "f"),
        (3, "api::g"),
        (4, "api::h::i"),
    ];
    let expected: Vec<(usize, String)> =
        expected.iter().map(|&(l, p)| (l, p.to_string())).collect();
    assert_eq!(refs_of(&tree, "src/api/x.rs"), expected);
}

#[test]
fn super_and_self_resolve_from_the_file_module() {
    let tree = Tree::from_sources(&[
        ("src/lib.rs", ""),
        ("src/api/mod.rs", "use super::store::X;\nuse self::checks::Y;\nfn f() { checks::run(); }\npub mod checks;\n"),
        ("src/api/checks.rs", "use super::AppState;\nuse super::super::store::Z;\nfn f() { $crate::store::W; crate::keys::k(); }\n"),
        ("src/main.rs", "fn main() { consent_ledger::cli::run(); crate::local::x(); }\n"),
    ]);
    let api_mod = ["store::X", "api::checks::Y", "api::checks::run"];
    let api_mod: Vec<(usize, String)> = api_mod
        .iter()
        .zip(1..)
        .map(|(p, l)| (l, p.to_string()))
        .collect();
    assert_eq!(refs_of(&tree, "src/api/mod.rs"), api_mod);
    let checks: Vec<String> = refs_of(&tree, "src/api/checks.rs")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(checks, ["api::AppState", "store::Z", "store::W", "keys::k"]);
    assert_eq!(
        refs_of(&tree, "src/main.rs"),
        vec![(1, "cli::run".to_string())]
    );
}

#[test]
fn inline_modules_change_what_super_means() {
    let source =
        "mod inner {\n    use super::Thing;\n    use super::super::Other;\n}\nuse super::Third;\n";
    let tree = Tree::from_sources(&[("src/lib.rs", ""), ("src/store/pool.rs", source)]);
    let paths: Vec<String> = refs_of(&tree, "src/store/pool.rs")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        paths,
        ["store::pool::Thing", "store::Other", "store::Third"]
    );
}

#[test]
fn paths_resolve_to_files_through_re_exports() {
    let tree = Tree::from_sources(&[
        ("src/lib.rs", ""),
        ("src/store/mod.rs", "pub mod append;\npub mod connection;\npub mod pool;\npub use connection::DbConn;\npub use pool::{DbPool, Pooled as Pool};\npub struct StoreError;\n"),
        ("src/store/connection.rs", "pub enum DbConn {}\n"),
        ("src/store/pool.rs", "pub struct DbPool;\n"),
        ("src/store/append.rs", "use super::DbConn;\n"),
        ("src/api/checks/mod.rs", "pub fn evaluate() {}\n"),
        ("src/store/log.rs", "#[macro_export]\nmacro_rules! on_backend { () => {} }\n"),
    ]);
    assert_eq!(
        resolved(&tree, "on_backend").as_deref(),
        Some("src/store/log.rs")
    );
    assert_eq!(
        resolved(&tree, "store::DbConn").as_deref(),
        Some("src/store/connection.rs")
    );
    assert_eq!(
        resolved(&tree, "store::Pool").as_deref(),
        Some("src/store/pool.rs")
    );
    assert_eq!(
        resolved(&tree, "store::StoreError").as_deref(),
        Some("src/store/mod.rs")
    );
    assert_eq!(
        resolved(&tree, "api::checks::evaluate").as_deref(),
        Some("src/api/checks/mod.rs")
    );
    assert_eq!(
        resolved(&tree, "store::append::x::y").as_deref(),
        Some("src/store/append.rs")
    );
    // The mod.rs re-exports are its map, so no cycle with append.rs.
    assert_eq!(cycle_violations(&tree), Vec::<String>::new());
}

#[test]
fn test_modules_are_skipped() {
    let source = "fn a() {}\n#[cfg(test)]\n#[allow(unused)]\nmod tests {\n    use crate::api::x;\n    fn b() { if true { } }\n}\nuse crate::keys::k;\n#[cfg(test)]\nmod more;\n";
    let tree = Tree::from_sources(&[
        ("src/lib.rs", ""),
        ("src/domain/mod.rs", source),
        ("src/domain/more.rs", "use crate::api::y;\n"),
    ]);
    assert_eq!(
        refs_of(&tree, "src/domain/mod.rs"),
        vec![(8, "keys::k".to_string())]
    );
    assert!(tree.files.iter().all(|f| f.path != "src/domain/more.rs"));
    let names: Vec<String> = function_spans(&tree.files[1].tokens)
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn function_length_counts_from_fn_to_closing_brace() {
    let source = "trait T {\n    fn declared(&self) -> [u8; 32];\n}\npub fn key(x: [u8; 2]) -> [u8; 32] {\n    let f: fn(u8) -> u8 = g;\n    {\n    }\n}\n";
    let spans = function_spans(&tokenize(&strip(source)));
    assert_eq!(
        spans,
        vec![FnSpan {
            name: "key".to_string(),
            line: 4,
            lines: 5
        }]
    );
}

#[test]
fn cycles_are_found_and_reported_with_lines() {
    let tree = Tree::from_sources(&[
        ("src/lib.rs", ""),
        (
            "src/api/mod.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub struct AppState;\n",
        ),
        ("src/api/a.rs", "use super::b::x;\nuse super::AppState;\n"),
        (
            "src/api/b.rs",
            "\nuse super::c::y;\nfn f() { super::a::z(); }\n",
        ),
        ("src/api/c.rs", "use super::b::w;\n"),
    ]);
    let expected = [
        "cycle: src/api/a.rs:1 -> src/api/b.rs:3 -> src/api/a.rs",
        "cycle: src/api/b.rs:2 -> src/api/c.rs:1 -> src/api/b.rs",
    ];
    assert_eq!(cycle_violations(&tree), expected);
}

#[test]
fn framework_paths_are_found_only_where_they_start_a_path() {
    let source = "use tokio::sync::Mutex;\n#[derive(diesel::Queryable)]\nstruct S;\nfn f() { my::tokio::x(); let s = \"actix_web::web\"; }\nuse reqwest;\nuse actix_web::{get, web};\n";
    let tree = Tree::from_sources(&[("src/lib.rs", ""), ("src/ledger/x.rs", source)]);
    let expected = [
        "src/ledger/x.rs:1: ledger is pure but names tokio (tokio::sync::Mutex)",
        "src/ledger/x.rs:2: ledger is pure but names diesel (diesel::Queryable)",
        "src/ledger/x.rs:5: ledger is pure but names reqwest (reqwest)",
        "src/ledger/x.rs:6: ledger is pure but names actix_web (actix_web::{…})",
    ];
    assert_eq!(framework_violations(&tree), expected);
}

#[test]
fn layer_rule_reports_forbidden_and_unknown_modules() {
    let tree = Tree::from_sources(&[
        ("src/lib.rs", ""),
        (
            "src/providers/mod.rs",
            "use crate::api::AppState;\nuse crate::domain::x;\nuse self::y::z;\n",
        ),
        ("src/signer.rs", "use crate::api::x;\n"),
        ("src/main.rs", "fn main() { consent_ledger::store::x(); }\n"),
    ]);
    let expected = [
        "src/signer.rs: module signer is not in the layer table",
        "src/providers/mod.rs:1: providers may not depend on api (crate::api::AppState)",
        "src/main.rs:1: main may not depend on store (consent_ledger::store::x)",
    ];
    assert_eq!(layer_violations(&tree), expected);
}

#[test]
fn store_rule_follows_aliases_and_reports_lines_and_stale_entries() {
    let tree = Tree::from_sources(&[
        ("src/lib.rs", ""),
        ("src/store/mod.rs", "pub mod tenants;\npub mod audit;\n"),
        ("src/store/tenants.rs", "pub fn list_brands() {}\npub fn create_brand() {}\n"),
        ("src/store/audit.rs", "pub enum AuditKind { BrandCreated }\n"),
        (
            "src/api/brands.rs",
            "use crate::store::tenants::{self as store};\nuse crate::store::audit::AuditKind;\nfn list() { store::list_brands(); }\nfn create() {\n    store::create_brand();\n    let _ = crate::store::audit::AuditKind::BrandCreated;\n}\n",
        ),
        ("src/api/pages/mod.rs", "use crate::store::*;\n"),
    ]);
    let allowed = [
        ("src/api/", "store::audit::AuditKind", "a type"),
        ("src/api/brands.rs", "store::tenants::list_brands", "a read"),
        ("src/api/keys.rs", "store::tenants::list_api_keys", "a read"),
    ];
    let expected = [
        "src/api/brands.rs:5: store::tenants::create_brand: the HTTP layer reaches the store; call a service, or name this plain read in STORE_FROM_API with why",
        "src/api/pages/mod.rs:1: store::*: the HTTP layer reaches the store; call a service, or name this plain read in STORE_FROM_API with why",
        "STORE_FROM_API: src/api/keys.rs no longer names store::tenants::list_api_keys: take it off the list",
    ];
    assert_eq!(store_reach_violations(&tree, &allowed), expected);
}
