//! `youmi-agent` for the end-to-end tests: the same one-line `main` as the real
//! binary, built inside this package so that tests can find it with
//! `CARGO_BIN_EXE_e2e-youmi-agent`.

fn main() -> std::process::ExitCode {
    youmi_agent::cli::main()
}
