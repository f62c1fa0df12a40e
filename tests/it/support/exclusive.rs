//! The machine to one test: the tests of this binary run in parallel threads of one process,
//! and a test that measures wall time (`service::scale`) must not share the two cores with
//! them.
//!
//! What loads the machine takes a [`Shared`] turn and holds it while it lives: a service
//! process ([`super::service::Service`], [`super::service::run_binary`]), a service in this
//! process ([`super::app::TestApp`]), a store test's database, a queue, a browser. A test that
//! measures takes [`alone`]: it waits until no turn is held, and until it ends a new turn
//! waits. Turns taken on the thread of the test that runs alone (its own service) are free.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;

struct State {
    /// Turns held.
    shared: usize,
    /// The thread of the test that runs alone, if one does.
    alone: Option<ThreadId>,
}

static STATE: Mutex<State> = Mutex::new(State {
    shared: 0,
    alone: None,
});
static CHANGED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait(state: MutexGuard<'static, State>) -> MutexGuard<'static, State> {
    CHANGED.wait(state).unwrap_or_else(PoisonError::into_inner)
}

/// A turn of work that may run next to other work, given back when dropped.
#[must_use = "the turn ends when it is dropped"]
pub struct Shared {
    counted: bool,
}

/// Takes a turn: at once, unless a test runs alone (then when it ends).
pub fn shared() -> Shared {
    let me = std::thread::current().id();
    let mut state = state();
    loop {
        match state.alone {
            Some(owner) if owner == me => return Shared { counted: false },
            Some(_) => state = wait(state),
            None => {
                state.shared += 1;
                return Shared { counted: true };
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.counted {
            let mut state = state();
            state.shared -= 1;
            if state.shared == 0 {
                CHANGED.notify_all();
            }
        }
    }
}

/// The machine to the calling test, until dropped.
#[must_use = "the test runs alone until it is dropped"]
pub struct Alone(());

/// Waits until no turn is held and no other test runs alone, then keeps new turns waiting
/// until the value is dropped. Blocks the calling thread: call it from the test's own thread.
pub fn alone() -> Alone {
    let me = std::thread::current().id();
    let mut state = state();
    while state.shared > 0 || state.alone.is_some() {
        state = wait(state);
    }
    state.alone = Some(me);
    Alone(())
}

impl Drop for Alone {
    fn drop(&mut self) {
        state().alone = None;
        CHANGED.notify_all();
    }
}
