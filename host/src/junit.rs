//! JUnit XML test reports, as `run --junit` fetches them: totals and the failed and errored
//! cases, from the dialects test runners write (pytest, cargo-nextest, jest and vitest,
//! go-junit-report, Maven surefire). Cases are counted from the `testcase` elements
//! themselves, not from the attributes a runner may or may not fill in; retries that
//! nextest and surefire record (`flakyFailure`, `rerunFailure`, …) are not failures.
//!
//! A leaf: a report is hostile text and is only ever shown through `terminal::inert`.

use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// How many lines of a failure's message are kept.
pub const MESSAGE_LINES: usize = 3;
/// How many characters of each line are kept.
const LINE_CHARS: usize = 200;
/// How many characters of body text are read per failure (the rest is skipped).
const BODY_CHARS: usize = 4096;

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It passed.
    Passed,
    /// An assertion failed (`<failure>`).
    Failed,
    /// It could not run to its end (`<error>`).
    Errored,
    /// It was skipped (`<skipped>`).
    Skipped,
}

/// A case that failed or errored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// `failed` or `errored`.
    pub outcome: Outcome,
    /// The enclosing suite's name (else the case's class name).
    pub suite: String,
    /// The case's name.
    pub name: String,
    /// The first lines of its message (the `message` attribute, then the element's text).
    pub message: Vec<String>,
}

/// The totals of one or more reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Cases run (all outcomes).
    pub tests: u64,
    /// Passed cases.
    pub passed: u64,
    /// Failed cases.
    pub failed: u64,
    /// Errored cases.
    pub errored: u64,
    /// Skipped cases.
    pub skipped: u64,
    /// The failed and errored cases, in report order.
    pub problems: Vec<Problem>,
}

impl Summary {
    /// Adds `other`'s counts and problems.
    pub fn absorb(&mut self, other: Summary) {
        self.tests += other.tests;
        self.passed += other.passed;
        self.failed += other.failed;
        self.errored += other.errored;
        self.skipped += other.skipped;
        self.problems.extend(other.problems);
    }
}

/// The case being read.
#[derive(Debug, Default)]
struct Case {
    suite: String,
    name: String,
    outcome: Option<Outcome>,
    message: String,
    body: String,
    in_problem: bool,
}

/// Parses one JUnit XML document.
pub fn parse(input: impl BufRead) -> Result<Summary, String> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut suites: Vec<String> = Vec::new();
    let mut case: Option<Case> = None;
    let mut summary = Summary::default();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("not valid XML at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(e) => {
                open(&e, false, &mut suites, &mut case, &mut summary);
            }
            Event::Empty(e) => {
                open(&e, true, &mut suites, &mut case, &mut summary);
            }
            Event::End(e) => match e.local_name().as_ref() {
                "testsuite" => {
                    suites.pop();
                }
                "testcase" => {
                    if let Some(c) = case.take() {
                        finish(c, &mut summary);
                    }
                }
                "failure" | "error" => {
                    if let Some(c) = case.as_mut() {
                        c.in_problem = false;
                    }
                }
                _ => {}
            },
            Event::Text(t) => {
                if let Some(c) = case.as_mut().filter(|c| c.in_problem) {
                    push_body(&mut c.body, &t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(c) = case.as_mut().filter(|c| c.in_problem) {
                    push_body(&mut c.body, &t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(c) = case.as_mut().filter(|c| c.in_problem) {
                    let ch = match r.resolve_char_ref() {
                        Ok(Some(ch)) => ch.to_string(),
                        _ => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                            .map(str::to_string)
                            .unwrap_or_default(),
                    };
                    push_body(&mut c.body, &ch);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if let Some(c) = case.take() {
        finish(c, &mut summary);
    }
    Ok(summary)
}

/// Handles an opening (or empty) element.
fn open(
    e: &BytesStart<'_>,
    empty: bool,
    suites: &mut Vec<String>,
    case: &mut Option<Case>,
    summary: &mut Summary,
) {
    let attr = |key: &str| -> String {
        e.attributes()
            .flatten()
            .find(|a| a.key.local_name().as_ref() == key)
            .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
            .map(|v| v.into_owned())
            .unwrap_or_default()
    };
    match e.local_name().as_ref() {
        "testsuite" if !empty => suites.push(attr("name")),
        "testcase" => {
            if let Some(previous) = case.take() {
                finish(previous, summary);
            }
            let classname = attr("classname");
            let suite = suites
                .iter()
                .rev()
                .find(|s| !s.is_empty())
                .cloned()
                .unwrap_or(classname);
            let c = Case {
                suite,
                name: attr("name"),
                ..Case::default()
            };
            if empty {
                finish(c, summary);
            } else {
                *case = Some(c);
            }
        }
        kind @ ("failure" | "error") => {
            if let Some(c) = case.as_mut()
                && c.outcome.is_none_or(|o| o == Outcome::Skipped)
            {
                c.outcome = Some(if kind == "failure" {
                    Outcome::Failed
                } else {
                    Outcome::Errored
                });
                c.message = attr("message");
                c.in_problem = !empty;
            }
        }
        "skipped" => {
            if let Some(c) = case.as_mut()
                && c.outcome.is_none()
            {
                c.outcome = Some(Outcome::Skipped);
            }
        }
        _ => {}
    }
}

fn push_body(body: &mut String, text: &str) {
    let room = BODY_CHARS.saturating_sub(body.chars().count());
    body.extend(text.chars().take(room));
}

/// Counts a finished case; keeps a failed or errored one with its first message lines.
fn finish(c: Case, summary: &mut Summary) {
    summary.tests += 1;
    let outcome = c.outcome.unwrap_or(Outcome::Passed);
    match outcome {
        Outcome::Passed => summary.passed += 1,
        Outcome::Skipped => summary.skipped += 1,
        Outcome::Failed => summary.failed += 1,
        Outcome::Errored => summary.errored += 1,
    }
    if matches!(outcome, Outcome::Failed | Outcome::Errored) {
        summary.problems.push(Problem {
            outcome,
            suite: c.suite,
            name: c.name,
            message: first_lines(&c.message, &c.body),
        });
    }
}

/// The first [`MESSAGE_LINES`] non-empty lines of `message` then `body` (a body line equal
/// to the message is not repeated), each cut to [`LINE_CHARS`].
fn first_lines(message: &str, body: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in message.lines().chain(body.lines()) {
        let line = line.trim_end();
        if line.trim().is_empty() || lines.iter().any(|l| l == line) {
            continue;
        }
        let mut cut: String = line.chars().take(LINE_CHARS).collect();
        if cut.len() < line.len() {
            cut.push('…');
        }
        lines.push(cut);
        if lines.len() == MESSAGE_LINES {
            break;
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Summary {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/junit")
            .join(name);
        let text = std::fs::read(&path).unwrap();
        parse(&text[..]).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn counts(s: &Summary) -> (u64, u64, u64, u64, u64) {
        (s.tests, s.passed, s.failed, s.errored, s.skipped)
    }

    #[test]
    fn pytest() {
        let s = fixture("pytest.xml");
        assert_eq!(counts(&s), (5, 2, 1, 1, 1));
        assert_eq!(s.problems[0].suite, "pytest");
        assert_eq!(s.problems[0].name, "test_div");
        assert_eq!(
            s.problems[0].message,
            [
                "assert 2 == 3",
                " +  where 2 = div(4, 2)",
                "def test_div():"
            ]
        );
        assert_eq!(s.problems[1].outcome, Outcome::Errored);
        assert_eq!(
            s.problems[1].message[0],
            "failed on setup with \"FileNotFoundError: data.csv\""
        );
    }

    #[test]
    fn cargo_nextest() {
        let s = fixture("nextest.xml");
        // The flaky test passed on a retry: not a failure.
        assert_eq!(counts(&s), (4, 2, 1, 0, 1));
        let p = &s.problems[0];
        assert_eq!(
            (p.suite.as_str(), p.name.as_str()),
            ("mycrate", "tests::parses")
        );
        assert_eq!(
            p.message,
            [
                "thread 'tests::parses' panicked at src/lib.rs:40:9:",
                "assertion `left == right` failed",
                "  left: 1"
            ]
        );
    }

    #[test]
    fn jest() {
        let s = fixture("jest.xml");
        assert_eq!(counts(&s), (3, 2, 1, 0, 0));
        assert_eq!(s.problems[0].suite, "sum.test.js");
        assert_eq!(s.problems[0].name, "sum adds negatives");
        assert_eq!(
            s.problems[0].message[0],
            "Error: expect(received).toBe(expected) // Object.is equality"
        );
        assert_eq!(s.problems[0].message[1], "Expected: -3");
    }

    #[test]
    fn vitest() {
        let s = fixture("vitest.xml");
        assert_eq!(counts(&s), (3, 1, 1, 0, 1));
        assert_eq!(s.problems[0].name, "math > divides");
        assert_eq!(
            s.problems[0].message,
            [
                "expected 2 to be 3 // Object.is equality",
                "AssertionError: expected 2 to be 3 // Object.is equality",
                " ❯ src/math.test.ts:10:24"
            ]
        );
    }

    #[test]
    fn go_junit_report() {
        let s = fixture("go-junit-report.xml");
        assert_eq!(counts(&s), (3, 1, 1, 1, 0));
        assert_eq!(s.problems[0].suite, "example.com/calc");
        assert_eq!(
            s.problems[0].message,
            ["Failed", "    calc_test.go:14: Sub(3, 1) = 3, want 2"]
        );
        assert_eq!(s.problems[1].outcome, Outcome::Errored);
        assert_eq!(s.problems[1].suite, "example.com/broken");
    }

    #[test]
    fn surefire() {
        let s = fixture("surefire.xml");
        assert_eq!(counts(&s), (4, 1, 1, 1, 1));
        assert_eq!(s.problems[0].suite, "com.example.CalculatorTest");
        assert_eq!(s.problems[0].message[0], "expected: <2> but was: <3>");
        assert_eq!(
            s.problems[1].message[0],
            "/tmp/in.txt (No such file or directory)"
        );
    }

    #[test]
    fn broken_xml_is_an_error_and_nesting_without_suites_works() {
        assert!(parse(&b"<testsuite><testcase name='a'><failure></testsuite>"[..]).is_err());
        let s = parse(&b"<testcase classname='C' name='a'><error message='boom'/></testcase>"[..])
            .unwrap();
        assert_eq!(counts(&s), (1, 0, 0, 1, 0));
        assert_eq!(s.problems[0].suite, "C");
        assert_eq!(s.problems[0].message, ["boom"]);
    }
}
