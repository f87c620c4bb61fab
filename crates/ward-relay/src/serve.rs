//! `ward-relay serve`: binds, prints where it listens, serves (HTTPS when a certificate and key
//! are set) until SIGTERM or Ctrl-C, and deletes log entries past the retention limit once an
//! hour.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::api::{app, AppState};
use crate::config::Config;
use crate::sqlite_store::SqliteStore;
use crate::store::RelayStore;
use crate::tls::{ReloadableCertificate, TlsListener};

/// Why the relay stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The settings are not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store could not be opened.
    #[error("cannot open the relay's database: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The address could not be bound, or the server failed.
    #[error("cannot serve on {address}: {reason}")]
    Io {
        /// Where.
        address: String,
        /// Why.
        reason: String,
    },
}

/// Serves until a shutdown signal. The first line on stdout is `listening on ADDRESS`, with the
/// real port when the configured one was 0.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    config.check()?;
    let store: Arc<dyn RelayStore> = Arc::new(SqliteStore::open(&config.data_dir)?);
    let state = AppState::new(
        Arc::clone(&store),
        &config.data_dir.join("blobs"),
        config.limits.clone(),
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| ServeError::Io {
            address: config.listen.to_string(),
            reason: error.to_string(),
        })?;
    let address = listener.local_addr().map_err(|error| ServeError::Io {
        address: config.listen.to_string(),
        reason: error.to_string(),
    })?;
    #[allow(clippy::print_stdout)]
    {
        // Scripts and tests wait for this line to learn the port.
        println!("listening on {address}");
    }
    let retention = config.retention;
    let expiry = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let cutoff = SystemTime::now()
                .checked_sub(retention)
                .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |elapsed| elapsed.as_secs());
            let store = Arc::clone(&store);
            let _ = tokio::task::spawn_blocking(move || store.expire(cutoff)).await;
        }
    });
    let router = app(state);
    let served = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let certificate = ReloadableCertificate::open(cert, key)?;
            let tls =
                TlsListener::new(listener, certificate.server_config()?).map_err(|error| {
                    ServeError::Io {
                        address: address.to_string(),
                        reason: error.to_string(),
                    }
                })?;
            let reloads = tokio::spawn(reload_on_hangup(certificate));
            let served = axum::serve(tls, router)
                .with_graceful_shutdown(shutdown_signal())
                .await;
            reloads.abort();
            served
        }
        _ => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown_signal())
                .await
        }
    };
    expiry.abort();
    served.map_err(|error| ServeError::Io {
        address: address.to_string(),
        reason: error.to_string(),
    })
}

/// Reloads the certificate and key on SIGHUP, as IT's certificate renewal expects. A bad file is
/// reported on stderr and the certificate in use stays.
async fn reload_on_hangup(certificate: std::sync::Arc<ReloadableCertificate>) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangups.recv().await.is_some() {
            match certificate.reload() {
                Ok(()) => eprintln!("ward-relay: TLS certificate reloaded"),
                Err(error) => eprintln!("ward-relay: TLS certificate not reloaded: {error}"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = certificate;
        std::future::pending::<()>().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            () = terminate => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
