//! The host side of `cbx:provider/log`: a provider's log lines, capped, truncated, redacted
//! and made inert (one line each, no control characters), into the host's log tagged with the
//! provider's name, within its per-run budget
//! ([`RunBudget::admit_log_line`](crate::provider::limits::RunBudget::admit_log_line), shared
//! with its WASI stdout and stderr).

use crate::provider::bindings::cbx::provider::log as wit_log;
use crate::provider::store::HostState;
use crate::terminal::inert;

/// Most log lines one call may emit; the rest are dropped with a note.
const MAX_LOG_LINES_PER_CALL: u32 = 1000;
/// Longest log line kept, in bytes.
const MAX_LOG_LINE: usize = 4096;

impl wit_log::Host for HostState {
    async fn log(&mut self, level: wit_log::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            if self.log_lines == MAX_LOG_LINES_PER_CALL + 1 {
                tracing::warn!(provider = %self.provider, "provider logged more than {MAX_LOG_LINES_PER_CALL} lines in one call; dropping the rest");
            }
            return;
        }
        if !self.run.admit_log_line(&self.provider) {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let message = self.redactor.redact(&message);
        let message = inert(&message);
        let p = &self.provider;
        match level {
            wit_log::Level::Trace => tracing::trace!(provider = %p, "{message}"),
            wit_log::Level::Debug => tracing::debug!(provider = %p, "{message}"),
            wit_log::Level::Info => tracing::info!(provider = %p, "{message}"),
            wit_log::Level::Warn => tracing::warn!(provider = %p, "{message}"),
            wit_log::Level::Error => tracing::error!(provider = %p, "{message}"),
        }
    }
}
