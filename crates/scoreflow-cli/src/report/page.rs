//! The pages: one run, one lesson, and an index over a directory of them. Semantic HTML
//! (header, nav, main, section, figure/figcaption, tables with scoped headers), one inline
//! style sheet that follows the reader's light or dark setting and narrows to a phone, no
//! script, and a Content-Security-Policy that forbids every load but inline `data:` images.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use scoreflow::data::images::Memorisation;
use scoreflow::metrics::MetricReport;
use serde::Deserialize;
use serde_json::Value;

use super::chart::{sparkline, Chart};
use super::contents::{Contents, Kind, Picture, REPORT_FILE};
use super::format::{self, number};
use super::json::{self, scroll};
use crate::output::TrainLog;

/// The style sheet.
const CSS: &str = include_str!("style.css");

/// Nothing may load: pictures only as `data:` URIs, styles only inline, no script at all.
pub const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
    base-uri 'none'; form-action 'none'";

/// "scoreflow 0.1.0".
fn generator() -> String {
    format!("scoreflow {}", env!("CARGO_PKG_VERSION"))
}

/// The document around `body`.
fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy" content=(CSP);
                meta name="color-scheme" content="light dark";
                meta name="generator" content=(generator());
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
}

/// One picture with its caption; pictures more than 2.4 times as wide as tall (rows of
/// panels) keep a readable size on a phone and scroll sideways inside their figure.
fn figure(p: &Picture, caption: &str) -> Markup {
    let wide = f64::from(p.size.0) > 2.4 * f64::from(p.size.1);
    let img = html! {
        img class=[wide.then_some("wide")] src=(p.data_uri()) width=(p.size.0) height=(p.size.1) alt=(caption);
    };
    html! {
        figure {
            @if wide {
                div.pan role="region" aria-label=(p.name) tabindex="0" { (img) }
            } @else {
                (img)
            }
            figcaption {
                (caption) " " code { (p.name) }
                @if wide { span.pan-hint { " — scroll sideways for every panel" } }
            }
        }
    }
}

/// The header: kicker, title, one line of facts, the way back and the section links.
fn header(
    kicker: &str,
    title: &str,
    lede: Markup,
    back: Option<&str>,
    nav: &[(&str, &str)],
) -> Markup {
    html! {
        header {
            @if let Some(href) = back {
                p.back { a href=(href) { "← all reports" } }
            }
            p.kicker { (kicker) }
            h1 { (title) }
            @if !lede.0.is_empty() { p.lede { (lede) } }
            @if nav.len() > 1 {
                nav aria-label="sections" {
                    ul { @for (id, label) in nav { li { a href={ "#" (id) } { (label) } } } }
                }
            }
        }
    }
}

/// The footer: what made the page and every file of the directory with its size.
fn footer(c: &Contents) -> Markup {
    html! {
        footer {
            p {
                "Made by " (generator()) " (" code { "scoreflow report" } ") from "
                code { (c.dir.strip_prefix(".").unwrap_or(&c.dir).display()) } ". Every number and picture is inside this file; it loads nothing."
            }
            details {
                summary { "Files in the directory (" (c.files.len()) ")" }
                (scroll("files", html! {
                    table {
                        thead { tr { th scope="col" { "file" } th.num scope="col" { "size" } } }
                        tbody {
                            @for (name, size) in &c.files {
                                tr { th scope="row" { code { (name) } } td.num { (format::bytes(*size)) } }
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// The page of a run or lesson; `back` links to the index over its parent directory.
pub fn report(c: &Contents, back: Option<&str>) -> Markup {
    match c.kind {
        Kind::Run => run_page(c, back),
        Kind::Lesson => lesson_page(c, back),
    }
}

// ---------------------------------------------------------------------------------------
// Runs

/// Pictures of a run in reading order, with what each shows; anything else follows by name.
const RUN_PICTURES: [(&str, &str); 5] = [
    ("samples.png", "Held-out data (left) and the model's samples (right)."),
    ("flow.gif", "Samples flowing from noise (t = 0) to data (t = 1) along the model's ODE."),
    ("field.png", "The learned field as arrows over the data, at several flow times t (0 = noise, 1 = data), coloured by magnitude."),
    ("trajectories.png", "Paths of samples from noise to data."),
    ("density.png", "The model's log-density (exact likelihood along the ODE) next to the true one when the data set has one."),
];
/// Pictures of an image run (`scoreflow plot` on images) in reading order, with what each shows.
const IMAGE_PICTURES: [(&str, &str); 3] = [
    ("samples.png", "The model's samples as a grid of images (data units)."),
    ("flow.gif", "Samples flowing from noise (t = 0) to images (t = 1) along the model's ODE."),
    ("neighbours.png", "Memorisation check: each sample (left of a pair) beside its nearest training image (right); samples that copy the training set would match their neighbours."),
];
/// Diagnostic pictures of `scoreflow plot --diagnose`.
const DIAGNOSTIC_PICTURES: [(&str, &str); 2] = [
    ("curl.png", "Curl ∂v₂/∂x₁ − ∂v₁/∂x₂ of the field: zero everywhere for a true score (a gradient)."),
    ("stiffness.png", "Stiffness ratio max|λ|/min|λ| of the field's Jacobian (log₁₀): where explicit solvers need small steps."),
];
/// The loss picture of `scoreflow plot` (the page draws its own charts of the log).
const LOSS_PICTURE: &str = "loss.png";

/// A file name as words: `fields_noisy.png` → "fields noisy".
fn words(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    stem.replace(['_', '-'], " ")
}

/// True for a run on images (its directory holds `images.json`).
fn is_image_run(c: &Contents) -> bool {
    c.files.iter().any(|(name, _)| name == "images.json")
}

/// "flow-matching run", "score-based run (DSM, VP SDE)", … from `config.toml`.
fn run_kind(c: &Contents) -> String {
    match c.setting("method").as_deref() {
        Some("cfm") => "flow-matching run".into(),
        Some("dsm") => format!(
            "score-based run (DSM, {} SDE)",
            c.setting("sde").unwrap_or_default().to_uppercase()
        ),
        Some(m @ ("sm" | "ssm")) => format!("score-matching run ({m})"),
        Some(m) => format!("{m} run"),
        None => "run".into(),
    }
}

/// One line of the run's main settings, from `config.toml`.
fn run_facts(c: &Contents) -> String {
    let s = |k: &str| c.setting(k);
    let mut parts = Vec::new();
    if let (Some(m), Some(d)) = (s("method"), s("data")) {
        parts.push(format!("{m} on {d}"));
    }
    if is_image_run(c) && s("arch").as_deref() != Some("mlp") {
        if let Some(b) = s("base") {
            parts.push(format!("U-Net base {b}"));
        }
    } else if let (Some(w), Some(d)) = (s("width"), s("depth")) {
        parts.push(format!("MLP {w} × {d}"));
    }
    if let Some(n) = s("steps") {
        parts.push(match s("batch") {
            Some(b) => format!("{n} steps of batch {b}"),
            None => format!("{n} steps"),
        });
    }
    if let Some(lr) = s("lr") {
        parts.push(match s("schedule") {
            Some(sch) => format!("lr {lr} ({sch})"),
            None => format!("lr {lr}"),
        });
    }
    if let Some(seed) = s("seed") {
        parts.push(format!("seed {seed}"));
    }
    parts.join(" · ")
}

/// `metrics.json` as written by `scoreflow eval` and `quickstart`.
#[derive(Debug, Deserialize)]
struct Metrics {
    #[serde(default)]
    samples_from: Option<String>,
    #[serde(default)]
    reference_from: Option<String>,
    samples: MetricReport,
    floor: MetricReport,
    #[serde(default)]
    nll: Option<Nll>,
    #[serde(default)]
    mmd_bandwidths: Option<Vec<f64>>,
    #[serde(default)]
    memorisation: Option<Memorisation>,
}

/// The held-out likelihood part of `metrics.json`.
#[derive(Debug, Deserialize)]
struct Nll {
    n: usize,
    nll: f64,
    se: f64,
    #[serde(default)]
    true_nll: Option<f64>,
    #[serde(default)]
    bits_per_dim: Option<f64>,
}

/// Display class of a ratio to the noise floor (colour only; the number is always shown).
fn ratio_class(r: f64) -> &'static str {
    if r <= 1.5 {
        "good"
    } else if r <= 3.0 {
        "warn"
    } else {
        "bad"
    }
}

/// The metrics table against the noise floor, the mode weights and the held-out NLL.
fn metrics_section(v: &Value) -> Markup {
    let Ok(m) = serde_json::from_value::<Metrics>(v.clone()) else {
        return json::tables(v, "metrics.json");
    };
    let ratio = m.samples.ratio_to(&m.floor);
    let bandwidths = match &m.mmd_bandwidths {
        Some(h) if !h.is_empty() => format!(
            "{} bandwidths ({}–{})",
            h.len(),
            number(h.iter().copied().fold(f64::INFINITY, f64::min)),
            number(h.iter().copied().fold(0.0, f64::max))
        ),
        _ => "6 bandwidths (0.05–2)".to_string(),
    };
    let rows = [
        ("sliced W₂", m.samples.sw2, m.floor.sw2, ratio.sw2),
        ("MMD²", m.samples.mmd2, m.floor.mmd2, ratio.mmd2),
        (
            "energy distance",
            m.samples.energy,
            m.floor.energy,
            ratio.energy,
        ),
        (
            "mean error",
            m.samples.mean_error,
            m.floor.mean_error,
            ratio.mean_error,
        ),
        (
            "covariance error",
            m.samples.cov_error,
            m.floor.cov_error,
            ratio.cov_error,
        ),
    ];
    html! {
        (scroll("sample quality", html! {
            table {
                caption { "Samples and the noise floor against the same held-out points." }
                thead {
                    tr {
                        th scope="col" { "metric" }
                        th.num scope="col" { "samples" }
                        th.num scope="col" { "floor" }
                        th.num scope="col" { "ratio" }
                    }
                }
                tbody {
                    @for (name, s, f, r) in rows {
                        tr {
                            th scope="row" { (name) }
                            td.num { (number(s)) }
                            td.num { (number(f)) }
                            @match r {
                                Some(r) => td class={ "num " (ratio_class(r)) } { (number(r)) "×" },
                                None => td.num { "—" },
                            }
                        }
                    }
                }
            }
        }))
        p.note {
            "Noise floor: fresh data of the same size scored the same way — what a perfect model gets. "
            "Ratio = samples / floor: ≈ 1 is as good as the data (shaded green up to 1.5, amber up to 3, red above); "
            "— where the floor is ≤ 0, as the unbiased MMD² and energy distance can be. "
            "MMD² averages Gaussian kernels of " (bandwidths) "; mean error ‖μ − μ̂‖, covariance error ‖Σ − Σ̂‖_F."
        }
        @if let (Some(ms), Some(mf)) = (&m.samples.modes, &m.floor.modes) {
            (scroll("mode weights", html! {
                table {
                    caption { "Share of points nearest to each mixture mean; off every mode: farther than 4σ from all of them." }
                    thead {
                        tr { th scope="col" { "mode" } th.num scope="col" { "samples" } th.num scope="col" { "floor" } }
                    }
                    tbody {
                        @for (k, (a, b)) in ms.weights.iter().zip(&mf.weights).enumerate() {
                            tr { th scope="row" { (k + 1) } td.num { (number(*a)) } td.num { (number(*b)) } }
                        }
                        tr { th scope="row" { "off every mode" } td.num { (number(ms.off_modes)) } td.num { (number(mf.off_modes)) } }
                    }
                }
            }))
        }
        @if let Some(n) = &m.nll {
            p {
                "Held-out negative log-likelihood: " strong { (number(n.nll)) " ± " (number(n.se)) } " nats per point on " (n.n) " points"
                @if let Some(t) = n.true_nll { "; the true density gives " (number(t)) }
                @if let Some(b) = n.bits_per_dim { "; " strong { (number(b)) } " bits/dim" }
                "."
            }
        }
        @if let Some(mem) = &m.memorisation {
            p {
                "Memorisation check: a sample's nearest training image is " strong { (number(mem.sample_nn_mean)) } " away on average ("
                (mem.samples) " samples), a held-out image's " (number(mem.held_out_nn_mean)) " (" (mem.held_out) " images): ratio "
                strong { (number(mem.ratio)) } " (≈ 1 generalises, ≪ 1 copies the training set)."
            }
        }
        p.note {
            @if let Some(s) = &m.samples_from { "Samples: " (s) ". " }
            @if let Some(r) = &m.reference_from { "Reference: " (r) "." }
        }
    }
}

/// Mean of `v` (NaN when empty).
fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Median of the finite values of `v` (NaN when none).
fn median(v: &[f64]) -> f64 {
    let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return f64::NAN;
    }
    f.sort_by(f64::total_cmp);
    let m = f.len() / 2;
    if f.len() % 2 == 1 {
        f[m]
    } else {
        0.5 * (f[m - 1] + f[m])
    }
}

/// Charts and a summary of `train_log.csv`.
fn training_section(log: &TrainLog, loss_png: Option<&Picture>) -> Markup {
    let col = |f: fn(&crate::output::LogRow) -> f64| log.rows.iter().map(f).collect::<Vec<f64>>();
    let (steps, loss, lr, grad) = (
        col(|r| r.step as f64),
        col(|r| r.loss),
        col(|r| r.lr),
        col(|r| r.grad_norm),
    );
    // Log axes only for positive series (noise-free score matching losses go negative).
    let positive = |v: &[f64]| v.iter().all(|x| !x.is_finite() || *x > 0.0);
    let tail = (log.rows.len() / 20).max(1);
    let loss_chart = Chart {
        title: "training loss against step",
        x_label: "step",
        y_label: if positive(&loss) {
            "loss (log scale)"
        } else {
            "loss"
        },
        log_y: positive(&loss),
        xs: &steps,
        ys: &loss,
    };
    let lr_chart = Chart {
        title: "learning rate against step",
        x_label: "step",
        y_label: "learning rate",
        log_y: false,
        ..loss_chart
    };
    let lr_chart = Chart {
        ys: &lr,
        ..lr_chart
    };
    let grad_chart = Chart {
        title: "gradient norm against step",
        x_label: "step",
        y_label: if positive(&grad) {
            "gradient norm (log scale)"
        } else {
            "gradient norm"
        },
        log_y: positive(&grad),
        xs: &steps,
        ys: &grad,
    };
    let rows: [(&str, f64); 5] = [
        ("steps", steps.last().copied().unwrap_or(f64::NAN)),
        (
            "loss, first step",
            loss.first().copied().unwrap_or(f64::NAN),
        ),
        (
            "loss, mean of the last 5 %",
            mean(&loss[loss.len() - tail..]),
        ),
        (
            "smallest loss",
            loss.iter().copied().fold(f64::INFINITY, f64::min),
        ),
        ("median steps per second", median(&col(|r| r.steps_per_s))),
    ];
    html! {
        div.charts {
            @if let Some(svg) = loss_chart.svg() {
                figure {
                    (svg)
                    figcaption { "Training loss: the line is the mean over each run of consecutive steps, the band their range." }
                }
            }
            @if let Some(svg) = lr_chart.svg() {
                figure { (svg) figcaption { "Learning rate." } }
            }
            @if let Some(svg) = grad_chart.svg() {
                figure { (svg) figcaption { "Gradient norm before clipping." } }
            }
        }
        (scroll("training summary", html! {
            table {
                tbody {
                    @for (k, v) in rows {
                        tr { th scope="row" { (k) } td.num { (number(v)) } }
                    }
                }
            }
        }))
        @if let Some(p) = loss_png {
            details {
                summary { "The same log as drawn by " code { "scoreflow plot" } }
                (figure(p, "Training loss (log scale) and learning rate."))
            }
        }
    }
}

/// The settings: `config.toml` as a table and as written, `meta.json` as tables.
fn settings_section(c: &Contents) -> Markup {
    html! {
        @if let Some(cfg) = &c.config {
            h3 { code { "config.toml" } }
            (json::props(cfg.table.iter().map(|(k, v)| {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text, v.is_integer() || v.is_float())
            })))
            p.note { "Every training setting; " code { "scoreflow train --config config.toml" } " repeats the run." }
            details {
                summary { "config.toml as written" }
                pre { code { (cfg.text) } }
            }
        }
        @if let Some(meta) = &c.meta {
            h3 { code { "meta.json" } }
            details {
                summary { "Architecture, objective, normalisation, optimiser and RNG state" }
                (json::tables(meta, "meta.json"))
            }
        }
    }
}

fn run_page(c: &Contents, back: Option<&str>) -> Markup {
    let pictures: &[(&str, &str)] = if is_image_run(c) {
        &IMAGE_PICTURES
    } else {
        &RUN_PICTURES
    };
    let named = |n: &str| {
        pictures
            .iter()
            .chain(&DIAGNOSTIC_PICTURES)
            .any(|(k, _)| *k == n)
            || n == LOSS_PICTURE
    };
    let bits_per_dim = c.other_json.iter().find_map(|(name, v)| {
        (name == "logp.json")
            .then(|| Some((v.get("bits_per_dim")?.as_f64()?, v.get("n")?.as_u64()?)))
            .flatten()
    });
    let mut shown: Vec<(&Picture, String)> = pictures
        .iter()
        .filter_map(|(n, cap)| c.picture(n).map(|p| (p, cap.to_string())))
        .collect();
    shown.extend(
        c.pictures
            .iter()
            .filter(|p| !named(&p.name))
            .map(|p| (p, words(&p.name))),
    );
    let diag: Vec<(&Picture, &str)> = DIAGNOSTIC_PICTURES
        .iter()
        .filter_map(|(n, cap)| c.picture(n).map(|p| (p, *cap)))
        .collect();
    let (diag_json, other_json): (Vec<_>, Vec<_>) = c
        .other_json
        .iter()
        .partition(|(n, _)| n.starts_with("diagnos"));
    let log = c.log.as_ref().filter(|l| !l.rows.is_empty());
    let mut nav = vec![("metrics", "Sample quality"), ("pictures", "Pictures")];
    if log.is_some() {
        nav.push(("training", "Training"));
    }
    if !diag.is_empty() || !diag_json.is_empty() {
        nav.push(("diagnostics", "Diagnostics"));
    }
    nav.push(("settings", "Settings"));
    if !other_json.is_empty() {
        nav.push(("other", "Other results"));
    }
    let body = html! {
        (header(&run_kind(c), &c.name, html! { (run_facts(c)) }, back, &nav))
        main {
            section #metrics aria-labelledby="metrics-h" {
                h2 #metrics-h { "Sample quality" }
                @match &c.metrics {
                    Some(m) => (metrics_section(m)),
                    None => p.note { "No " code { "metrics.json" } " yet: " code { "scoreflow eval " (c.dir.display()) } " scores samples against held-out data and the noise floor." },
                }
                @if let Some((bpd, n)) = bits_per_dim {
                    p { "Bits per dimension of " (n) " held-out images (" code { "scoreflow likelihood" } ", " code { "logp.json" } "): " strong { (number(bpd)) } "." }
                }
            }
            section #pictures aria-labelledby="pictures-h" {
                h2 #pictures-h { "Pictures" }
                @if shown.is_empty() {
                    p.note { "No pictures: " code { "scoreflow plot " (c.dir.display()) " --gif" } " draws them (2-D data only)." }
                }
                @for (p, cap) in &shown { (figure(p, cap)) }
            }
            @if let Some(log) = log {
                section #training aria-labelledby="training-h" {
                    h2 #training-h { "Training" }
                    (training_section(log, c.picture(LOSS_PICTURE)))
                }
            }
            @if !diag.is_empty() || !diag_json.is_empty() {
                section #diagnostics aria-labelledby="diagnostics-h" {
                    h2 #diagnostics-h { "Diagnostics" }
                    @for (p, cap) in &diag { (figure(p, cap)) }
                    @for (name, v) in &diag_json { (json::tables(v, name)) }
                }
            }
            section #settings aria-labelledby="settings-h" {
                h2 #settings-h { "Settings" }
                (settings_section(c))
            }
            @if !other_json.is_empty() {
                section #other aria-labelledby="other-h" {
                    h2 #other-h { "Other results" }
                    @for (name, v) in &other_json {
                        h3 { code { (name) } }
                        (json::tables(v, name))
                    }
                }
            }
        }
        (footer(c))
    };
    page(&format!("{} — scoreflow report", c.name), body)
}

// ---------------------------------------------------------------------------------------
// Lessons

/// Keys of `lesson.json` the lesson page shows in their own place.
const LESSON_KEYS: [&str; 12] = [
    "lesson", "name", "title", "note", "command", "claim", "holds", "verdict", "table", "tables",
    "pictures", "config",
];

/// A table of a lesson.
#[derive(Debug)]
enum LessonTable<'a> {
    /// Columns and rows of values.
    Grid {
        title: Option<&'a str>,
        columns: Vec<String>,
        rows: Vec<Vec<Option<&'a Value>>>,
        notes: Vec<&'a str>,
    },
    /// Text set as it was printed.
    Text(&'a str),
}

/// Rows given as objects: the columns are their keys in order of first appearance.
type Grid<'a> = (Vec<String>, Vec<Vec<Option<&'a Value>>>);

fn objects(rows: &[Value]) -> Option<Grid<'_>> {
    let maps: Vec<&serde_json::Map<String, Value>> =
        rows.iter().map(Value::as_object).collect::<Option<_>>()?;
    let mut cols: Vec<String> = Vec::new();
    for m in &maps {
        for k in m.keys() {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    let grid = maps
        .iter()
        .map(|m| cols.iter().map(|c| m.get(c)).collect())
        .collect();
    Some((cols, grid))
}

/// One table of `lesson.json` (see the module doc of [`super`] for the forms it takes).
fn lesson_table(t: &Value) -> Option<LessonTable<'_>> {
    let text = |k: &str| t.get(k).and_then(Value::as_str);
    match t {
        Value::String(s) => Some(LessonTable::Text(s)),
        Value::Array(rows) => {
            let (columns, rows) = objects(rows)?;
            Some(LessonTable::Grid {
                title: None,
                columns,
                rows,
                notes: Vec::new(),
            })
        }
        Value::Object(o) => {
            let rows = o.get("rows")?.as_array()?;
            let (columns, rows) = match o.get("columns").and_then(Value::as_array) {
                Some(cols) => (
                    cols.iter().map(json::scalar).collect(),
                    rows.iter()
                        .map(|r| r.as_array().map(|r| r.iter().map(Some).collect()))
                        .collect::<Option<Vec<_>>>()?,
                ),
                None => objects(rows)?,
            };
            let notes = text("note")
                .into_iter()
                .chain(
                    o.get("notes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                )
                .collect();
            Some(LessonTable::Grid {
                title: text("title").or(text("caption")),
                columns,
                rows,
                notes,
            })
        }
        _ => None,
    }
}

/// The tables of a lesson: `table` (one) and `tables` (a list).
fn lesson_tables(v: &Value) -> Vec<LessonTable<'_>> {
    let mut out: Vec<LessonTable> = v.get("table").and_then(lesson_table).into_iter().collect();
    if let Some(ts) = v.get("tables").and_then(Value::as_array) {
        out.extend(ts.iter().filter_map(lesson_table));
    }
    out
}

fn render_lesson_table(t: &LessonTable, k: usize) -> Markup {
    match t {
        LessonTable::Text(s) => html! { pre { code { (s) } } },
        LessonTable::Grid {
            title,
            columns,
            rows,
            notes,
        } => {
            let label = title.map_or_else(|| format!("table {}", k + 1), str::to_string);
            // As printed: the first column names the row, the others are numbers (often
            // already formatted as text) and align right.
            let id = format!("table-{}", k + 1);
            // The title stands above the table, not in a <caption>: a caption is as wide as
            // its table and would scroll out of sight with it on a phone.
            html! {
                @if let Some(t) = title { h3 id=(id) { (t) } }
                (scroll(&label, html! {
                    table aria-labelledby=[title.is_some().then_some(&id)] {
                        thead {
                            tr {
                                @for (i, c) in columns.iter().enumerate() {
                                    th scope="col" class=[(i > 0).then_some("num")] { (c) }
                                }
                            }
                        }
                        tbody {
                            @for row in rows {
                                tr {
                                    @for (i, cell) in row.iter().enumerate() {
                                        @let text = cell.map_or_else(String::new, json::scalar);
                                        @if i == 0 {
                                            th scope="row" { (text) }
                                        } @else {
                                            td.num { (text) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
                @for n in notes { p.note { (n) } }
            }
        }
    }
}

/// The lesson's pictures in the order `lesson.json` lists them (names or paths, or objects
/// with `file` and `caption`), then the others by name.
fn lesson_pictures<'a>(v: &Value, c: &'a Contents) -> Vec<(&'a Picture, String)> {
    let mut out: Vec<(&Picture, String)> = Vec::new();
    for item in v
        .get("pictures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (path, caption) = match item {
            Value::String(s) => (Some(s.as_str()), None),
            Value::Object(o) => (
                ["file", "path", "name"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(Value::as_str)),
                o.get("caption").and_then(Value::as_str),
            ),
            _ => (None, None),
        };
        let Some(name) = path.map(|p| p.rsplit(['/', '\\']).next().unwrap_or(p)) else {
            continue;
        };
        if let Some(p) = c.picture(name) {
            if !out.iter().any(|(q, _)| q.name == p.name) {
                out.push((p, caption.map_or_else(|| words(name), str::to_string)));
            }
        }
    }
    for p in &c.pictures {
        if !out.iter().any(|(q, _)| q.name == p.name) {
            out.push((p, words(&p.name)));
        }
    }
    out
}

/// The lesson's name: `lesson` or `name` in `lesson.json`, else the directory's.
fn lesson_name(c: &Contents) -> String {
    c.lesson
        .as_ref()
        .and_then(|v| v.get("lesson").or(v.get("name")))
        .and_then(Value::as_str)
        .map_or_else(|| c.name.clone(), str::to_string)
}

/// Did the claim hold: `holds`, or `verdict.holds`, of `lesson.json`.
fn holds(v: &Value) -> Option<bool> {
    v.get("holds")
        .or_else(|| v.get("verdict").and_then(|x| x.get("holds")))
        .and_then(Value::as_bool)
}

fn verdict(holds: Option<bool>) -> Markup {
    html! {
        @match holds {
            Some(true) => p { span.verdict.holds { "✓ the claim holds in this run" } },
            Some(false) => p { span.verdict.fails { "✗ the claim does not hold in this run" } },
            None => {},
        }
    }
}

fn lesson_page(c: &Contents, back: Option<&str>) -> Markup {
    let empty = Value::Null;
    let v = c.lesson.as_ref().unwrap_or(&empty);
    let name = lesson_name(c);
    let title = v
        .get("title")
        .and_then(Value::as_str)
        .map_or_else(|| name.clone(), str::to_string);
    let claim = v.get("claim").and_then(Value::as_str);
    let tables = lesson_tables(v);
    let pictures = lesson_pictures(v, c);
    let rest: serde_json::Map<String, Value> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !LESSON_KEYS.contains(&k.as_str()))
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut nav = Vec::new();
    if !tables.is_empty() {
        nav.push(("table", "Table"));
    }
    if !pictures.is_empty() {
        nav.push(("pictures", "Pictures"));
    }
    if !rest.is_empty() {
        nav.push(("numbers", "Numbers"));
    }
    if v.get("config").is_some() {
        nav.push(("settings", "Settings"));
    }
    let kicker = match v.get("note").and_then(Value::as_str) {
        Some(note) => format!("scoreflow lesson · note {note}"),
        None => "scoreflow lesson".into(),
    };
    let command = v
        .get("command")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| (title != name).then(|| format!("scoreflow lesson {name}")));
    let lede = html! { @if let Some(cmd) = &command { code { (cmd) } } };
    let evidence: Vec<&str> = v
        .get("verdict")
        .and_then(|x| x.get("evidence"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let body = html! {
        (header(&kicker, &title, lede, back, &nav))
        main {
            @if claim.is_some() || holds(v).is_some() {
                section aria-label="claim" {
                    @if let Some(claim) = claim { p.claim { (claim) } }
                    (verdict(holds(v)))
                    @if !evidence.is_empty() {
                        ul.evidence { @for e in &evidence { li { (e) } } }
                    }
                }
            }
            @if !tables.is_empty() {
                section #table aria-labelledby="table-h" {
                    h2 #table-h { "What was measured" }
                    @for (k, t) in tables.iter().enumerate() { (render_lesson_table(t, k)) }
                }
            }
            @if !pictures.is_empty() {
                section #pictures aria-labelledby="pictures-h" {
                    h2 #pictures-h { "Pictures" }
                    @for (p, cap) in &pictures { (figure(p, cap)) }
                }
            }
            @if !rest.is_empty() {
                section #numbers aria-labelledby="numbers-h" {
                    h2 #numbers-h { "Numbers" }
                    @if tables.is_empty() {
                        (json::tables(&Value::Object(rest.clone()), "lesson.json"))
                    } @else {
                        details {
                            summary { "Every number of " code { "lesson.json" } }
                            (json::tables(&Value::Object(rest.clone()), "lesson.json"))
                        }
                    }
                }
            }
            @if let Some(cfg) = v.get("config") {
                section #settings aria-labelledby="settings-h" {
                    h2 #settings-h { "Settings" }
                    (json::tables(cfg, "settings"))
                }
            }
        }
        (footer(c))
    };
    page(&format!("{title} — scoreflow lesson"), body)
}

// ---------------------------------------------------------------------------------------
// Index

/// What the index shows of one run or lesson.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// Directory name (the link goes to `name/report.html`).
    pub name: String,
    /// "flow-matching run", "scoreflow lesson", ….
    pub kind: String,
    /// One line of facts.
    pub facts: String,
    /// The headline number or claim.
    pub headline: Option<String>,
    /// Did the lesson's claim hold, when it says.
    pub holds: Option<bool>,
    /// The loss curve, small.
    pub spark: Option<Markup>,
}

/// Longest claim shown on the index.
const INDEX_CLAIM: usize = 220;

impl IndexEntry {
    /// The entry of one directory.
    pub fn of(c: &Contents) -> IndexEntry {
        let spark = c.log.as_ref().and_then(|log| {
            let xs: Vec<f64> = log.rows.iter().map(|r| r.step as f64).collect();
            let ys: Vec<f64> = log.rows.iter().map(|r| r.loss).collect();
            let log_y = ys.iter().all(|y| !y.is_finite() || *y > 0.0);
            sparkline(&xs, &ys, log_y, "training loss")
        });
        match c.kind {
            Kind::Run => {
                let headline = c.metrics.as_ref().and_then(|v| {
                    let m = serde_json::from_value::<Metrics>(v.clone()).ok()?;
                    let r = m.samples.ratio_to(&m.floor);
                    Some(match r.sw2 {
                        Some(r) => format!(
                            "sliced W₂ {} — {}× the noise floor",
                            number(m.samples.sw2),
                            number(r)
                        ),
                        None => format!("sliced W₂ {}", number(m.samples.sw2)),
                    })
                });
                IndexEntry {
                    name: c.name.clone(),
                    kind: run_kind(c),
                    facts: run_facts(c),
                    headline,
                    holds: None,
                    spark,
                }
            }
            Kind::Lesson => {
                let v = c.lesson.as_ref();
                let claim = v
                    .and_then(|v| v.get("claim"))
                    .and_then(Value::as_str)
                    .map(|s| {
                        if s.chars().count() > INDEX_CLAIM {
                            format!(
                                "{}…",
                                s.chars().take(INDEX_CLAIM).collect::<String>().trim_end()
                            )
                        } else {
                            s.to_string()
                        }
                    });
                let name = lesson_name(c);
                IndexEntry {
                    name: c.name.clone(),
                    kind: "scoreflow lesson".into(),
                    facts: if name == c.name { String::new() } else { name },
                    headline: claim,
                    holds: v.and_then(holds),
                    spark,
                }
            }
        }
    }
}

/// The index over a directory of runs and lessons: one card per entry linking its page.
pub fn index(title: &str, entries: &[IndexEntry]) -> Markup {
    let body = html! {
        (header("scoreflow reports", title, html! { (entries.len()) " runs and lessons" }, None, &[]))
        main {
            ul.cards {
                @for (k, e) in entries.iter().enumerate() {
                    li {
                        article aria-labelledby={ "card-" (k) } {
                            h2 id={ "card-" (k) } {
                                a href=(format::href(&e.name, REPORT_FILE)) { (e.name) }
                            }
                            p.kicker { (e.kind) }
                            @if !e.facts.is_empty() { p.note { (e.facts) } }
                            @if let Some(h) = &e.headline { p { (h) } }
                            (verdict(e.holds))
                            @if let Some(s) = &e.spark { p.spark-row { span.note { "loss" } (s) } }
                        }
                    }
                }
            }
        }
        footer {
            p { "Made by " (generator()) " (" code { "scoreflow report" } "). Each page holds its own pictures and numbers and loads nothing." }
        }
    };
    page(&format!("{title} — scoreflow reports"), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::contents::Config;
    use serde_json::json;
    use std::path::PathBuf;

    fn picture(name: &str, size: (u32, u32)) -> Picture {
        Picture {
            name: name.into(),
            mime: "image/png",
            bytes: vec![1, 2, 3],
            size,
        }
    }

    fn contents(kind: Kind) -> Contents {
        Contents {
            dir: PathBuf::from("runs/x"),
            name: "x <1>".into(),
            kind,
            config: None,
            meta: None,
            metrics: None,
            lesson: None,
            log: None,
            pictures: Vec::new(),
            other_json: Vec::new(),
            files: vec![("a & b.csv".into(), 2048)],
        }
    }

    /// The `metrics.json` of a quickstart run (numbers rounded).
    fn metrics() -> Value {
        let report = |sw2: f64, mmd2: f64, w: [f64; 2]| {
            json!({"n_samples": 10000, "n_reference": 10000, "sw2": sw2, "mmd2": mmd2,
                   "energy": 0.004, "mean_error": 0.07, "cov_error": 0.09,
                   "modes": {"weights": w, "off_modes": 0.0045}})
        };
        json!({"run": "q", "samples_from": "10000 points, sampler euler (NFE 100)",
               "reference_from": "10000 fresh draws of 8gaussians",
               "samples": report(0.12, 0.0156, [0.49, 0.51]),
               "floor": report(0.05, -7.75e-5, [0.5, 0.5]),
               "ratio": {}, "nll": {"n": 500, "nll": 2.5, "se": 0.03, "true_nll": 2.4, "nfe": 300, "wall_s": 1.0},
               "wall_s": 13.0})
    }

    #[test]
    fn run_pages_show_metrics_against_the_floor_and_escape_text() {
        let mut c = contents(Kind::Run);
        c.metrics = Some(metrics());
        c.config = Some(Config {
            text: "method = \"cfm\"\ndata = \"<moons>\"\n".into(),
            table: "method = \"cfm\"\ndata = \"<moons>\"\n".parse().unwrap(),
        });
        c.pictures = vec![
            picture("zeta.png", (10, 10)),
            picture("field.png", (1990, 500)),
            picture("samples.png", (1040, 540)),
            picture("curl.png", (600, 500)),
        ];
        let html = report(&c, Some("../index.html")).into_string();
        assert!(html.starts_with("<!DOCTYPE html><html lang=\"en\">"));
        assert!(html.contains(CSP));
        // Ratio = samples / floor: 0.12 / 0.05 = 2.4, amber; MMD² has a negative floor: no ratio.
        assert!(html.contains("<td class=\"num warn\">2.4×</td>"), "{html}");
        assert!(html.contains("<th scope=\"row\">MMD²</th><td class=\"num\">0.0156</td><td class=\"num\">-7.75e-5</td><td class=\"num\">—</td>"));
        assert!(
            html.contains("2.5</strong>") || html.contains("2.5 ± 0.03"),
            "NLL shown"
        );
        // Escaped everywhere: the directory name, a setting, a file name.
        assert!(html.contains("<h1>x &lt;1&gt;</h1>"));
        assert!(html.contains("cfm on &lt;moons&gt;"));
        assert!(html.contains("a &amp; b.csv") && !html.contains("<moons>"));
        // Standard pictures first in their order, then the others; curl under diagnostics.
        let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(at("<code>samples.png</code>") < at("<code>field.png</code>"));
        assert!(at("<code>field.png</code>") < at("<code>zeta.png</code>"));
        assert!(at("id=\"diagnostics\"") < at("<code>curl.png</code>"));
        // Rows of panels pan sideways on a phone; the others do not.
        assert!(html.contains(
            "<img class=\"wide\" src=\"data:image/png;base64,AQID\" width=\"1990\" height=\"500\""
        ));
        assert!(html.contains("<img src=\"data:image/png;base64,AQID\" width=\"1040\""));
        assert!(html.contains("<a href=\"../index.html\">"));
    }

    #[test]
    fn lesson_pages_show_claim_tables_and_pictures_in_the_lessons_order() {
        let mut c = contents(Kind::Lesson);
        c.pictures = vec![
            picture("a.png", (10, 10)),
            picture("b.png", (10, 10)),
            picture("c.png", (10, 10)),
        ];
        c.lesson = Some(json!({
            "lesson": "sharp-modes",
            "note": "004",
            "title": "Sharp modes",
            "claim": "Langevin inflates a <narrow> mode.",
            "command": "scoreflow lesson sharp-modes --quick",
            "verdict": {"holds": true, "evidence": ["var 0.04 > 0.01: yes"]},
            "table": {"caption": "variance", "columns": ["pipeline", "σ²"], "rows": [["truth", 0.01], ["ULA", "0.04"]]},
            "tables": [[{"d": 2, "err": 0.1}, {"d": 4, "err": 0.2}], "a | b\n1 | 2",
                       {"title": "t", "columns": ["x"], "rows": [["1"]], "notes": ["n1", "n2"]}],
            "pictures": ["out/c.png", {"file": "a.png", "caption": "the <field>"}],
            "config": {"steps": 20},
            "lipschitz": 12.5
        }));
        let html = report(&c, None).into_string();
        assert!(html.contains("<p class=\"claim\">Langevin inflates a &lt;narrow&gt; mode.</p>"));
        assert!(
            html.contains("the claim holds") && html.contains("<li>var 0.04 &gt; 0.01: yes</li>")
        );
        assert!(html.contains("scoreflow lesson · note 004"));
        assert!(html.contains("<code>scoreflow lesson sharp-modes --quick</code>"));
        assert!(
            html.contains("<h3 id=\"table-4\">t</h3>")
                && html.contains("aria-labelledby=\"table-4\"")
        );
        assert!(html.contains("<p class=\"note\">n2</p>"));
        assert!(
            html.contains("<th scope=\"col\">pipeline</th><th scope=\"col\" class=\"num\">σ²</th>")
        );
        // Text cells of number columns align right too, as printed.
        assert!(html.contains("<th scope=\"row\">ULA</th><td class=\"num\">0.04</td>"));
        assert!(html.contains("<th scope=\"col\">d</th><th scope=\"col\" class=\"num\">err</th>"));
        assert!(html.contains("<pre><code>a | b\n1 | 2</code></pre>"));
        // c (listed first), a (captioned), then b by name.
        let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(at("<code>c.png</code>") < at("the &lt;field&gt; <code>a.png</code>"));
        assert!(at("<code>a.png</code>") < at("<code>b.png</code>"));
        // Other keys under Numbers (in a details, as there is a table), settings on their own.
        assert!(html.contains("<code>lipschitz</code>") && html.contains("id=\"settings\""));
        assert!(
            !html.contains("<code>claim</code>"),
            "the claim is not repeated as a number"
        );
    }

    #[test]
    fn the_index_links_each_page_by_an_encoded_relative_path() {
        let mut run = contents(Kind::Run);
        run.name = "run #1".into();
        run.metrics = Some(metrics());
        let mut lesson = contents(Kind::Lesson);
        lesson.name = "lesson".into();
        lesson.lesson = Some(json!({"claim": "x".repeat(300), "verdict": {"holds": false}}));
        let entries = [IndexEntry::of(&run), IndexEntry::of(&lesson)];
        let html = index("runs", &entries).into_string();
        assert!(html.contains("<a href=\"run%20%231/report.html\">run #1</a>"));
        assert!(html.contains("sliced W₂ 0.12 — 2.4× the noise floor"));
        assert!(html.contains(&format!("{}…", "x".repeat(INDEX_CLAIM))));
        assert!(html.contains("does not hold"));
    }
}
