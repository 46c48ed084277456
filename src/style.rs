//! Terminal styles of the readable outputs (`replay --output report`,
//! `watch`, `replay --server`'s alert lines): the one severity → style
//! mapping, through `anstyle`.
//!
//! Text is formatted with its styles always; whether the escape codes
//! reach the reader is decided once, by the stream it is written to: an
//! [`anstream::AutoStream`] passes them to a terminal and strips them when
//! the output is a file or a pipe, when `NO_COLOR` is set or `TERM=dumb`
//! (`CLICOLOR_FORCE` keeps them). So the formatting functions stay pure and
//! testable, and no caller decides "colour or not" on its own.

use anstyle::{AnsiColor, Style};

use crate::category::Severity;

/// A heading (a call's first line, "summary").
pub const HEADING: Style = Style::new().bold();

/// How an alert of `severity` is shown: critical bold red, warning
/// yellow, info dimmed.
pub const fn severity(severity: Severity) -> Style {
    match severity {
        Severity::Critical => Style::new()
            .bold()
            .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red))),
        Severity::Warning => Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow))),
        Severity::Info => Style::new().dimmed(),
    }
}

/// `text` in `style`, reset after it.
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_severity_is_styled_and_stripping_leaves_the_text() {
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            let painted = paint(severity(s), s.as_str());
            assert!(painted.starts_with('\x1b'), "{s}: {painted:?}");
            assert_eq!(
                anstream::adapter::strip_str(&painted).to_string(),
                s.as_str()
            );
        }
    }
}
