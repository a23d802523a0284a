//! Listeners: an accept loop that owns its connections, so "refuse connections" can close
//! the listening socket and reset every open connection, then listen again on the same port.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Availability;

/// Binds a listener with `SO_REUSEADDR`, so the same port can be bound again after an outage.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves `router` on `listener` until `stop` resolves; then closes the listener and every
/// connection it accepted.
pub(crate) async fn serve_until(listener: TcpListener, router: Router, stop: impl Future<Output = ()>) {
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let served = auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                        if let Err(error) = served {
                            tracing::debug!(%error, "stand-in connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // E.g. EMFILE: back off briefly instead of spinning.
                    tracing::warn!(%error, "stand-in accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves the API, following the availability switch: while `Refusing`, nothing listens on
/// `addr`; afterwards the same address is bound again.
pub(crate) async fn serve_api(
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    mut availability: watch::Receiver<Availability>,
    shutdown: CancellationToken,
) {
    let mut listener = Some(listener);
    loop {
        let current = match listener.take() {
            Some(listener) => listener,
            None => match bind(addr) {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, %addr, "stand-in cannot listen again yet");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let mut refusing = availability.clone();
        let stop = async move {
            // Sender gone means the stand-in is going away: stop too.
            let _ = refusing.wait_for(|a| *a == Availability::Refusing).await;
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = serve_until(current, router.clone(), stop) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            waited = availability.wait_for(|a| *a != Availability::Refusing) => {
                if waited.is_err() {
                    return;
                }
            }
        }
    }
}
