//! The page: one HTML file with its style and inline SVG charts, no script,
//! no external resource of any kind (so it opens offline and prints).
//!
//! Every number is a table cell or an SVG label carrying the JSON pointer
//! of the value it shows (`data-k`, into `report --json`), the raw value
//! (`data-v`) and its format (`data-f`: `b` bytes, `c` count, `d` days or
//! seconds with one decimal); a total carries `data-sum`, the pointer of
//! the object whose values it adds up. The browser tests check each one
//! against the JSON.

use std::fmt::Write as _;

use spyglass_jobs::human_bytes;

use crate::model::*;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A bytes cell.
fn b(k: &str, v: u64) -> String {
    format!(
        "<td class=\"n\" data-k=\"{}\" data-v=\"{v}\" data-f=\"b\">{}</td>",
        esc(k),
        esc(&human_bytes(v))
    )
}

/// A count cell.
fn c(k: &str, v: u64) -> String {
    format!(
        "<td class=\"n\" data-k=\"{}\" data-v=\"{v}\" data-f=\"c\">{v}</td>",
        esc(k)
    )
}

/// A one-decimal cell (days, seconds).
fn d(k: &str, v: f64) -> String {
    format!(
        "<td class=\"n\" data-k=\"{}\" data-v=\"{v}\" data-f=\"d\">{v:.1}</td>",
        esc(k)
    )
}

/// A text cell.
fn t(s: &str) -> String {
    format!("<td>{}</td>", esc(s))
}

const STYLE: &str = r#"
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#1d2430;max-width:1320px;font-size:14px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #d5dbe5;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:4px 0 10px}td,th{padding:3px 8px;border-bottom:1px solid #e4e8ef;text-align:left;vertical-align:top}
th{background:#f1f4f8;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.problems{border:2px solid #c62828;background:#fff4f4;padding:8px 14px;border-radius:6px}
.problems li{margin:3px 0}.high{color:#b71c1c;font-weight:600}.medium{color:#c62828}.low{color:#6d4c41}
.ok{color:#2e7d32}.bad{color:#b71c1c;font-weight:600}.muted{color:#6b7380}
.na{color:#6b7380;font-style:italic}.grid{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
svg text{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;font-size:11px;fill:#1d2430}
.cell-active{background:#c8e6c9;text-align:center}.cell-granted{background:#ffe0b2;text-align:center}
@media print{body{margin:8mm}h2{break-after:avoid}}
"#;

const DB: &str = "#3f6fb5";
const FILES: &str = "#e39b2d";
const GOOD: &str = "#2e7d32";
const BAD: &str = "#c62828";
const GREY: &str = "#9aa3ad";

/// A horizontal stacked bar chart: one row per label, segments `(value,
/// color)`, the total printed after the bar (so no number is only a picture).
fn hbars(title: &str, rows: &[(String, Vec<(u64, &str)>)], legend: &[(&str, &str)]) -> String {
    let label_w = 190.0;
    let bar_w = 360.0;
    let row_h = 20.0;
    let top = 22.0 + if legend.is_empty() { 0.0 } else { 16.0 };
    let h = top + row_h * rows.len() as f64 + 8.0;
    let w = label_w + bar_w + 90.0;
    let max = rows
        .iter()
        .map(|(_, s)| s.iter().map(|x| x.0).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let _ = write!(
        s,
        "<text x=\"0\" y=\"14\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    let mut lx = 0.0;
    for (name, color) in legend {
        let _ = write!(
            s,
            "<rect x=\"{lx}\" y=\"24\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"33\">{}</text>",
            lx + 14.0,
            esc(name)
        );
        lx += 24.0 + 7.0 * name.len() as f64;
    }
    for (i, (label, segs)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let short: String = if label.chars().count() > 28 {
            label.chars().take(27).collect::<String>() + "…"
        } else {
            label.clone()
        };
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + 13.0,
            esc(&short)
        );
        let mut x = label_w;
        let mut total = 0;
        for (v, color) in segs {
            let len = bar_w * *v as f64 / max;
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{color}\"/>",
                y + 2.0,
                row_h - 5.0
            );
            x += len;
            total += v;
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 4.0,
            y + 13.0,
            esc(&human_bytes(total))
        );
    }
    s.push_str("</svg>");
    s
}

/// A line chart of `(unix, bytes)` series with the first and last dates
/// and the largest value as axis labels.
/// A series of a line chart: name, colour, `(unix, bytes)` points.
type Series<'a> = (&'a str, &'a str, Vec<(i64, u64)>);

fn lines(title: &str, series: &[Series<'_>]) -> String {
    let (w, h, l, r, tp, bt) = (640.0, 240.0, 70.0, 20.0, 40.0, 30.0);
    let pts: Vec<&(i64, u64)> = series.iter().flat_map(|s| s.2.iter()).collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let _ = write!(
        s,
        "<text x=\"0\" y=\"14\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    let mut lx = 0.0;
    for (name, color, _) in series {
        let _ = write!(
            s,
            "<rect x=\"{lx}\" y=\"22\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"31\">{}</text>",
            lx + 14.0,
            esc(name)
        );
        lx += 30.0 + 7.0 * name.len() as f64;
    }
    if pts.is_empty() {
        s.push_str("<text x=\"70\" y=\"120\">no points yet</text></svg>");
        return s;
    }
    let t0 = pts.iter().map(|p| p.0).min().unwrap_or(0);
    let t1 = pts.iter().map(|p| p.0).max().unwrap_or(0).max(t0 + 1);
    let vmax = pts.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let x = |t: i64| l + (w - l - r) * (t - t0) as f64 / (t1 - t0) as f64;
    let y = |v: u64| h - bt - (h - tp - bt) * v as f64 / vmax as f64;
    let _ = write!(
        s,
        "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/><line x1=\"{l}\" y1=\"{tp}\" x2=\"{l}\" y2=\"{}\" stroke=\"#888\"/>",
        h - bt,
        w - r,
        h - bt,
        h - bt
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0 B</text>",
        l - 4.0,
        tp + 4.0,
        esc(&human_bytes(vmax)),
        l - 4.0,
        h - bt
    );
    let day = |u: i64| spyglass_backup::names::rfc3339(u)[..10].to_owned();
    let _ = write!(
        s,
        "<text x=\"{l}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        h - 10.0,
        day(t0),
        w - r,
        h - 10.0,
        day(t1)
    );
    for (_, color, ps) in series {
        if ps.is_empty() {
            continue;
        }
        let path: Vec<String> = ps
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for p in ps {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                x(p.0),
                y(p.1)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Backups as a timeline: one bar per set at its start time, height its
/// size, colour its verify result.
fn timeline(sets: &[BackupRun]) -> String {
    let (w, h, l, r, tp, bt) = (640.0, 200.0, 70.0, 20.0, 40.0, 30.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"backup timeline\">"
    );
    s.push_str("<text x=\"0\" y=\"14\" font-weight=\"bold\">Backup sets: size on disk by start time</text>");
    for (i, (name, color)) in [
        ("verified", GOOD),
        ("verify failed / corrupt", BAD),
        ("never verified", GREY),
    ]
    .iter()
    .enumerate()
    {
        let lx = [0.0, 90.0, 260.0][i];
        let _ = write!(
            s,
            "<rect x=\"{lx}\" y=\"22\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"31\">{name}</text>",
            lx + 14.0
        );
    }
    let timed: Vec<(&BackupRun, i64)> = sets
        .iter()
        .filter_map(|b| b.started_unix.map(|t| (b, t)))
        .collect();
    if timed.is_empty() {
        s.push_str("<text x=\"70\" y=\"110\">no sets</text></svg>");
        return s;
    }
    let t0 = timed.iter().map(|p| p.1).min().unwrap_or(0);
    let t1 = timed.iter().map(|p| p.1).max().unwrap_or(0).max(t0 + 1);
    let vmax = timed.iter().map(|p| p.0.bytes).max().unwrap_or(0).max(1);
    let bw = ((w - l - r) / timed.len() as f64 * 0.6).clamp(3.0, 24.0);
    let _ = write!(
        s,
        "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>",
        h - bt,
        w - r,
        h - bt
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        l - 4.0,
        tp + 4.0,
        esc(&human_bytes(vmax))
    );
    let day = |u: i64| spyglass_backup::names::rfc3339(u)[..16].replace('T', " ");
    let _ = write!(
        s,
        "<text x=\"{l}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        h - 10.0,
        day(t0),
        w - r,
        h - 10.0,
        day(t1)
    );
    for (b, t) in timed {
        let x = if t1 == t0 + 1 && t == t0 {
            l + (w - l - r) / 2.0
        } else {
            l + (w - l - r - bw) * (t - t0) as f64 / (t1 - t0) as f64
        };
        let bh = ((h - tp - bt) * b.bytes as f64 / vmax as f64).max(1.0);
        let color = match (b.status.as_str(), b.verify.as_str()) {
            ("corrupt", _) | (_, "bad") => BAD,
            (_, "good") => GOOD,
            _ => GREY,
        };
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{}</title></rect>",
            h - bt - bh,
            esc(&b.name)
        );
    }
    s.push_str("</svg>");
    s
}

fn section_head<T>(out: &mut String, id: &str, title: &str, s: &Section<T>) -> bool {
    let _ = write!(out, "<section id=\"{id}\"><h2>{}</h2>", esc(title));
    match s {
        Section::Gathered { at, seconds, .. } => {
            let _ = write!(
                out,
                "<p class=\"muted\">gathered {} in {seconds:.2} s</p>",
                esc(at)
            );
            true
        }
        Section::Unavailable { reason } => {
            let _ = write!(
                out,
                "<p class=\"na\">not available: {}</p></section>",
                esc(reason)
            );
            false
        }
    }
}

fn header(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        "<header id=\"header\"><h1>Spyglass database report</h1><table>\
         <tr><th>server</th><td>{}</td></tr>\
         <tr><th>flavor and version</th><td>{} {}</td></tr>\
         <tr><th>report</th><td>spyglass-admin {}, generated {}</td></tr>",
        esc(&r.server.address),
        esc(&r.server.flavor),
        esc(&r.server.version),
        esc(&r.tool_version),
        esc(&r.generated)
    );
    let when = |s: Option<String>| s.unwrap_or_else(|| "not available".into());
    let rows: [(&str, Option<String>); 5] = [
        ("storage", gathered_at(&r.storage)),
        ("growth", gathered_at(&r.growth)),
        ("backups", gathered_at(&r.backups)),
        ("cleanup", gathered_at(&r.cleanup)),
        ("users", gathered_at(&r.users)),
    ];
    for (name, at) in rows {
        let _ = write!(
            out,
            "<tr><th>{name} gathered</th><td>{}</td></tr>",
            esc(&when(at))
        );
    }
    out.push_str("</table></header>");
}

fn gathered_at<T>(s: &Section<T>) -> Option<String> {
    match s {
        Section::Gathered { at, .. } => Some(at.clone()),
        Section::Unavailable { .. } => None,
    }
}

fn problems(out: &mut String, r: &Report) {
    out.push_str("<section id=\"problems\"><h2>Problems</h2>");
    if r.problems.is_empty() {
        out.push_str("<p class=\"ok\">No problems found.</p></section>");
        return;
    }
    let _ = write!(
        out,
        "<div class=\"problems\"><p class=\"high\"><span data-k=\"/problems\" data-v=\"{}\" data-f=\"len\">{}</span> problem(s), worst first</p><ul>",
        r.problems.len(),
        r.problems.len()
    );
    for p in &r.problems {
        let sev = match p.severity {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        };
        let _ = write!(
            out,
            "<li class=\"{sev}\">[{sev}] {}: {}</li>",
            esc(&p.section),
            esc(&p.message)
        );
    }
    out.push_str("</ul></div></section>");
}

fn storage(out: &mut String, r: &Report) {
    if !section_head(out, "storage", "Storage", &r.storage) {
        return;
    }
    let Some(s) = r.storage.data() else { return };
    let p = "/storage/data";
    let _ = write!(
        out,
        "<table><tr><th>database (data + index)</th>{}</tr><tr><th>external files (each once)</th>{}</tr><tr><th>files</th>{}</tr></table>",
        b(&format!("{p}/db_bytes"), s.db_bytes),
        b(&format!("{p}/file_bytes"), s.file_bytes),
        c(&format!("{p}/files"), s.files)
    );
    // Per group.
    out.push_str("<h3>Per shared module and user prefix</h3><div class=\"grid\">");
    let rows: Vec<(String, Vec<(u64, &str)>)> = s
        .groups
        .iter()
        .map(|g| {
            let kind = match g.kind {
                GroupKind::Module => "module",
                GroupKind::User => "user",
                GroupKind::Other => "schema",
            };
            (
                format!("{} {}_*", kind, g.name),
                vec![(g.db_bytes, DB), (g.file_bytes, FILES)],
            )
        })
        .collect();
    out.push_str(&hbars(
        "Bytes per module / user prefix",
        &rows,
        &[("database", DB), ("external files", FILES)],
    ));
    out.push_str("<table><tr><th>kind</th><th>prefix</th><th>schemas</th><th>database</th><th>files</th><th>file bytes</th><th>account</th></tr>");
    for (i, g) in s.groups.iter().enumerate() {
        let kind = match g.kind {
            GroupKind::Module => "module",
            GroupKind::User => "user",
            GroupKind::Other => "other",
        };
        let acct = match g.kind {
            GroupKind::User if g.account_exists => "yes",
            GroupKind::User => "no account",
            _ => "",
        };
        let k = format!("{p}/groups/{i}");
        let _ = write!(
            out,
            "<tr>{}{}{}{}{}{}{}</tr>",
            t(kind),
            t(&g.name),
            c(&format!("{k}/schemas"), g.schemas),
            b(&format!("{k}/db_bytes"), g.db_bytes),
            c(&format!("{k}/files"), g.files),
            b(&format!("{k}/file_bytes"), g.file_bytes),
            t(acct)
        );
    }
    out.push_str("</table></div>");
    // Per schema.
    out.push_str("<h3>Per schema</h3><div class=\"grid\">");
    let rows: Vec<(String, Vec<(u64, &str)>)> = s
        .schemas
        .iter()
        .map(|x| {
            (
                x.schema.clone(),
                vec![(x.data_bytes + x.index_bytes, DB), (x.file_bytes, FILES)],
            )
        })
        .collect();
    out.push_str(&hbars(
        "Bytes per schema",
        &rows,
        &[
            ("database", DB),
            ("external files (shared ones in full)", FILES),
        ],
    ));
    out.push_str("<table><tr><th>schema</th><th>group</th><th>tables</th><th>data</th><th>index</th><th>files</th><th>file bytes</th><th>of which shared</th><th>missing files</th></tr>");
    for (i, x) in s.schemas.iter().enumerate() {
        let k = format!("{p}/schemas/{i}");
        let missing = if x.missing_files > 0 {
            format!(
                "<td class=\"n bad\" data-k=\"{k}/missing_files\" data-v=\"{}\" data-f=\"c\">{}</td>",
                x.missing_files, x.missing_files
            )
        } else {
            c(&format!("{k}/missing_files"), 0)
        };
        let _ = write!(
            out,
            "<tr>{}{}{}{}{}{}{}{}{missing}</tr>",
            t(&x.schema),
            t(&x.group),
            c(&format!("{k}/tables"), x.tables),
            b(&format!("{k}/data_bytes"), x.data_bytes),
            b(&format!("{k}/index_bytes"), x.index_bytes),
            c(&format!("{k}/files"), x.files),
            b(&format!("{k}/file_bytes"), x.file_bytes),
            b(&format!("{k}/shared_file_bytes"), x.shared_file_bytes)
        );
    }
    out.push_str("</table></div>");
    // Sharing.
    out.push_str("<h3>Files several schemas reference (counted once above)</h3>");
    if s.sharing.is_empty() {
        out.push_str("<p class=\"muted\">No file is referenced by more than one schema.</p>");
    } else {
        out.push_str("<table><tr><th>schemas</th><th>files</th><th>bytes</th></tr>");
        for (i, x) in s.sharing.iter().enumerate() {
            let k = format!("{p}/sharing/{i}");
            let _ = write!(
                out,
                "<tr>{}{}{}</tr>",
                t(&x.schemas.join(", ")),
                c(&format!("{k}/files"), x.files),
                b(&format!("{k}/bytes"), x.bytes)
            );
        }
        out.push_str("</table>");
    }
    // Stores and volumes.
    out.push_str("<h3>Stores and disks</h3><table><tr><th>store</th><th>directory</th><th>files</th><th>bytes</th><th>missing</th><th>disk free</th><th>disk size</th></tr>");
    for (i, x) in s.stores.iter().enumerate() {
        let k = format!("{p}/stores/{i}");
        let (free, total) = match &x.volume {
            Some(v) => (
                b(&format!("{k}/volume/free_bytes"), v.free_bytes),
                b(&format!("{k}/volume/total_bytes"), v.total_bytes),
            ),
            None => (t("unknown"), t("unknown")),
        };
        let _ = write!(
            out,
            "<tr>{}{}{}{}{}{free}{total}</tr>",
            t(&x.store),
            t(&x.location),
            c(&format!("{k}/files"), x.files),
            b(&format!("{k}/file_bytes"), x.file_bytes),
            c(&format!("{k}/missing_files"), x.missing_files)
        );
    }
    match &s.database_volume {
        Some(v) => {
            let _ = write!(
                out,
                "<tr>{}{}<td></td><td></td><td></td>{}{}</tr>",
                t("database"),
                t(&v.path),
                b(&format!("{p}/database_volume/free_bytes"), v.free_bytes),
                b(&format!("{p}/database_volume/total_bytes"), v.total_bytes)
            );
        }
        None => {
            let _ = write!(
                out,
                "<tr>{}<td colspan=\"6\" class=\"na\">{}</td></tr>",
                t("database"),
                esc(s.database_volume_note.as_deref().unwrap_or("unknown"))
            );
        }
    }
    out.push_str("</table>");
    // Top tables.
    out.push_str("<h3>Largest tables</h3><table><tr><th>table</th><th>rows (estimate)</th><th>data</th><th>index</th></tr>");
    for (i, x) in s.top_tables.iter().enumerate() {
        let k = format!("{p}/top_tables/{i}");
        let _ = write!(
            out,
            "<tr>{}{}{}{}</tr>",
            t(&format!("{}.{}", x.schema, x.table)),
            c(&format!("{k}/rows"), x.rows),
            b(&format!("{k}/data_bytes"), x.data_bytes),
            b(&format!("{k}/index_bytes"), x.index_bytes)
        );
    }
    out.push_str("</table>");
    for n in &s.notes {
        let _ = write!(out, "<p class=\"muted\">note: {}</p>", esc(n));
    }
    out.push_str("</section>");
}

fn growth(out: &mut String, r: &Report) {
    if !section_head(out, "growth", "Growth and runway", &r.growth) {
        return;
    }
    let Some(g) = r.growth.data() else { return };
    let p = "/growth/data";
    let _ = write!(
        out,
        "<p class=\"muted\">history: {}</p>",
        esc(&g.history_file)
    );
    out.push_str("<div class=\"grid\">");
    let rep: Vec<(i64, u64)> = g
        .series
        .iter()
        .filter(|x| x.source == "report")
        .map(|x| (x.unix, x.db_bytes()))
        .collect();
    let man: Vec<(i64, u64)> = g
        .series
        .iter()
        .filter(|x| x.source == "manifest")
        .map(|x| (x.unix, x.db_bytes()))
        .collect();
    let files: Vec<(i64, u64)> = g
        .series
        .iter()
        .filter(|x| x.source == "report")
        .map(|x| (x.unix, x.store_bytes.values().sum()))
        .collect();
    out.push_str(&lines(
        "Bytes over time",
        &[
            ("database (data + index)", DB, rep),
            ("backup dump, uncompressed (manifests)", GREY, man),
            ("external files", FILES, files),
        ],
    ));
    out.push_str(
        "<table><tr><th>when</th><th>source</th><th>database</th><th>external files</th></tr>",
    );
    for (i, x) in g.series.iter().enumerate() {
        let k = format!("{p}/series/{i}");
        let _ = write!(
            out,
            "<tr>{}{}<td class=\"n\" data-sum=\"{k}/schema_bytes\" data-v=\"{}\" data-f=\"b\">{}</td><td class=\"n\" data-sum=\"{k}/store_bytes\" data-v=\"{}\" data-f=\"b\">{}</td></tr>",
            t(&x.at),
            t(&x.source),
            x.db_bytes(),
            esc(&human_bytes(x.db_bytes())),
            x.store_bytes.values().sum::<u64>(),
            esc(&human_bytes(x.store_bytes.values().sum()))
        );
    }
    out.push_str("</table></div>");
    out.push_str("<h3>Runway to a full disk</h3><table><tr><th>what</th><th>from</th><th>points</th><th>now</th><th>growth per day</th><th>free</th><th>days left</th><th>note</th></tr>");
    for (i, w) in g.runway.iter().enumerate() {
        let k = format!("{p}/runway/{i}");
        let rate = match w.bytes_per_day {
            Some(v) if v >= 0.0 => b(&format!("{k}/bytes_per_day"), v.round() as u64),
            Some(v) => format!(
                "<td class=\"n\">-{}</td>",
                esc(&human_bytes((-v).round() as u64))
            ),
            None => t("unknown"),
        };
        let free = match w.free_bytes {
            Some(f) => b(&format!("{k}/free_bytes"), f),
            None => t("unknown"),
        };
        let days = match w.days_left {
            Some(v) if v < crate::RUNWAY_DAYS => format!(
                "<td class=\"n bad\" data-k=\"{k}/days_left\" data-v=\"{v}\" data-f=\"d\">{v:.1}</td>"
            ),
            Some(v) => d(&format!("{k}/days_left"), v),
            None => t("-"),
        };
        let _ = write!(
            out,
            "<tr>{}{}{}{}{rate}{free}{days}{}</tr>",
            t(&w.what),
            t(&w.source),
            c(&format!("{k}/points"), w.points),
            b(&format!("{k}/bytes"), w.bytes),
            t(w.note.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table></section>");
}

fn backups(out: &mut String, r: &Report) {
    if !section_head(out, "backups", "Backups", &r.backups) {
        return;
    }
    let Some(bk) = r.backups.data() else { return };
    let p = "/backups/data";
    let _ = write!(
        out,
        "<table><tr><th>destination</th>{}</tr><tr><th>sets</th><td class=\"n\" data-k=\"{p}/sets\" data-v=\"{}\" data-f=\"len\">{}</td></tr>\
         <tr><th>newest verified set</th>{}</tr><tr><th>newest verified off-site set</th>{}</tr>\
         <tr><th>binary-log archive (restorable window, RPO)</th><td class=\"na\" id=\"binlog\">{}</td></tr></table>",
        t(&bk.destination),
        bk.sets.len(),
        bk.sets.len(),
        match &bk.newest_verified {
            Some(n) => t(n),
            None => "<td class=\"bad\">none</td>".into(),
        },
        match &bk.newest_offsite_verified {
            Some(n) => t(n),
            None => "<td class=\"bad\">none known</td>".into(),
        },
        esc(&bk.binlog_archive)
    );
    out.push_str("<div class=\"grid\">");
    out.push_str(&timeline(&bk.sets));
    out.push_str("</div><table><tr><th>set</th><th>status</th><th>started</th><th>duration s</th><th>size</th><th>uncompressed</th><th>compression</th><th>verify</th><th>ship</th><th>warnings</th><th>notes</th></tr>");
    for (i, s) in bk.sets.iter().enumerate().rev() {
        let k = format!("{p}/sets/{i}");
        let verify_class = match s.verify.as_str() {
            "good" => "ok",
            "bad" => "bad",
            _ => "muted",
        };
        let status = if s.status == "complete" {
            t(&s.status)
        } else {
            format!("<td class=\"bad\">{}</td>", esc(&s.status))
        };
        let ship = match s.ship.as_deref() {
            Some("ok") => format!(
                "<td class=\"ok\">{}</td>",
                esc(s.ship_detail.as_deref().unwrap_or("ok"))
            ),
            Some(st) => format!(
                "<td class=\"bad\">{}: {}</td>",
                esc(st),
                esc(s.ship_detail.as_deref().unwrap_or(""))
            ),
            None => "<td class=\"muted\">not in the nightly log</td>".into(),
        };
        let notes = format!("<td class=\"muted\">{}</td>", esc(&s.notes.join("; ")));
        let _ = write!(
            out,
            "<tr>{}{status}{}{}{}{}{}<td class=\"{verify_class}\">{}{}</td>{ship}{}{}</tr>",
            t(&s.name),
            t(s.started.as_deref().unwrap_or("?")),
            match s.seconds {
                Some(v) => d(&format!("{k}/seconds"), v),
                None => t("?"),
            },
            b(&format!("{k}/bytes"), s.bytes),
            match s.raw_bytes {
                Some(v) => b(&format!("{k}/raw_bytes"), v),
                None => t("?"),
            },
            t(s.compression.as_deref().unwrap_or("?")),
            esc(&s.verify),
            s.verify_detail
                .as_ref()
                .map(|d| format!(" ({})", esc(d)))
                .unwrap_or_default(),
            if s.warnings.is_empty() {
                t("")
            } else {
                format!("<td class=\"bad\">{}</td>", esc(&s.warnings.join("; ")))
            },
            notes
        );
    }
    out.push_str("</table>");
    if !bk.nightly.is_empty() {
        out.push_str("<h3>Nightly runs</h3><table><tr><th>started</th><th>result</th><th>seconds</th><th>set</th><th>steps</th></tr>");
        for (i, n) in bk.nightly.iter().enumerate().rev() {
            let class = match n.status.as_str() {
                "ok" => "ok",
                "failed" => "bad",
                _ => "medium",
            };
            let steps: Vec<String> = n.steps.iter().map(|(a, b)| format!("{a} {b}")).collect();
            let _ = write!(
                out,
                "<tr>{}<td class=\"{class}\">{}</td>{}{}{}</tr>",
                t(&n.started),
                esc(&n.status),
                d(&format!("{p}/nightly/{i}/seconds"), n.seconds),
                t(n.set.as_deref().unwrap_or("-")),
                t(&steps.join(", "))
            );
        }
        out.push_str("</table>");
    } else {
        out.push_str("<p class=\"muted\">No nightly runs logged in the destination (spyglass-nightly.log).</p>");
    }
    out.push_str("</section>");
}

fn cleanup(out: &mut String, r: &Report) {
    if !section_head(out, "cleanup", "Cleanup", &r.cleanup) {
        return;
    }
    let Some(cl) = r.cleanup.data() else { return };
    let p = "/cleanup/data";
    out.push_str("<h3>Dangling references (possible data loss)</h3>");
    if cl.dangling.is_empty() {
        out.push_str("<p class=\"ok\">None: every referenced file is on disk.</p>");
    } else {
        let _ = write!(
            out,
            "<p class=\"bad\"><span data-k=\"{p}/dangling\" data-v=\"{}\" data-f=\"len\">{}</span> row(s) name a file that is missing; cleanup never acts on them.</p><ul>",
            cl.dangling.len(),
            cl.dangling.len()
        );
        for x in &cl.dangling {
            let _ = write!(out, "<li class=\"bad\">{}</li>", esc(x));
        }
        out.push_str("</ul>");
    }
    let _ = write!(
        out,
        "<table><tr><th>reclaimable (every class apply acts on)</th>{}</tr><tr><th>younger than the grace period (left alone)</th>{}</tr></table>",
        b(&format!("{p}/reclaimable_bytes"), cl.reclaimable_bytes),
        b(&format!("{p}/young/bytes"), cl.young.bytes)
    );
    out.push_str("<div class=\"grid\">");
    let rows: Vec<(String, Vec<(u64, &str)>)> = cl
        .classes
        .iter()
        .map(|x| {
            let color = if x.name == "dangling" { BAD } else { FILES };
            (x.name.clone(), vec![(x.bytes, color)])
        })
        .collect();
    out.push_str(&hbars("Bytes by class", &rows, &[]));
    out.push_str("<table><tr><th>class</th><th>items</th><th>bytes</th></tr>");
    for (i, x) in cl.classes.iter().enumerate() {
        let k = format!("{p}/classes/{i}");
        let _ = write!(
            out,
            "<tr>{}{}{}</tr>",
            t(&x.name),
            c(&format!("{k}/count"), x.count),
            b(&format!("{k}/bytes"), x.bytes)
        );
    }
    out.push_str("</table></div><div class=\"grid\">");
    let rows: Vec<(String, Vec<(u64, &str)>)> = cl
        .top_folders
        .iter()
        .map(|x| (x.name.clone(), vec![(x.bytes, FILES)]))
        .collect();
    out.push_str(&hbars("Reclaimable bytes by top folder", &rows, &[]));
    out.push_str("<table><tr><th>folder</th><th>items</th><th>bytes</th></tr>");
    for (i, x) in cl.top_folders.iter().enumerate() {
        let k = format!("{p}/top_folders/{i}");
        let _ = write!(
            out,
            "<tr>{}{}{}</tr>",
            t(&x.name),
            c(&format!("{k}/count"), x.count),
            b(&format!("{k}/bytes"), x.bytes)
        );
    }
    out.push_str("</table></div>");
    let _ = write!(
        out,
        "<h3>Quarantine</h3><p class=\"muted\">{}</p>",
        esc(cl
            .quarantine
            .as_deref()
            .unwrap_or("no quarantine folder configured"))
    );
    if cl.quarantine_runs.is_empty() {
        out.push_str("<p class=\"muted\">No quarantine runs.</p>");
    } else {
        out.push_str("<table><tr><th>run</th><th>created</th><th>age (days)</th><th>items</th><th>bytes</th></tr>");
        for (i, q) in cl.quarantine_runs.iter().enumerate() {
            let k = format!("{p}/quarantine_runs/{i}");
            let _ = write!(
                out,
                "<tr>{}{}{}{}{}</tr>",
                t(&q.run),
                t(&q.created),
                d(&format!("{k}/age_days"), q.age_days),
                c(&format!("{k}/items"), q.items),
                b(&format!("{k}/bytes"), q.bytes)
            );
        }
        out.push_str("</table>");
    }
    for n in &cl.notes {
        let _ = write!(out, "<p class=\"muted\">note: {}</p>", esc(n));
    }
    out.push_str("</section>");
}

fn users(out: &mut String, r: &Report) {
    if !section_head(out, "users", "Users", &r.users) {
        return;
    }
    let Some(u) = r.users.data() else { return };
    let p = "/users/data";
    out.push_str("<h3>Role by account</h3><table><tr><th>account</th>");
    for role in &u.roles {
        let _ = write!(out, "<th>{}</th>", esc(role));
    }
    out.push_str("<th>password age (days)</th><th>password</th><th>locked</th></tr>");
    for (i, a) in u.accounts.iter().enumerate() {
        let _ = write!(out, "<tr>{}", t(&a.account));
        for cell in &a.cells {
            let _ = match cell.as_str() {
                "active" => write!(out, "<td class=\"cell-active\">active</td>"),
                "granted" => write!(
                    out,
                    "<td class=\"cell-granted\">granted, not active at login</td>"
                ),
                _ => write!(out, "<td></td>"),
            };
        }
        let pw = if a.temporary_password {
            "<td class=\"bad\">temporary</td>"
        } else if a.password_expired {
            "<td class=\"bad\">never changed</td>"
        } else {
            "<td></td>"
        };
        let _ = write!(
            out,
            "{}{pw}{}</tr>",
            match a.password_age_days {
                Some(v) => c(
                    &format!("{p}/accounts/{i}/password_age_days"),
                    v.max(0) as u64
                ),
                None => t("-"),
            },
            t(if a.locked { "locked" } else { "" })
        );
    }
    out.push_str("</table>");
    out.push_str("<h3>Temporary or never-changed passwords</h3>");
    list(out, &u.weak_passwords, "bad", "None.");
    out.push_str("<h3>Inactive roles</h3>");
    list(
        out,
        &u.inactive_roles,
        "medium",
        "None: every role exists and is held and active.",
    );
    let _ = write!(
        out,
        "<h3>Audit findings (<span data-k=\"{p}/findings\" data-v=\"{}\" data-f=\"len\">{}</span>)</h3>",
        u.findings.len(),
        u.findings.len()
    );
    if u.findings.is_empty() {
        out.push_str("<p class=\"ok\">Clean: no findings.</p>");
    } else {
        out.push_str("<table><tr><th>severity</th><th>kind</th><th>subject</th><th>what</th><th>fix</th></tr>");
        for f in &u.findings {
            let _ = write!(
                out,
                "<tr><td class=\"{}\">{}</td>{}{}{}{}</tr>",
                esc(&f.severity),
                esc(&f.severity),
                t(&f.kind),
                t(&f.subject),
                t(&f.message),
                t(&f.fix)
            );
        }
        out.push_str("</table>");
    }
    for n in &u.notes {
        let _ = write!(out, "<p class=\"muted\">note: {}</p>", esc(n));
    }
    out.push_str("</section>");
}

fn list(out: &mut String, items: &[String], class: &str, empty: &str) {
    if items.is_empty() {
        let _ = write!(out, "<p class=\"ok\">{}</p>", esc(empty));
        return;
    }
    out.push_str("<ul>");
    for i in items {
        let _ = write!(out, "<li class=\"{class}\">{}</li>", esc(i));
    }
    out.push_str("</ul>");
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>Spyglass database report: {}</title><style>{STYLE}</style></head><body>",
        esc(&r.server.address)
    );
    header(&mut out, r);
    problems(&mut out, r);
    storage(&mut out, r);
    growth(&mut out, r);
    backups(&mut out, r);
    cleanup(&mut out, r);
    users(&mut out, r);
    out.push_str("</body></html>\n");
    out
}
