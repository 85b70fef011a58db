//! `youmi-server demo`: a server on a temporary database with simulated phones.

/// Runs the demo.
pub async fn run(args: crate::config::DemoArgs) -> anyhow::Result<()> {
    let _ = args;
    Err(anyhow::anyhow!("the demo is not built yet"))
}
