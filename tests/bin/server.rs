//! `youmi-server` for the end-to-end tests: the same one-line `main` as the real
//! binary, built inside this package so that tests can find it with
//! `CARGO_BIN_EXE_e2e-youmi-server` and kill it with SIGKILL.

fn main() -> std::process::ExitCode {
    youmi_server::cli::main()
}
