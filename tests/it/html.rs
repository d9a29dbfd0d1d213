//! report.html and index.html parsed as HTML: the sections are there and nothing in
//! the page refers outside it.

use crate::helpers::{leakdiag, stderr};
use crate::synth::{demo_dump, SynthDump, SynthModule};
use scraper::{Html, Selector};

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn count(doc: &Html, s: &str) -> usize {
    doc.select(&sel(s)).count()
}

/// Fails if the page loads or links anything outside itself.
fn assert_self_contained(doc: &Html, page: &str) {
    let external: Vec<_> = doc
        .select(&sel("[src], link, script[src], iframe, object, embed, img"))
        .map(|el| el.value().name().to_owned())
        .collect();
    assert!(
        external.is_empty(),
        "{page}: elements loading resources: {external:?}"
    );
    for el in doc.select(&sel("[href]")) {
        let href = el.value().attr("href").unwrap();
        assert!(
            href.starts_with('#') || (!href.contains(':') && !href.starts_with("//")),
            "{page}: link outside the report: {href}"
        );
    }
    for style in doc.select(&sel("style")) {
        let css: String = style.text().collect();
        assert!(
            !css.contains("url(") && !css.contains("@import"),
            "{page}: CSS loads something"
        );
    }
    let html = doc.html();
    for attr in ["http://", "https://"] {
        let outside =
            html.matches(attr).count() - html.matches(&format!("{attr}www.w3.org/")).count();
        assert_eq!(outside, 0, "{page}: mentions an outside address");
    }
}

#[test]
fn report_html_has_every_section_and_nothing_external() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w3wp.dmp"), demo_dump(1)).unwrap();
    let o = leakdiag(
        dir.path(),
        &["analyze", "w3wp.dmp", "-o", "out", "--stacks", "2"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("out/w3wp/report.html")).unwrap();
    let doc = Html::parse_document(&text);
    assert_self_contained(&doc, "report.html");
    for id in [
        "#overview",
        "#summary",
        "#leak-charts",
        "#leak-modules",
        "#leak-details",
        "#tracking",
        "#process",
        "#virtual_memory",
        "#handles",
        "#modules",
    ] {
        assert_eq!(count(&doc, id), 1, "section {id}");
    }
    let mut ids: Vec<&str> = doc
        .select(&sel("[id]"))
        .map(|el| el.value().attr("id").unwrap())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "ids are unique");
    assert_eq!(
        count(&doc, "#modules tbody tr"),
        9,
        "every module of the dump"
    );
    assert_eq!(count(&doc, "#leak-charts svg"), 2, "two bar charts");
    assert!(count(&doc, "#leak-charts svg rect") >= 10, "bars drawn");
    let modules = count(&doc, "#leak-modules tbody tr");
    assert_eq!(modules, 7, "every module in the table");
    assert_eq!(count(&doc, "#leak-details article.module"), modules);
    let first: String = doc
        .select(&sel("#leak-details article.module h4"))
        .next()
        .unwrap()
        .text()
        .collect();
    assert_eq!(first, "odbcvend.dll");
    // Module cards are anchored by name, stacks by their id.
    assert_eq!(
        count(&doc, "#module-odbcvend\\.dll .stack"),
        2,
        "--stacks 2"
    );
    assert_eq!(
        count(&doc, "#module-odbcvend\\.dll .stack ol li"),
        16,
        "both stacks, every frame"
    );
    assert_eq!(count(&doc, "#module-odbcvend\\.dll li.responsible"), 2);
    for stack in doc.select(&sel("#module-odbcvend\\.dll .stack")) {
        let id = stack.value().attr("id").unwrap();
        assert!(id.starts_with("stack-") && id.len() == 22, "{id}");
        let link = stack.select(&sel("a.stack-id")).next().unwrap();
        assert_eq!(link.value().attr("href").unwrap(), format!("#{id}"));
    }
    // The verdict comes first, with the module linked to its card.
    let verdict = doc.select(&sel("#verdict")).next().expect("a verdict");
    assert!(verdict
        .text()
        .collect::<String>()
        .contains("odbcvend.dll probably leaks"));
    assert_eq!(
        count(&doc, "#verdict a[href='#module-odbcvend.dll']"),
        1,
        "the named module links to its card"
    );
    assert!(
        text.contains("1,950,000"),
        "exact byte counts with separators"
    );
    assert!(text.contains("odbcvend.dll+0x1366"));
    assert!(doc
        .select(&sel("#leak-modules td"))
        .any(|td| td.text().collect::<String>() == "(unknown)"));
    assert!(text.contains("@media print"), "print style");

    let index =
        Html::parse_document(&std::fs::read_to_string(dir.path().join("out/index.html")).unwrap());
    assert_self_contained(&index, "index.html");
    assert_eq!(count(&index, "#inputs tbody tr"), 1);
    assert_eq!(count(&index, "#inputs a[href='w3wp/report.html']"), 1);
}

#[test]
fn a_dump_without_tracker_data_still_gets_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let plain = SynthDump {
        modules: vec![SynthModule::new("C:\\a\\app.exe", 0x40_0000, 0x1_0000)],
        pid: Some(7),
        ..Default::default()
    }
    .build();
    std::fs::write(dir.path().join("plain.dmp"), plain).unwrap();
    let o = leakdiag(dir.path(), &["analyze", "plain.dmp", "-o", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("out/plain/report.html")).unwrap();
    let doc = Html::parse_document(&text);
    assert_self_contained(&doc, "report.html");
    assert!(text.contains("no tracker data"));
    assert_eq!(count(&doc, "#leak-charts"), 0);
    assert!(text.contains("Not applicable: the dump has no allocation stream"));
    assert_eq!(
        count(&doc, "#modules tbody tr"),
        1,
        "module information is shown"
    );
}

#[test]
fn names_from_the_dump_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = leakdiag::dump::writer::AllocationStreamBuilder::new(1, 2);
    b.allocate(
        0x10,
        5,
        0,
        leakdiag::dump::stream::AllocatorKind::Heap,
        &[0x40_1000],
    );
    b.metadata("note", "<script>alert(1)</script>");
    let bytes = SynthDump {
        modules: vec![SynthModule::new(
            "C:\\a\\<img src=x>.dll",
            0x40_0000,
            0x1_0000,
        )],
        stream: Some(b.build()),
        ..Default::default()
    }
    .build();
    std::fs::write(dir.path().join("x.dmp"), bytes).unwrap();
    let o = leakdiag(dir.path(), &["analyze", "x.dmp", "-o", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("out/x/report.html")).unwrap();
    assert!(!text.contains("<script>") && !text.contains("<img src=x>"));
    let doc = Html::parse_document(&text);
    assert_self_contained(&doc, "report.html");
}
