//! The TCP front of the fake: forwards connections to the actix server and, for an injected
//! `drop` fault, closes the connection without any HTTP answer (which actix cannot do).
//!
//! It reads each HTTP/1.1 request head on a connection to find its path, then forwards the head
//! and a `Content-Length` body. A chunked request body switches the rest of the connection to a
//! plain pipe (reqwest sends JSON with a length, so faults still apply to every request).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

use crate::faults::{self, FaultKind};
use crate::server::Shared;
use crate::state::{CallLogEntry, lock};

/// Control requests are never faulted.
const CONTROL_PREFIX: &str = "/__fake/";

/// Longest request head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Accepts connections on `listener` for as long as the task lives.
pub(crate) async fn run(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(upstream).await {
                // Nagle's algorithm against delayed ACKs would add ~40 ms to multi-segment
                // answers.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                serve(client, server, &shared).await;
            }
        });
    }
}

async fn serve(client: TcpStream, server: TcpStream, shared: &Shared) {
    let (mut from_client, to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let mut to_client = to_client;
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    });
    let mut buffer = Vec::new();
    loop {
        let Some(head_end) = read_head(&mut from_client, &mut buffer).await else {
            break;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let (method, path) = request_line(&head);
        let dropped = !path.starts_with(CONTROL_PREFIX) && {
            let mut world = lock(&shared.world);
            let fault = match faults::outage(&mut world.outage) {
                Some(FaultKind::Drop) => Some(FaultKind::Drop),
                // Answered by the server.
                Some(_) => None,
                None => faults::take(&mut world.faults, &method, &path, |k| {
                    matches!(k, FaultKind::Drop)
                }),
            };
            if fault.is_some() {
                let route = match crate::api::find(&method, &path) {
                    crate::api::Routing::Found(m) => m.route.path.to_owned(),
                    _ => path.clone(),
                };
                world.calls.push(CallLogEntry {
                    method: method.clone(),
                    route,
                    status: 0,
                });
            }
            fault.is_some()
        };
        if dropped {
            // Closing both directions without a byte of answer: the client sees the
            // connection end mid-request.
            answers.abort();
            return;
        }
        if header(&head, "transfer-encoding").is_some() {
            if to_server.write_all(&buffer).await.is_err() {
                break;
            }
            let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
            break;
        }
        let length: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if !forward(
            &mut from_client,
            &mut to_server,
            &mut buffer,
            head_end,
            length,
        )
        .await
        {
            break;
        }
    }
    let _ = to_server.shutdown().await;
    let _ = answers.await;
}

/// Reads until `buffer` holds a whole request head; returns its length (with the blank line).
async fn read_head(from: &mut (impl AsyncRead + Unpin), buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end + 4);
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return None;
        }
        let mut chunk = [0u8; 8192];
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends the head and `length` body bytes upstream, keeping any bytes of the next request in
/// `buffer`. Large bodies stream through without being held whole.
async fn forward(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut OwnedWriteHalf,
    buffer: &mut Vec<u8>,
    head_end: usize,
    length: usize,
) -> bool {
    let mut remaining = head_end + length;
    loop {
        let take = remaining.min(buffer.len());
        if take > 0 {
            if to.write_all(&buffer[..take]).await.is_err() {
                return false;
            }
            buffer.drain(..take);
            remaining -= take;
        }
        if remaining == 0 {
            return true;
        }
        let mut chunk = [0u8; 65536];
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn request_line(head: &str) -> (String, String) {
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    (method, path)
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_heads() {
        let head = "PATCH /api/v2/groups/x?y=1 HTTP/1.1\r\nContent-Length: 12\r\nHost: h\r\n\r\n";
        assert_eq!(
            request_line(head),
            ("PATCH".to_owned(), "/api/v2/groups/x".to_owned())
        );
        assert_eq!(header(head, "content-length"), Some("12"));
        assert_eq!(header(head, "transfer-encoding"), None);
    }
}
