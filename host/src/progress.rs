//! Progress on stderr: a spinner on a terminal, plain lines otherwise; and the single lines
//! ([`note`], [`report`]) that the library prints instead of calling `eprintln!` itself.
//!
//! Every message is one line made [`inert`]: progress quotes sandbox ids, states and provider
//! errors, and none of them may steer the terminal or start a line of its own.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::terminal::inert;

/// Reports what a long step is doing. Results go to stdout; progress only ever to stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    started: Instant,
    last: String,
}

impl Progress {
    /// Starts reporting `message`. `quiet` suppresses everything but warnings.
    pub fn start(message: impl Into<String>, quiet: bool) -> Progress {
        let message = inert(&message.into()).into_owned();
        let bar = if !quiet && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar.set_message(message.clone());
            Some(bar)
        } else {
            if !quiet {
                eprintln!("{message}");
            }
            None
        };
        Progress {
            bar,
            quiet,
            started: Instant::now(),
            last: message,
        }
    }

    /// Updates the message; on a non-terminal, prints it only when it changed.
    pub fn set(&mut self, message: impl Into<String>) {
        let message = inert(&message.into()).into_owned();
        if message == self.last {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_message(message.clone()),
            None if !self.quiet => eprintln!("{message}"),
            None => {}
        }
        self.last = message;
    }

    /// Updates the message of a wait that only counts on (an attempt number, a poll): the
    /// spinner shows it; a non-terminal gets nothing, so a long wait stays one line there and
    /// its end ([`Progress::finish`] or an error) says how it went.
    pub fn tick(&mut self, message: impl Into<String>) {
        if let Some(bar) = &self.bar {
            let message = inert(&message.into()).into_owned();
            bar.set_message(message.clone());
            self.last = message;
        }
    }

    /// Prints a line above the spinner (or plainly), even when quiet.
    pub fn warn(&self, message: &str) {
        let message = inert(message);
        let message = message.as_ref();
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    /// Time since the step started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the step, leaving `message` as its final line (unless quiet).
    pub fn finish(self, message: impl Into<String>) {
        let message = inert(&message.into()).into_owned();
        match &self.bar {
            Some(bar) => {
                bar.finish_and_clear();
                eprintln!("{message}");
            }
            None if !self.quiet => eprintln!("{message}"),
            None => {}
        }
    }

    /// Ends the step without a final line.
    pub fn clear(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A line on stderr unless `quiet`: a step the user may want to follow (a retry, a summary).
pub fn note(quiet: bool, message: &str) {
    if !quiet {
        eprintln!("{}", inert(message));
    }
}

/// A line on stderr even when quiet: something cbx did on its own (deleting an expired lease),
/// or a warning.
pub fn report(message: &str) {
    eprintln!("{}", inert(message));
}

/// Formats a duration for people: `850ms`, `4.2s`, `3m05s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
