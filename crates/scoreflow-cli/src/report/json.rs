//! Any JSON document as HTML, for the files the report has no dedicated view of
//! (`meta.json`, a lesson's settings and numbers, `diagnostics.json`, …): scalars grouped by
//! their parent key path (keys in serde_json's sorted order), each group a description list,
//! and every array of objects as a table, one row per element and one column per key.

use maud::{html, Markup};
use serde_json::Value;

use super::format::number;

/// Longest list of scalars shown in full; longer ones show their first values and the count.
const MAX_LIST: usize = 16;
/// Longest text shown for a nested value inside a table cell.
const MAX_CELL: usize = 120;

/// A scalar as text: numbers by [`number`], `null` as `—`.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => {
            let s = v.to_string();
            if s.chars().count() > MAX_CELL {
                format!("{}…", s.chars().take(MAX_CELL).collect::<String>())
            } else {
                s
            }
        }
    }
}

/// True for a JSON number.
fn is_number(v: &Value) -> bool {
    matches!(v, Value::Number(_))
}

/// The scalars and object arrays that share one parent key path.
#[derive(Debug, Default)]
pub struct Group<'a> {
    /// The parent key path ("" at the top).
    pub name: String,
    /// (key, value text, numeric) of every scalar and list of scalars.
    pub scalars: Vec<(String, String, bool)>,
    /// (key, elements) of every non-empty array of objects.
    pub arrays: Vec<(String, Vec<&'a serde_json::Map<String, Value>>)>,
}

/// A document flattened into groups, in order of first appearance.
#[derive(Debug, Default)]
pub struct Flat<'a> {
    /// The groups.
    pub groups: Vec<Group<'a>>,
}

impl<'a> Flat<'a> {
    /// The group of the key path `path` and the key's last component.
    fn group(&mut self, path: &str) -> (&mut Group<'a>, String) {
        let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
        let i = match self.groups.iter().position(|g| g.name == parent) {
            Some(i) => i,
            None => {
                self.groups.push(Group {
                    name: parent.to_string(),
                    ..Group::default()
                });
                self.groups.len() - 1
            }
        };
        (&mut self.groups[i], key.to_string())
    }

    fn scalar(&mut self, path: &str, text: String, numeric: bool) {
        let (g, key) = self.group(path);
        g.scalars.push((key, text, numeric));
    }
}

/// Flattens `v` (see the module doc); `path` is the key path of `v` ("" at the top).
pub fn flatten<'a>(v: &'a Value, path: &str, out: &mut Flat<'a>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            if m.is_empty() && !path.is_empty() {
                out.scalar(path, "{}".into(), false);
            }
            for (k, x) in m {
                flatten(x, &join(k), out);
            }
        }
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
            let (g, key) = out.group(path);
            g.arrays
                .push((key, a.iter().filter_map(Value::as_object).collect()));
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let shown: Vec<String> = a.iter().take(MAX_LIST).map(scalar).collect();
            let text = if a.len() > MAX_LIST {
                format!("[{}, …] ({} values)", shown.join(", "), a.len())
            } else {
                format!("[{}]", shown.join(", "))
            };
            out.scalar(path, text, false);
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.scalar(path, scalar(v), is_number(v)),
    }
}

/// A table that scrolls sideways on its own when wider than the screen (keyboard-focusable,
/// labelled for screen readers).
pub fn scroll(label: &str, table: Markup) -> Markup {
    html! {
        div.table-wrap role="region" aria-label=(label) tabindex="0" { (table) }
    }
}

/// Name–value pairs (key, value text, numeric) as a description list laid out in columns.
pub fn props(items: impl IntoIterator<Item = (String, String, bool)>) -> Markup {
    html! {
        dl.props {
            @for (k, text, numeric) in items {
                div {
                    dt { code { (k) } }
                    dd class=[numeric.then_some("num")] { (text) }
                }
            }
        }
    }
}

/// `v` as lists and tables (see the module doc): one block per parent key path, headed by the
/// path when there is more than one block, the top level first; `caption` names the document.
pub fn tables(v: &Value, caption: &str) -> Markup {
    let mut flat = Flat::default();
    flatten(v, "", &mut flat);
    // The top level first (it has no heading to tell it apart further down).
    flat.groups.sort_by_key(|g| !g.name.is_empty());
    let headed = flat.groups.len() > 1 || flat.groups.iter().any(|g| !g.name.is_empty());
    html! {
        @for g in &flat.groups {
            @if headed && !g.name.is_empty() { h4 { code { (g.name) } } }
            @if !g.scalars.is_empty() { (props(g.scalars.iter().cloned())) }
            @for (key, rows) in &g.arrays {
                (records(key, rows, caption))
            }
        }
    }
}

/// One element of an array of objects as (dotted key, cell text, numeric): nested objects
/// flattened, lists of scalars as lists, anything deeper as compact JSON.
fn leaves(m: &serde_json::Map<String, Value>) -> Vec<(String, String, bool)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, String, bool)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(x, p, out);
                }
            }
            Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
                let shown: Vec<String> = a.iter().take(MAX_LIST).map(scalar).collect();
                let more = if a.len() > MAX_LIST { ", …" } else { "" };
                out.push((path, format!("[{}{more}]", shown.join(", ")), false));
            }
            _ => out.push((path, scalar(v), is_number(v))),
        }
    }
    let mut out = Vec::new();
    walk(&Value::Object(m.clone()), String::new(), &mut out);
    out
}

/// Most columns a table of records shows before it turns: beyond this (and more fields than
/// records), each field becomes a row and each record a column.
const MAX_COLUMNS: usize = 8;

/// An array of objects as a table: one row per element and one column per (flattened) key, or
/// transposed when the elements have many fields.
fn records(key: &str, rows: &[&serde_json::Map<String, Value>], caption: &str) -> Markup {
    let cells: Vec<Vec<(String, String, bool)>> = rows.iter().map(|r| leaves(r)).collect();
    let mut columns: Vec<String> = Vec::new();
    for r in &cells {
        for (k, _, _) in r {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let cell = |i: usize, c: &str| cells[i].iter().find(|x| x.0 == c);
    let label = format!("{caption}: {key}");
    let transposed = columns.len() > MAX_COLUMNS && columns.len() > rows.len();
    scroll(
        &label,
        html! {
            table {
                caption { code { (key) } " (" (caption) ")" }
                @if transposed {
                    thead {
                        tr {
                            th scope="col" { "field" }
                            @for i in 0..rows.len() { th.num scope="col" { "#" (i + 1) } }
                        }
                    }
                    tbody {
                        @for c in &columns {
                            tr {
                                th scope="row" { code { (c) } }
                                @for i in 0..rows.len() {
                                    @let x = cell(i, c);
                                    td class=[x.is_some_and(|x| x.2).then_some("num")] { (x.map_or("", |x| x.1.as_str())) }
                                }
                            }
                        }
                    }
                } @else {
                    thead {
                        tr {
                            th scope="col" { "#" }
                            @for c in &columns { th.num scope="col" { (c) } }
                        }
                    }
                    tbody {
                        @for i in 0..rows.len() {
                            tr {
                                th scope="row" { (i + 1) }
                                @for c in &columns {
                                    @let x = cell(i, c);
                                    td class=[x.is_some_and(|x| x.2).then_some("num")] { (x.map_or("", |x| x.1.as_str())) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_flatten_to_groups_lists_and_row_tables() {
        let v = json!({
            "train": {"steps": 20, "optimizer": {"lr": 0.002, "clip": null}},
            "weights": [0.2, 0.8],
            "long": (0..20).collect::<Vec<i32>>(),
            "levels": [{"sigma": 0.05, "err": 1.5}, {"sigma": 1.0, "extra": "x"}],
            "mixed": [1, [2, 3]],
            "name": "<sm>"
        });
        let mut f = Flat::default();
        flatten(&v, "", &mut f);
        let get = |g: &str, k: &str| {
            f.groups
                .iter()
                .find(|x| x.name == g)
                .and_then(|x| x.scalars.iter().find(|s| s.0 == k))
                .map(|s| s.1.clone())
        };
        assert_eq!(get("train", "steps").as_deref(), Some("20"));
        assert_eq!(get("train.optimizer", "lr").as_deref(), Some("0.002"));
        assert_eq!(get("train.optimizer", "clip").as_deref(), Some("—"));
        assert_eq!(get("", "weights").as_deref(), Some("[0.2, 0.8]"));
        assert_eq!(
            get("", "long").as_deref(),
            Some("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, …] (20 values)")
        );
        assert_eq!(get("", "mixed[0]").as_deref(), Some("1"));
        assert_eq!(get("", "mixed[1]").as_deref(), Some("[2, 3]"));
        // serde_json's maps are sorted by key: "levels" comes first, so the top group does.
        assert_eq!(f.groups[0].name, "");
        let top = &f.groups[0];
        assert_eq!(top.arrays.len(), 1);
        assert_eq!(top.arrays[0].0, "levels");
        // The first element gives err, sigma; the second adds extra.
        let html = records("levels", &top.arrays[0].1, "doc").into_string();
        let at = |s: &str| {
            html.find(s)
                .unwrap_or_else(|| panic!("{s} missing: {html}"))
        };
        assert!(at(">err<") < at(">sigma<") && at(">sigma<") < at(">extra<"));
        let names: Vec<&str> = f.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["", "train.optimizer", "train"]);
    }

    #[test]
    fn records_with_many_nested_fields_turn_into_field_rows() {
        let stats = json!({"mean": 0.5, "min": 0.1, "max": 0.9, "q50": 0.4});
        let v = json!([{"t": 0.1, "summary": {"a": stats, "b": stats}},
                       {"t": 0.5, "summary": {"a": stats, "b": stats}}]);
        let rows: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_object)
            .collect();
        let html = records("times", &rows, "diagnostics.json").into_string();
        // 9 flattened fields > 8 and > 2 records: one row per field, one column per record.
        assert!(html.contains("<th scope=\"col\">field</th><th class=\"num\" scope=\"col\">#1</th><th class=\"num\" scope=\"col\">#2</th>"), "{html}");
        assert!(html.contains("<th scope=\"row\"><code>summary.b.q50</code></th><td class=\"num\">0.4</td><td class=\"num\">0.4</td>"), "{html}");
        // Few fields: one row per record.
        let few: Vec<_> = rows.iter().map(|_| json!({"t": 1, "u": [1, 2]})).collect();
        let few: Vec<_> = few.iter().filter_map(Value::as_object).collect();
        let html = records("x", &few, "d").into_string();
        assert!(
            html.contains("<th scope=\"row\">2</th><td class=\"num\">1</td><td>[1, 2]</td>"),
            "{html}"
        );
    }

    #[test]
    fn tables_escape_text_and_scope_their_headers() {
        let v = json!({"name": "<script>alert(1)</script>", "rows": [{"a": 1}], "x": {"y": 2}});
        let html = tables(&v, "lesson & co").into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("<dd>&lt;script&gt;alert(1)&lt;/script&gt;</dd>"));
        assert!(html.contains("(lesson &amp; co)</caption>"));
        assert!(html.contains("<th scope=\"row\">1</th>"));
        assert!(html.contains("<th class=\"num\" scope=\"col\">a</th>"));
        assert!(html.contains("<td class=\"num\">1</td>"));
        assert!(html.contains("<h4><code>x</code></h4>"));
        assert!(html.contains("<dt><code>y</code></dt><dd class=\"num\">2</dd>"));
    }
}
