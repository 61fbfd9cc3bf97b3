//! A development server: the SCIM service over a fresh temporary SQLite store, with one bearer
//! token. For trying the API by hand and running scim2-tester without the full binary.
//!
//! `cargo run -p server --example dev_server -- [PORT]` prints the SCIM base URL, then the
//! token as the last line, and serves until interrupted. Rate limiting is off.

use server::{ServerConfig, ServerDeps, bind};
use std::net::SocketAddr;
use store::{Store, StoreOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(0);
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("dev.db").display());
    let store = Store::connect(&url, StoreOptions::default()).await?;
    let token = store
        .tokens()
        .create("dev", None, store::Scopes::ALL)
        .await?;
    let config = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        rate_limit_per_second: 0,
        workers: 2,
        ..ServerConfig::default()
    };
    let server = bind(config, ServerDeps::new(store)).await?;
    println!("http://{}/scim/v2", server.local_addr());
    println!("{token}");
    let handle = server.handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            handle.stop(true).await;
        }
    });
    server.run().await?;
    Ok(())
}
