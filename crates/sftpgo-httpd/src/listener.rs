//! The API's listener: plain TCP, or TLS (rustls, aws-lc-rs provider) with handshakes run
//! concurrently so a slow client never holds up the others.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

use crate::HttpdError;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client side of a connection, as handlers and middleware see it
/// (`ConnectInfo<ClientInfo>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Loads a PEM certificate chain and private key into a rustls server config (HTTP/1.1).
pub fn tls_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, HttpdError> {
    let tls_err = |path: &Path, message: String| HttpdError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| tls_err(cert_file, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert_file, "no PEM certificate found".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|e| tls_err(key_file, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls_err(
                key_file,
                format!("certificate and key do not work together: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// A bound API listener, plain or TLS.
pub struct ApiListener {
    local: SocketAddr,
    inner: Inner,
}

enum Inner {
    Plain(TcpListener),
    Tls(mpsc::Receiver<Accepted>),
}

impl ApiListener {
    /// Serves plain HTTP on `listener`, or HTTPS when `tls` is given.
    pub fn new(listener: TcpListener, tls: Option<Arc<ServerConfig>>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let inner = match tls {
            None => Inner::Plain(listener),
            Some(config) => {
                let (tx, rx) = mpsc::channel(64);
                tokio::spawn(accept_tls(listener, TlsAcceptor::from(config), tx));
                Inner::Tls(rx)
            }
        };
        Ok(Self { local, inner })
    }
}

/// Accepts TCP connections and runs each handshake in its own task until the
/// [`ApiListener`] is dropped.
async fn accept_tls(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<Accepted>) {
    loop {
        let (tcp, addr) = tokio::select! {
            _ = tx.closed() => return,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, addr)).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(sender = "httpd", remote_addr = %addr, error = %e, "TLS handshake failed")
                }
                Err(_) => {
                    tracing::debug!(sender = "httpd", remote_addr = %addr, "TLS handshake timed out")
                }
            }
        });
    }
}

/// Per-connection errors are retried at once; others (such as too many open files) after
/// a pause, as axum does.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(sender = "httpd", error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

impl Listener for ApiListener {
    type Io = Either<TcpStream, TlsStream<TcpStream>>;
    type Addr = ClientInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match &mut self.inner {
            Inner::Plain(l) => loop {
                match TcpListener::accept(l).await {
                    Ok((s, addr)) => return (Either::Left(s), ClientInfo { addr, tls: false }),
                    Err(e) => accept_error(e).await,
                }
            },
            Inner::Tls(rx) => match rx.recv().await {
                Some((s, addr)) => (Either::Right(s), ClientInfo { addr, tls: true }),
                // The accept task only ends when this listener is dropped.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ClientInfo {
            addr: self.local,
            tls: matches!(self.inner, Inner::Tls(_)),
        })
    }
}

impl Connected<IncomingStream<'_, ApiListener>> for ClientInfo {
    fn connect_info(stream: IncomingStream<'_, ApiListener>) -> Self {
        *stream.remote_addr()
    }
}
