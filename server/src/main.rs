//! The `youmi-server` binary; everything lives in the library.

use std::process::ExitCode;

/// jemalloc, for its per-thread caches: under load the server's threads
/// allocate and free per frame and per task, and glibc's malloc, capped at two
/// arenas for idle memory ([`youmi_server::tune_allocator`]), made them wait
/// on arena locks. `docs/benchmarks.md` has the figures.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    youmi_server::cli::main()
}
