//! `scim-bridge healthcheck [--ready]`: a probe for container images without curl (Docker's
//! `HEALTHCHECK`, a Kubernetes exec probe): GET the local server's /healthz or /readyz.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::Settings;

#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// Ask /readyz (the database and Coder can be used) instead of /healthz (the process answers).
    #[arg(long)]
    pub ready: bool,
    /// The server's address; by default SCIM_BRIDGE_OPS_LISTEN when set (the probes are served
    /// only there then), else SCIM_BRIDGE_LISTEN; a wildcard address is asked on loopback.
    #[arg(long, value_name = "HOST:PORT")]
    pub address: Option<SocketAddr>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// True when the server answered 200; any other answer, or none, is printed and is false.
pub async fn run(settings: &Settings, args: HealthcheckArgs) -> anyhow::Result<bool> {
    let address = args
        .address
        .unwrap_or_else(|| loopback_for(settings.listen));
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let url = format!("http://{address}{path}");
    let http = reqwest::Client::builder()
        .timeout(args.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    match http.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("{url}: {}", response.status());
            Ok(true)
        }
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            println!("{url}: {status} {}", body.trim());
            Ok(false)
        }
        Err(e) => {
            println!("{url}: no answer: {e}");
            Ok(false)
        }
    }
}

/// A server listening on every address (`0.0.0.0`, `[::]`) is asked on loopback.
fn loopback_for(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::loopback_for;

    #[test]
    fn a_wildcard_listen_address_is_asked_on_loopback() {
        for (listen, asked) in [
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("[::]:9000", "[::1]:9000"),
            ("10.1.2.3:8080", "10.1.2.3:8080"),
        ] {
            assert_eq!(loopback_for(listen.parse().unwrap()).to_string(), asked);
        }
    }
}
