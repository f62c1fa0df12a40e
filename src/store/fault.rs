//! A fault hook for tests: makes the connection of a running transition die between two of its
//! statements, to show that a transition is all-or-nothing.
//!
//! Transitions call `Tx::checkpoint` after each statement that writes. A test arms the plan
//! with `n`; the `n`-th checkpoint from then on fires once: on MySQL it kills the transaction's
//! connection from a second connection (`KILL <id>`), on SQLite it abandons the transaction.
//! Unarmed, a checkpoint is one atomic load; without the `testing` feature, which alone
//! compiles this module, it is nothing at all.

use std::sync::atomic::{AtomicI64, Ordering};

/// Counts checkpoints down to the one that fails.
#[derive(Debug)]
pub struct FaultPlan {
    remaining: AtomicI64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            remaining: AtomicI64::new(0),
        }
    }
}

impl FaultPlan {
    /// Makes the `n`-th checkpoint from now on fail (`n ≥ 1`); `0` disarms.
    pub fn arm(&self, n: u32) {
        self.remaining.store(i64::from(n), Ordering::SeqCst);
    }

    /// Whether the plan is still waiting for its checkpoint.
    pub fn is_armed(&self) -> bool {
        self.remaining.load(Ordering::SeqCst) > 0
    }

    pub(crate) fn should_fire(&self) -> bool {
        if self.remaining.load(Ordering::Relaxed) <= 0 {
            return false;
        }
        self.remaining.fetch_sub(1, Ordering::SeqCst) == 1
    }
}
