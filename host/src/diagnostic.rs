//! Errors that point at the exact line of a TOML file to change.

use std::fmt;
use std::ops::Range;

/// A problem at a place in a TOML file, rendered like a compiler diagnostic.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The file, as shown to the user.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The text of that line.
    pub source_line: String,
    /// How many characters to underline.
    pub width: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic for the byte range `span` of `source`.
    pub fn new(file: &str, source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let start = span.start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let width = source[start..end].chars().count().max(1);
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            source_line: source[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
            width,
            message: message.into(),
        }
    }

    /// A diagnostic for a TOML syntax or type error reported by the `toml` crate.
    pub fn from_toml(file: &str, source: &str, err: &toml::de::Error) -> Self {
        let span = err.span().unwrap_or(0..0);
        Diagnostic::new(file, source, span, err.message().trim())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gutter = self.line.to_string().len();
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        write!(
            f,
            "{:gutter$} | {}{}",
            "",
            " ".repeat(self.column - 1),
            "^".repeat(self.width)
        )
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_the_span() {
        let src = "a = 1\nendpoint = \"apii\"\n";
        let start = src.find("\"apii\"").unwrap();
        let d = Diagnostic::new("m.toml", src, start..start + 6, "unknown endpoint");
        assert_eq!((d.line, d.column, d.width), (2, 12, 6));
        let text = d.to_string();
        assert!(text.starts_with("m.toml:2:12: unknown endpoint"), "{text}");
        assert!(text.contains("2 | endpoint = \"apii\""), "{text}");
        assert!(text.ends_with("  |            ^^^^^^"), "{text}");
    }
}
