//! A progress bar on stderr, drawn only when stderr is a terminal (never in pipes, logs or CI).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the bar is redrawn at most.
const REDRAW: Duration = Duration::from_millis(80);
/// Width of the bar in characters.
const WIDTH: usize = 30;

/// A bar counting `done` out of `total` items.
#[derive(Debug)]
pub(crate) struct Progress {
    label: String,
    total: usize,
    shown: bool,
    drawn_at: Option<Instant>,
}

impl Progress {
    /// A bar for `total` items, labelled `label`; inert unless stderr is a terminal.
    pub(crate) fn new(label: impl Into<String>, total: usize) -> Self {
        Self { label: label.into(), total, shown: std::io::stderr().is_terminal(), drawn_at: None }
    }

    /// Shows that `done` items are through.
    pub(crate) fn set(&mut self, done: usize) {
        if !self.shown || self.drawn_at.is_some_and(|t| t.elapsed() < REDRAW && done < self.total) {
            return;
        }
        self.drawn_at = Some(Instant::now());
        let filled = (done * WIDTH).checked_div(self.total).unwrap_or(WIDTH).min(WIDTH);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{}{}] {done}/{} rows",
            self.label,
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.total
        );
        let _ = err.flush();
    }

    /// Says what happens after the last item (e.g. the node committing), on the same line.
    pub(crate) fn then(&mut self, what: &str) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), " — {what}");
        }
    }

    /// Ends the bar's line.
    pub(crate) fn finish(&mut self) {
        if self.shown && self.drawn_at.is_some() {
            let _ = writeln!(std::io::stderr().lock());
            self.drawn_at = None;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
