//! Running a test case on the CPU backend and then in the interpreter. The backend is a
//! process-wide setting (and `compile_count` a process-wide counter), so the tests of a file
//! that uses this take turns.

use std::sync::Mutex;
use tenjit::Backend;

/// The turn of the test holding the backend.
pub static TURN: Mutex<()> = Mutex::new(());

/// Runs `case` on the CPU backend, then in the interpreter, and leaves the CPU backend set.
pub fn on_both(case: impl Fn(Backend)) {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    for backend in [Backend::Cpu, Backend::Interp] {
        tenjit::set_backend(backend);
        case(backend);
    }
    tenjit::set_backend(Backend::Cpu);
}
