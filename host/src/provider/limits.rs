//! Limits on what a provider may consume: CPU time and wall-clock time per call, memory per
//! instance. A breach ends the call with a [`LimitHit`] error naming the limit; it never hangs.

use std::fmt;
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
