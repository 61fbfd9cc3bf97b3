//! A TLS listener on 127.0.0.1 in front of a plain TCP server, with a private CA made at run
//! time: how the suites prove that a client trusts exactly the CA it is given.
//!
//! Shared by test binaries of several crates (`#[path]`-included), so it depends only on tokio,
//! rcgen and tokio-rustls.

// Each including binary uses the part it needs (HTTPS or PostgreSQL's handshake).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`.
pub struct TestPki {
    /// The CA certificate in PEM: what a client must be given to trust the server.
    pub ca_pem: String,
    acceptor: TlsAcceptor,
}

impl TestPki {
    /// A fresh CA (never written anywhere but where a test puts `ca_pem`).
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "scim-bridge test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let chain: Vec<CertificateDer<'static>> = vec![server.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        TestPki {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// How a client asks for TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// TLS from the first byte (HTTPS).
    Direct,
    /// PostgreSQL's SSLRequest first, answered `S`; the backend then sees a plain session.
    PostgresSslRequest,
}

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The listener; it stops when dropped.
pub struct TlsFront {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// TLS handshakes that completed (a client that refused the certificate adds none).
    pub handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Terminates TLS on 127.0.0.1:0 and relays each connection to `backend` in plain TCP.
    pub async fn start(pki: &TestPki, backend: SocketAddr, handshake: Handshake) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let acceptor = pki.acceptor.clone();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let _ = relay(socket, acceptor, backend, handshake, &counted).await;
                });
            }
        });
        TlsFront {
            addr,
            handshakes,
            task,
        }
    }

    /// Completed TLS handshakes so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut socket: TcpStream,
    acceptor: TlsAcceptor,
    backend: SocketAddr,
    handshake: Handshake,
    handshakes: &AtomicUsize,
) -> std::io::Result<()> {
    if handshake == Handshake::PostgresSslRequest {
        let mut request = [0u8; 8];
        socket.read_exact(&mut request).await?;
        if request != SSL_REQUEST {
            // A client that did not ask for TLS gets none (and no session).
            return Ok(());
        }
        socket.write_all(b"S").await?;
    }
    let mut tls = acceptor.accept(socket).await?;
    handshakes.fetch_add(1, Ordering::SeqCst);
    let mut plain = TcpStream::connect(backend).await?;
    tokio::io::copy_bidirectional(&mut tls, &mut plain).await?;
    Ok(())
}
