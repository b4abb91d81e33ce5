//! Starting and stopping the server: the fail-closed start check, the listener, and graceful
//! shutdown (stop accepting, let in-flight requests and streams finish up to the grace period).

use std::future::Future;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::config::{AuthMode, Config};
use crate::{AppState, app};

/// Why `serve` refused to start, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to listen on {0} without client authentication: anyone who can reach this \
         address could spend your provider credit.\n\
         Either create a virtual key for your clients (reprise key create --label NAME), or let \
         clients bring their own provider keys (auth = \"passthrough\", REPRISE_AUTH=passthrough), \
         or listen on loopback (--listen 127.0.0.1:4080), or, if something in front of Reprise \
         authenticates clients, start with --allow-unauthenticated (REPRISE_ALLOW_UNAUTHENTICATED=true)."
    )]
    Unauthenticated(std::net::SocketAddr),
    #[error(
        "no upstream target is configured: set OPENAI_API_KEY (and optionally OPENAI_BASE_URL), \
         or define [[targets]] in a config file (--config FILE)"
    )]
    NoTargets,
}

/// The checks that make `serve` refuse to start. `keys_exist`: the store holds virtual keys
/// (`None` before it is opened: only what the configuration alone decides is checked).
pub fn check_startable(config: &Config, keys_exist: Option<bool>) -> Result<(), StartError> {
    if config.targets.is_empty() {
        return Err(StartError::NoTargets);
    }
    let authenticated = config.auth == AuthMode::Passthrough || keys_exist != Some(false);
    if !config.listen.ip().is_loopback() && !config.allow_unauthenticated && !authenticated {
        return Err(StartError::Unauthenticated(config.listen));
    }
    Ok(())
}

/// Opens the store and builds the state for `config`.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    tokio::task::spawn_blocking(move || {
        let data_dir = config.data_dir.clone();
        let store = reprise_storage::Store::open(&data_dir).with_context(|| {
            format!(
                "cannot open the store in {} (it is left as it is; move it aside or restore it)",
                data_dir.display()
            )
        })?;
        AppState::new(config, store)
    })
    .await
    .context("opening the store")?
}

/// Runs the full server for `config` until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    check_startable(&config, None)?;
    let state = build_state(config).await?;
    check_startable(state.config(), Some(state.keys().any()))?;
    let listen = state.config().listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    if state.open_mode() {
        tracing::warn!(%listen, "running WITHOUT client authentication on a non-loopback address");
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        targets = state.targets().len(),
        data_dir = %state.config().data_dir.display(),
        "reprise is listening"
    );
    run(listener, state, shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests for at most the
/// configured grace period. Returns once drained (or the grace period is over).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.config().shutdown_grace;
    let tasks = state.tasks().clone();
    let ledger = state.ledger().clone();
    let warming = state.clone();
    tasks.spawn(async move { warming.cache().warm().await });
    let sweeper = AbortOnDrop(tokio::spawn(sweep_expired(state.clone())));
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections; draining in-flight requests"
        );
        let _ = signalled_tx.send(());
    };
    // Small SSE frames and JSON answers must leave at once: Nagle's algorithm would hold them
    // for the peer's delayed ACK (tens of milliseconds).
    let listener = Counting {
        inner: listener,
        state: state.clone(),
    }
    .tap_io(|tcp| {
        if let Err(err) = tcp.inner.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .into_future();
    tokio::pin!(server);
    let deadline = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let drained = async move {
        let result = (&mut server).await;
        // Then the background writes the requests left behind (cache entries, usage rows).
        tasks.close();
        tasks.wait().await;
        ledger.flush().await;
        result
    };
    let _sweeper = sweeper;
    tokio::select! {
        result = drained => {
            result.context("server error")?;
            tracing::info!("all requests drained; bye");
        }
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing the remaining connections");
        }
    }
    Ok(())
}

/// The listener, counting open client connections for the metrics.
struct Counting {
    inner: TcpListener,
    state: AppState,
}

/// A client connection; closing it (dropping) counts it out.
struct Counted {
    inner: tokio::net::TcpStream,
    state: AppState,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.state
            .metrics()
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl axum::serve::Listener for Counting {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        self.state
            .metrics()
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (
            Counted {
                inner: stream,
                state: self.state.clone(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Stops a background loop when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every `cache.sweep_interval_secs`, drops expired cache entries from memory and the store.
async fn sweep_expired(state: AppState) {
    let mut every = tokio::time::interval(state.config().cache.sweep_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let swept = state.clone();
        match tokio::task::spawn_blocking(move || swept.cache().sweep()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(entries = n, "expired cache entries removed"),
            Ok(Err(err)) => tracing::error!(error = %err, "could not remove expired cache entries"),
            Err(err) => tracing::error!(error = %err, "the expiry sweep failed"),
        }
        // The request log (and the prompts in it) past its retention or its bound.
        let days = i64::from(state.config().log_retention_days);
        let max_rows = state.config().log_max_rows;
        let store = state.store().clone();
        let before = crate::state::unix_ms() - days * 86_400_000;
        if let Ok(Err(err)) =
            tokio::task::spawn_blocking(move || store.expire_request_log(before, max_rows)).await
        {
            tracing::error!(error = %err, "could not expire the request log");
        }
        // The ledger's days past its detail, summed by day (spend and reports unchanged).
        let store = state.store().clone();
        let today = crate::limits::Calendar::at(crate::state::unix_ms()).day_start_ms;
        let before = today - i64::from(state.config().ledger_detail_days) * 86_400_000;
        match tokio::task::spawn_blocking(move || store.roll_up_ledger(before)).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => tracing::info!(rows = n, "ledger rows summed into daily totals"),
            Ok(Err(err)) => tracing::error!(error = %err, "could not sum the ledger's older days"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
