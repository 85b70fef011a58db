//! `youmi-phone-sim`: runs one simulated phone until Ctrl-C, for `adb connect` by hand or
//! from scripts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use youmi_phone_sim::{Labels, SimConfig, Simulator};

/// A fake Android phone with a WeCom-like app, reachable with `adb connect 127.0.0.1:PORT`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TCP port to listen on (0 picks a free one and prints it).
    #[arg(long, env = "YOUMI_SIM_PORT", default_value_t = 5555)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "YOUMI_SIM_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Append every sent message, post and friend request as a JSON line to this file.
    #[arg(long, env = "YOUMI_SIM_RECORD")]
    record: Option<PathBuf>,
    /// Simulate a phone without the ADBKeyBoard IME.
    #[arg(long, env = "YOUMI_SIM_NO_IME")]
    no_ime: bool,
    /// Show every label (tabs, icon buttons) as visible text, not as a
    /// content description: a layout variant flows must survive.
    #[arg(long, env = "YOUMI_SIM_LABELS_AS_TEXT")]
    labels_as_text: bool,
    /// Put this many chats with other customers above the scripted ones, so
    /// that those are below the fold of the chat list: a layout variant
    /// flows must survive by scrolling.
    #[arg(long, env = "YOUMI_SIM_FILLER_CHATS", default_value_t = 0)]
    filler_chats: u32,
    /// The WeCom versionName the phone reports.
    #[arg(long, env = "YOUMI_SIM_WECOM_VERSION", default_value = "4.1.30")]
    wecom_version: String,
    /// Serial number reported by `getprop ro.serialno`.
    #[arg(long, env = "YOUMI_SIM_SERIAL", default_value = "YOUMISIM0001")]
    serial: String,
    /// The enterprise's customer tags the tag picker lists, comma-separated.
    #[arg(
        long,
        env = "YOUMI_SIM_TAGS",
        value_delimiter = ',',
        default_value = "重要客户,新客户,VIP"
    )]
    tags: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = SimConfig {
        listen: SocketAddr::new(args.host, args.port),
        wecom_version: args.wecom_version,
        ime_installed: !args.no_ime,
        record: args.record,
        faults: Vec::new(),
        serial: args.serial,
        tags: args.tags,
        labels: if args.labels_as_text {
            Labels::Text
        } else {
            Labels::AsDrawn
        },
        filler_chats: args.filler_chats,
    };
    let sim = Simulator::start(config)
        .await
        .context("starting the phone simulator")?;
    println!("listening on {}", sim.addr());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    sim.shutdown().await;
    Ok(())
}
