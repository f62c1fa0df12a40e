//! `azi3-status-jobs`: the command line (`serve`, `replay`, `migrate`, `seed-template`, `rules`);
//! everything it runs lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    azi3_status_jobs::cli::run()
}
