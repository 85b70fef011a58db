//! The `youmi-server` binary; everything lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    youmi_server::cli::main()
}
