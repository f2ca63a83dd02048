//! The `conserver` binary: parse the command line and run it (see `conserver --help`).

use std::process::ExitCode;

fn main() -> ExitCode {
    conserver::logging::init();
    conserver::cli::run()
}
