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
                @let columns = columns(rows);
                @let label = format!("{caption}: {key}");
                (scroll(&label, html! {
                    table {
                        caption { code { (key) } " (" (caption) ")" }
                        thead {
                            tr {
                                th scope="col" { "#" }
                                @for c in &columns { th.num scope="col" { (c) } }
                            }
                        }
                        tbody {
                            @for (i, row) in rows.iter().enumerate() {
                                tr {
                                    th scope="row" { (i + 1) }
                                    @for c in &columns {
                                        @let cell = row.get(c.as_str());
                                        td class=[cell.is_some_and(is_number).then_some("num")] {
                                            (cell.map_or_else(String::new, scalar))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// The keys of `rows` in order of first appearance.
fn columns(rows: &[&serde_json::Map<String, Value>]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    cols
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
        assert_eq!(columns(&top.arrays[0].1), ["err", "sigma", "extra"]);
        let names: Vec<&str> = f.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["", "train.optimizer", "train"]);
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
