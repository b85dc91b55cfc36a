//! Limits on what a provider may consume: CPU time and wall-clock time per call, memory per
//! instance, HTTP requests per call and per run, log lines per run, and the size of what
//! crosses the boundary. A breach ends the call with a [`LimitHit`] error naming the limit; it
//! never hangs.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How often the engine's epoch advances; the granularity of CPU accounting.
pub const TICK: Duration = Duration::from_millis(10);

/// The limits applied to one provider.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// CPU time one call may spend executing wasm.
    pub cpu_per_call: Duration,
    /// Wall-clock time one call may take, including the HTTP requests it makes.
    pub wall_per_call: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu_per_call: Duration::from_secs(2),
            wall_per_call: Duration::from_secs(180),
        }
    }
}

/// Which limit a call ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// It tried to grow memory past the cap (bytes).
    Memory(usize),
    /// It executed longer than its CPU budget.
    Cpu(Duration),
    /// It took longer than its wall-clock deadline.
    WallClock(Duration),
    /// It asked for more HTTP requests than its cap allows.
    Requests {
        /// The cap.
        cap: u32,
        /// Whether the cap is per call (else per run).
        per_call: bool,
    },
    /// Something it returned or sent is larger than the boundary allows.
    Oversize {
        /// What, e.g. `sandbox name` or `request body`.
        what: &'static str,
        /// How large it was.
        size: usize,
        /// The cap.
        cap: usize,
        /// The unit of both: `bytes`, `entries`.
        unit: &'static str,
    },
}

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitHit::Memory(b) => write!(f, "exceeded its memory limit of {} MiB", b >> 20),
            LimitHit::Cpu(d) => write!(
                f,
                "exceeded its CPU budget of {}s per call",
                d.as_secs_f32()
            ),
            LimitHit::WallClock(d) => {
                write!(
                    f,
                    "did not finish within its deadline of {}s per call",
                    d.as_secs_f32()
                )
            }
            LimitHit::Requests {
                cap,
                per_call: true,
            } => write!(
                f,
                "exceeded its cap of {cap} HTTP requests per call (requests-per-call)"
            ),
            LimitHit::Requests {
                cap,
                per_call: false,
            } => write!(
                f,
                "exceeded its cap of {cap} HTTP requests per run (requests-per-run)"
            ),
            LimitHit::Oversize {
                what,
                size,
                cap,
                unit,
            } => write!(
                f,
                "its {what} of {size} {unit} is over the cap of {cap} {unit}"
            ),
        }
    }
}

impl std::error::Error for LimitHit {}

/// The budget of the call in progress.
#[derive(Debug, Clone, Copy)]
pub struct CallBudget {
    /// When the call must be over.
    pub deadline: Instant,
    /// Epoch ticks of wasm execution left.
    pub ticks_left: u64,
}

impl CallBudget {
    /// A fresh budget for one call under `limits`.
    pub fn start(limits: &Limits) -> CallBudget {
        CallBudget {
            deadline: Instant::now() + limits.wall_per_call,
            ticks_left: (limits.cpu_per_call.as_millis() / TICK.as_millis()).max(1) as u64,
        }
    }
}

/// Most log lines one provider may emit in one run (one cbx invocation); the rest are dropped
/// with one notice.
pub const LOG_LINES_PER_RUN: u32 = 5000;

/// What one provider has used of its per-run budgets, shared by every instance of it in this
/// cbx invocation (a faulted instance's successor does not start afresh).
#[derive(Debug, Default)]
pub struct RunBudget {
    requests: AtomicU32,
    log_lines: AtomicU32,
}

impl RunBudget {
    /// Counts one HTTP request; the number of requests so far, this one included.
    pub fn count_request(&self) -> u32 {
        self.requests
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }

    /// Counts one log line; whether it may be shown (`Some(true)` for the first line over the
    /// budget, which is the moment to say the rest are dropped).
    pub fn count_log_line(&self) -> LogVerdict {
        let n = self
            .log_lines
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        match n.cmp(&(LOG_LINES_PER_RUN + 1)) {
            std::cmp::Ordering::Less => LogVerdict::Show,
            std::cmp::Ordering::Equal => LogVerdict::FirstDropped,
            std::cmp::Ordering::Greater => LogVerdict::Drop,
        }
    }

    /// Whether provider `provider` may emit one more log line in this run; the first line over
    /// the budget is replaced by one notice, the rest are dropped silently.
    pub fn admit_log_line(&self, provider: &str) -> bool {
        match self.count_log_line() {
            LogVerdict::Show => true,
            LogVerdict::FirstDropped => {
                tracing::warn!(provider = %provider, "provider logged more than {LOG_LINES_PER_RUN} lines in this run; dropping the rest");
                false
            }
            LogVerdict::Drop => false,
        }
    }
}

/// Whether a provider's log line fits its per-run budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVerdict {
    /// Within the budget.
    Show,
    /// The first line over it: drop it and say so once.
    FirstDropped,
    /// Over it: drop it silently.
    Drop,
}

/// Enforces the memory cap and remembers a breach so the error can name it.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    /// Set when a growth past the cap was refused.
    pub hit: Option<LimitHit>,
}

impl MemoryLimiter {
    /// A limiter with `cap` bytes per memory.
    pub fn new(cap: usize) -> MemoryLimiter {
        MemoryLimiter { cap, hit: None }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            let hit = LimitHit::Memory(self.cap);
            self.hit = Some(hit);
            return Err(wasmtime::Error::new(hit));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_budget_says_once_that_it_drops() {
        let budget = RunBudget::default();
        for _ in 0..LOG_LINES_PER_RUN {
            assert_eq!(budget.count_log_line(), LogVerdict::Show);
        }
        assert_eq!(budget.count_log_line(), LogVerdict::FirstDropped);
        assert_eq!(budget.count_log_line(), LogVerdict::Drop);
    }

    #[test]
    fn limit_hits_name_the_cap() {
        assert_eq!(
            LimitHit::Requests {
                cap: 500,
                per_call: true
            }
            .to_string(),
            "exceeded its cap of 500 HTTP requests per call (requests-per-call)"
        );
        assert_eq!(
            LimitHit::Oversize {
                what: "sandbox name",
                size: 5000,
                cap: 256,
                unit: "bytes"
            }
            .to_string(),
            "its sandbox name of 5000 bytes is over the cap of 256 bytes"
        );
    }
}
