use std::process::ExitCode;

fn main() -> ExitCode {
    azi3_status_jobs::cli::run()
}
