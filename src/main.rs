//! `azi3-status-jobs`: the command line (`serve`, `replay`, `migrate`, `seed-template`, `rules`);
//! everything it runs lives in the library.

use std::process::ExitCode;

/// mimalloc, not the system allocator: while 10,000 windows closed together glibc's `malloc` and
/// `free` took about a sixth of the service's CPU, and with mimalloc the service took in 5.6 %
/// more events per second over HTTP into MariaDB (alternating runs; performance.md,
/// 2026-12-05 evening).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    azi3_status_jobs::cli::run()
}
