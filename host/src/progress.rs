//! Progress on stderr: a spinner on a terminal, plain lines otherwise; and the single lines
//! ([`note`], [`report`]) that the library prints instead of calling `eprintln!` itself.
//!
//! Every message is one line made [`inert`]: progress quotes sandbox ids, states and provider
//! errors, and none of them may steer the terminal or start a line of its own. Inside
//! [`led`] (each shard of `cbx shard`) every line starts with the shard's `[2/4] `.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::terminal::inert;

tokio::task_local! {
    /// What every progress line of the current step starts with (a shard's `[2/4] `).
    static LEAD: String;
}

/// Runs `step` with every progress line it prints led by `lead`, so that the lines of steps
/// running side by side (the shards of `cbx shard`) say whose they are.
pub async fn led<F: std::future::Future>(lead: String, step: F) -> F::Output {
    LEAD.scope(lead, step).await
}

/// `message` as one inert line, led by the current step's lead if it has one.
fn line(message: &str) -> String {
    let message = inert(message);
    LEAD.try_with(|lead| format!("{lead}{message}"))
        .unwrap_or_else(|_| message.into_owned())
}

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
        let message = line(&message.into());
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
        let message = line(&message.into());
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
            let message = line(&message.into());
            bar.set_message(message.clone());
            self.last = message;
        }
    }

    /// Prints a line above the spinner (or plainly), even when quiet.
    pub fn warn(&self, message: &str) {
        let message = line(message);
        match &self.bar {
            Some(bar) => bar.println(&message),
            None => eprintln!("{message}"),
        }
    }

    /// Time since the step started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the step, leaving `message` as its final line (unless quiet).
    pub fn finish(self, message: impl Into<String>) {
        let message = line(&message.into());
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
        eprintln!("{}", line(message));
    }
}

/// A line on stderr even when quiet: something cbx did on its own (deleting an expired lease),
/// or a warning.
pub fn report(message: &str) {
    eprintln!("{}", line(message));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_inside_a_led_step_start_with_its_lead_and_stay_inert() {
        assert_eq!(line("plain"), "plain");
        let inside = led("[2/4] ".into(), async { line("syncing\x1b[2J") }).await;
        assert_eq!(inside, "[2/4] syncing\\x1b[2J");
        let both = futures_util::future::join(
            led("[1/2] ".into(), async { line("a") }),
            led("[2/2] ".into(), async { line("b") }),
        )
        .await;
        assert_eq!(both, ("[1/2] a".to_string(), "[2/2] b".to_string()));
        assert_eq!(line("after"), "after");
    }
}
