//! `cbx shard --junit-out FILE`: every shard's JUnit reports in one document. The reports'
//! `testsuite` elements go, in shard order, under one `<testsuites>` root (a report's own
//! `testsuites` wrapper is dropped); each suite's name is led by its shard (`[2/4] name`) and
//! every `testcase` gets a `shard="2/4"` attribute. Everything else is copied as it came
//! (quick-xml re-escapes nothing it did not unescape). A report that is not well-formed XML
//! is left out with a warning (it was already reported when its totals were read).

use std::borrow::Cow;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::{Reader, Writer};

/// Merges `reports` — each (shard index, its reports' texts) — of `total` shards; returns the
/// document and a warning per report left out.
pub fn merge(reports: &[(u32, &[Vec<u8>])], total: u32) -> (Vec<u8>, Vec<String>) {
    let mut out = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n".to_vec();
    let mut warnings = Vec::new();
    for (index, docs) in reports {
        let tag = format!("{index}/{total}");
        for doc in docs.iter() {
            match one(doc, &tag) {
                Ok(body) => {
                    out.extend_from_slice(&body);
                    out.push(b'\n');
                }
                Err(e) => warnings.push(format!(
                    "--junit-out: a report of shard {tag} was left out: {e}"
                )),
            }
        }
    }
    out.extend_from_slice(b"</testsuites>\n");
    (out, warnings)
}

/// One report's suites, tagged with shard `tag`.
fn one(doc: &[u8], tag: &str) -> Result<Vec<u8>, String> {
    let mut reader = Reader::from_reader(doc);
    let mut writer = Writer::new(Vec::new());
    let mut buf = Vec::new();
    let mut depth = 0usize;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("not valid XML at byte {}: {e}", reader.buffer_position()))?;
        match &event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
        let event = match event {
            Event::Eof if depth > 0 => return Err("an element is not closed".to_string()),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => continue,
            Event::Start(e) if e.local_name().as_ref() == "testsuites" => continue,
            Event::Empty(e) if e.local_name().as_ref() == "testsuites" => continue,
            Event::End(e) if e.local_name().as_ref() == "testsuites" => continue,
            Event::Start(e) => Event::Start(tagged(&e, tag)),
            Event::Empty(e) => Event::Empty(tagged(&e, tag)),
            other => other,
        };
        writer
            .write_event(event)
            .map_err(|e| format!("cannot write: {e}"))?;
        buf.clear();
    }
    Ok(writer.into_inner())
}

/// `e` with its shard: a suite's name led by `[tag] `, a case's `shard` attribute.
fn tagged(e: &BytesStart<'_>, tag: &str) -> BytesStart<'static> {
    let kind = e.local_name().as_ref().to_string();
    if kind != "testsuite" && kind != "testcase" {
        return e.clone().into_owned();
    }
    let mut out = BytesStart::new(e.name().as_ref().to_string());
    let mut named = false;
    for a in e.attributes().flatten() {
        let key = a.key.as_ref().to_string();
        if kind == "testsuite" && a.key.local_name().as_ref() == "name" {
            named = true;
            let value = format!("[{tag}] {}", a.value);
            out.push_attribute(Attribute {
                key: QName(&key),
                value: Cow::Owned(value),
            });
        } else if kind == "testcase" && a.key.local_name().as_ref() == "shard" {
            // Replaced by cbx's own below.
        } else {
            out.push_attribute(Attribute {
                key: QName(&key),
                value: a.value.clone(),
            });
        }
    }
    if kind == "testsuite" && !named {
        out.push_attribute(("name", format!("[{tag}]").as_str()));
    }
    if kind == "testcase" {
        out.push_attribute(("shard", tag));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_tagged_under_one_root_and_stay_readable() {
        let a = br#"<?xml version="1.0"?>
<testsuites><testsuite name="parser &amp; co" tests="1"><testcase name="ok"/></testsuite></testsuites>"#
            .to_vec();
        let b = br#"<testsuite name="io"><testcase name="bad" shard="x"><failure message="boom &lt;1&gt;">at line 3</failure></testcase></testsuite>"#
            .to_vec();
        let broken = b"<testsuite><testcase name=\"x\">".to_vec();
        let (doc, warnings) = merge(&[(1, std::slice::from_ref(&a)), (2, &[b, broken][..])], 2);
        let text = String::from_utf8(doc.clone()).unwrap();
        assert!(
            text.contains(r#"<testsuite name="[1/2] parser &amp; co" tests="1">"#),
            "{text}"
        );
        assert!(
            text.contains(r#"<testcase name="ok" shard="1/2"/>"#),
            "{text}"
        );
        assert!(
            text.contains(r#"<testcase name="bad" shard="2/2">"#),
            "{text}"
        );
        assert!(text.contains(r#"message="boom &lt;1&gt;""#), "{text}");
        assert_eq!(text.matches("<testsuites>").count(), 1, "{text}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("shard 2/2"), "{warnings:?}");
        // The merged document is a report cbx itself reads.
        let summary = crate::junit::parse(&doc[..]).unwrap();
        assert_eq!((summary.tests, summary.failed), (2, 1));
        assert_eq!(summary.problems[0].suite, "[2/2] io");
    }
}
