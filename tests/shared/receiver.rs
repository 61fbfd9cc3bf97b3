//! A webhook receiver on 127.0.0.1 for the audit stream's tests: a real HTTP/1.1 listener that
//! keeps every request it gets and answers each with the status the test sets (a `Location`
//! with 3xx). Written on tokio alone so any test binary can `#[path]`-include it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    #[allow(dead_code, reason = "only suites that test redirects set it")]
    location: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on 127.0.0.1:0, answering 200 until told otherwise.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let location = Arc::new(Mutex::new(None));
        let (kept, answer, redirect) = (requests.clone(), status.clone(), location.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (kept, answer, redirect) = (kept.clone(), answer.clone(), redirect.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, kept, answer, redirect).await;
                });
            }
        });
        Receiver {
            addr,
            requests,
            status,
            location,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer every further request with `status`.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Answer every further request with a redirect to `location`.
    #[allow(dead_code, reason = "not every suite tests redirects")]
    pub fn redirect(&self, status: u16, location: &str) {
        *self.location.lock().expect("location") = Some(location.to_string());
        self.answer(status);
    }

    /// Every request so far, in the order received.
    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().expect("requests").clone()
    }

    /// The requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: tokio::net::TcpStream,
    kept: Arc<Mutex<Vec<Received>>>,
    answer: Arc<AtomicU16>,
    redirect: Arc<Mutex<Option<String>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(socket);
    // Requests on one connection, one after another (reqwest keeps connections alive).
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        let status = answer.load(Ordering::SeqCst);
        kept.lock().expect("requests").push(Received {
            headers,
            body,
            status,
        });
        let location = match (status, redirect.lock().expect("location").clone()) {
            (300..=399, Some(to)) => format!("location: {to}\r\n"),
            _ => String::new(),
        };
        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{location}\r\n");
        reader.get_mut().write_all(reply.as_bytes()).await?;
    }
}
