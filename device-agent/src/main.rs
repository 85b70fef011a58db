fn main() -> std::process::ExitCode {
    youmi_agent::cli::main()
}
