//! `coder-fake --listen 127.0.0.1:PORT --token T [--premium] [--latency-ms N]`: runs the fake until Ctrl-C and
//! prints its URL on the first line of standard output.

use std::net::SocketAddr;

use clap::Parser;
use coder_fake::{CoderFake, DEFAULT_RATE_LIMIT_PER_MINUTE, FakeOptions};

/// An in-memory fake of the Coder REST API, for tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (loopback only is advised: the control API has no auth).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Session token of the owner `admin`; random when missing.
    #[arg(long, env = "CODER_FAKE_TOKEN")]
    token: Option<String>,
    /// License Premium features (groups, IdP sync).
    #[arg(long)]
    premium: bool,
    /// Requests per minute per (user, path); 0 = unlimited.
    #[arg(long, default_value_t = DEFAULT_RATE_LIMIT_PER_MINUTE)]
    rate_limit: u32,
    /// Milliseconds added to every Coder API request (a real Coder answers in tens of ms).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let fake = CoderFake::start(FakeOptions {
        premium: args.premium,
        owner_token: args.token,
        rate_limit_per_minute: Some(args.rate_limit).filter(|n| *n > 0),
        listen: args.listen,
        latency: std::time::Duration::from_millis(args.latency_ms),
        ..FakeOptions::default()
    })
    .await?;
    println!("{}", fake.base_url());
    eprintln!("owner token: {}", fake.owner_token());
    tokio::signal::ctrl_c().await?;
    fake.stop().await;
    Ok(())
}
