//! `callguard serve`: the live service. Binds gRPC (ingest, alerts, admin,
//! health, reflection) and HTTP (/metrics, /healthz, /readyz, and the
//! supervisor console, `crate::console`), runs the idle
//! sweeper and retention, reloads on SIGHUP, drains on SIGTERM / Ctrl-C.
//!
//! Tests start it in-process with [`start`] on `127.0.0.1:0` and stop it
//! with [`RunningServer::stop`].

pub mod conn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config;
pub use crate::config::{ServeConfig, TlsFiles};
use crate::console;
use crate::live::{OpenError, ReloadError, Rules, Service};
use crate::webhook::Webhooks;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::auth::{TokenConfigError, Tokens};
use crate::grpc::admin::AdminService;
use crate::grpc::alerts::AlertsService;
use crate::grpc::auth::Authenticator;
use crate::grpc::ingest::IngestService;
use crate::grpc::pb;
use crate::store::{AlertLog, StoreError};
use crate::telemetry::metrics;

/// How often idle calls are closed and ended calls forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// How long a stopping server waits for ingest streams in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on an idle connection, and how long an answer may take
/// before the connection (and its streams) is dropped.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the store is probed with a write, for `/readyz`.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often retention runs.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot load lexicons or policy: {0}")]
    Rules(#[from] ReloadError),
    #[error("alert store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("server reflection: {0}")]
    Reflection(String),
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    #[error("refusing to start: {0}")]
    Exposure(String),
    #[error("tokens: {0}")]
    Tokens(#[from] TokenConfigError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("webhooks: {0}")]
    Webhook(#[from] crate::webhook::WebhookStartError),
}

/// A started service.
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub service: Arc<Service>,
    /// The webhooks in force; SIGHUP replaces them ([`RunningServer::reload`]).
    pub webhooks: Arc<Webhooks>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), ServeError>>>,
    /// Dropped after the tasks, once stopped.
    _http_runtime: HttpRuntime,
}

impl RunningServer {
    /// Stops accepting, ends subscriptions, lets ingest streams in flight
    /// finish for up to [`DRAIN_TIMEOUT`], then closes the store.
    pub async fn stop(self) -> Result<(), ServeError> {
        self.service.begin_stop();
        let _ = self.shutdown.send(true);
        let mut result = Ok(());
        for mut task in self.tasks {
            let joined = match tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await {
                Ok(joined) => joined,
                Err(_) => {
                    tracing::warn!("streams still open after the drain timeout; closing them");
                    task.abort();
                    continue;
                }
            };
            match joined {
                Ok(Err(e)) if result.is_ok() => result = Err(e),
                Err(e) if result.is_ok() => {
                    result = Err(ServeError::Http(std::io::Error::other(e.to_string())));
                }
                _ => {}
            }
        }
        // They end on the stop above, once their offsets are saved.
        if tokio::time::timeout(DRAIN_TIMEOUT, self.webhooks.stopped())
            .await
            .is_err()
        {
            tracing::warn!("webhooks still saving their offsets after the drain timeout");
        }
        result
    }

    /// What SIGHUP does: reloads lexicons and policy, then reads the config
    /// file again and replaces the webhooks by its `[[webhooks]]`
    /// ([`Webhooks::reload`]). Each part refused (an invalid lexicon, an
    /// unreadable or invalid config) is logged and leaves what is in force;
    /// the other part still applies. Other keys of the file take a restart.
    pub async fn reload(&self) {
        let s = self.service.clone();
        let allow = s.config.lexicon_allow_removal;
        match tokio::task::spawn_blocking(move || s.reload(allow)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "SIGHUP reload refused; the rule set in force stays")
            }
            Err(e) => tracing::error!(error = %e, "reload task failed"),
        }
        let Some(path) = self.service.config.file.clone() else {
            return;
        };
        let read = tokio::task::spawn_blocking(move || ServeConfig::load(&path)).await;
        let config = match read {
            Ok(Ok(config)) => config,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "SIGHUP: config refused; the webhooks in force stay");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "config read task failed");
                return;
            }
        };
        match self.webhooks.reload(&config.webhooks).await {
            Ok(done) => tracing::info!(
                started = ?done.started,
                restarted = ?done.restarted,
                stopped = ?done.stopped,
                unchanged = ?done.unchanged,
                "webhooks reloaded"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP: webhooks refused; the webhooks in force stay")
            }
        }
    }
}

/// The HTTP side (the console, its event streams, `/metrics`, and the
/// webhooks' deliveries) on a runtime
/// of its own: one worker thread at a lower scheduling priority than
/// ingest's ([`HTTP_NICE`]). Every alert is written to every open event
/// stream; with hundreds of pages open that is hundreds of writes in a
/// burst, and on ingest's runtime those bursts queued in front of the
/// transcript events: ingest p99 with 200 event-stream readers was three
/// times that with none (BENCHMARKS.md, "Console"). Here the burst is one
/// thread's work, which the kernel preempts for an ingest worker, and the
/// console can never take more than one core.
struct HttpRuntime(Option<tokio::runtime::Runtime>);

/// The niceness of the HTTP runtime's thread, relative to the process's
/// (Linux applies it per thread): 10 gives it about a tenth of a core's
/// share while ingest wants the CPU, and all that is idle otherwise.
const HTTP_NICE: i32 = 10;

impl HttpRuntime {
    fn start() -> Result<HttpRuntime, ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("callguard-http")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .map_err(ServeError::Http)?;
        Ok(HttpRuntime(Some(runtime)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("the HTTP runtime lives until the server is dropped"),
        }
    }

    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }
}

/// A runtime cannot be dropped (blocking on its threads) inside another
/// runtime's task, where a stopped server is dropped: let its threads go.
impl Drop for HttpRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's priority by [`HTTP_NICE`]; says so once if
/// it cannot (the console then competes with ingest as an equal).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let tid = rustix::thread::gettid();
        let now = getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(error) = setpriority_process(Some(tid), now.saturating_add(HTTP_NICE)) {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| tracing::warn!(%error, "cannot lower the HTTP thread's priority"));
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Accepted gRPC connections with Nagle's algorithm off. tonic applies its
/// own `tcp_nodelay` default only to listeners it binds itself; on ours,
/// a small reply written while the previous one is unacknowledged waits
/// for the peer's delayed ACK: alerts arrived in bursts 40 ms late.
pub(crate) fn no_delay(listener: tokio::net::TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Raises the soft open-files limit to the hard one (a service default of
/// 1,024 is a few hundred clients) and says what it got; returns the limit
/// in force. Once per process.
fn raise_open_files_limit() -> Option<u64> {
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        #[cfg(unix)]
        {
            use rustix::process::{getrlimit, setrlimit, Resource};
            let before = getrlimit(Resource::Nofile);
            let raised = rustix::process::Rlimit {
                current: before.maximum,
                maximum: before.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    let now = getrlimit(Resource::Nofile).current;
                    tracing::info!(soft = ?now, was = ?before.current, "open-files limit raised to the hard limit");
                    now
                }
                Err(error) => {
                    tracing::warn!(%error, soft = ?before.current, hard = ?before.maximum, "cannot raise the open-files limit");
                    before.current
                }
            }
        }
        #[cfg(not(unix))]
        None
    })
}

/// Connections the open-files limit leaves room for, keeping some files
/// for the store, the HTTP port and the logs.
fn connection_budget() -> usize {
    const RESERVED: u64 = 128;
    raise_open_files_limit().map_or(usize::MAX, |n| {
        usize::try_from(n.saturating_sub(RESERVED).max(1)).unwrap_or(usize::MAX)
    })
}

/// Starts the service; returns once both listeners are bound.
pub async fn start(config: ServeConfig) -> Result<RunningServer, ServeError> {
    config.check_exposure().map_err(ServeError::Exposure)?;
    raise_open_files_limit();
    let tokens = Arc::new(Tokens::from_config(&config.tokens)?);
    let tls = config.tls.as_ref().map(tls_config).transpose()?;
    let rules = Rules::load(&config)?;
    let mut log = AlertLog::open(&config.data_dir)?;
    log.set_sync(config.store_sync)?;
    log.set_min_free(config.store_min_free_bytes);
    let grpc_listener = bind(config.listen).await?;
    let http_listener = bind(config.http).await?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: config.http,
            source,
        })?;
    let limits = config.limits.clone();
    metrics::prometheus(); // install the recorder before the service registers its metrics
    let service = Arc::new(Service::new(config, rules, log)?);
    let http_runtime = HttpRuntime::start()?;
    // One task each, following the log, beside the console; they end with
    // the service.
    let webhooks = Arc::new(Webhooks::start(&service, http_runtime.handle())?);
    let (shutdown, shutdown_rx) = watch::channel(false);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::ingest_server::IngestServer<IngestService>>()
        .await;
    health_reporter
        .set_serving::<pb::alerts_server::AlertsServer<AlertsService>>()
        .await;
    health_reporter
        .set_serving::<pb::admin_server::AdminServer<AdminService>>()
        .await;
    // Reflection in both versions: grpcurl and grpc_cli ask v1 first, while
    // Python's grpcio-reflection, Postman and older grpcurl speak v1alpha only.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let max_message = limits.max_message_bytes;
    let auth = Authenticator::new(tokens.clone());
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    // Health and reflection stay open (load balancers, grpcurl); they
    // carry no call data. Every callguard service is behind the tokens.
    // Flow control per stream, not per connection: h2 closes a connection
    // (ENHANCE_YOUR_CALM) whose unread small DATA frames exceed a budget of
    // half the connection window, and transcript events are small frames.
    // With the connection window at its maximum that budget (1 GiB) is out
    // of reach, while the stream windows still bound what a connection
    // buffers (streams × stream window). So a server that falls behind
    // slows its clients down instead of dropping every call on a connection.
    // Keepalive pings find clients that vanished without closing.
    let conns = Arc::new(conn::Conns::default());
    let conn_limits = conn::ConnLimits {
        max_connections: limits.max_connections.min(connection_budget()),
        first_frame: Duration::from_secs(limits.first_frame_timeout_seconds),
        idle: Duration::from_secs(limits.idle_connection_timeout_seconds),
    };
    let grpc = builder
        .layer(conn::CountStreamsLayer(conns.clone()))
        .max_concurrent_streams(Some(limits.max_streams_per_connection))
        .initial_stream_window_size(Some(limits.stream_window_bytes))
        .initial_connection_window_size(Some(config::MAX_WINDOW))
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            pb::ingest_server::IngestServer::new(IngestService::new(service.clone()))
                .max_decoding_message_size(max_message),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            pb::alerts_server::AlertsServer::new(AlertsService::new(service.clone()))
                .max_decoding_message_size(max_message),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            pb::admin_server::AdminServer::new(AdminService::new(service.clone())),
            auth,
        ));
    let mut grpc_stop = shutdown_rx.clone();
    let grpc_task = tokio::spawn(async move {
        let incoming = conn::incoming(grpc_listener, conn_limits, conns);
        grpc.serve_with_incoming_shutdown(incoming, async move {
            let _ = grpc_stop.wait_for(|stop| *stop).await;
        })
        .await?;
        Ok(())
    });

    let router =
        http_router(service.clone()).merge(console::router(service.clone(), tokens.clone()));
    let http_listener = http_listener.into_std().map_err(ServeError::Http)?;
    let mut http_stop = shutdown_rx.clone();
    let http_task = http_runtime.spawn(async move {
        let http_listener = TcpListener::from_std(http_listener).map_err(ServeError::Http)?;
        // With the peer's address: an open service answers the console to
        // loopback peers only.
        let router = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(http_listener, router)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|stop| *stop).await;
            })
            .await
            .map_err(ServeError::Http)
    });

    let housekeeping = service.clone();
    let mut housekeeping_stop = shutdown_rx;
    let housekeeping_task = tokio::spawn(async move {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut purge = tokio::time::interval(PURGE_EVERY);
        let mut probe = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                _ = probe.tick() => housekeeping.probe_store(),
                _ = sweep.tick() => {
                    let s = housekeeping.clone();
                    let _ = tokio::task::spawn_blocking(move || s.sweep()).await;
                }
                _ = purge.tick() => {
                    let s = housekeeping.clone();
                    let _ = tokio::task::spawn_blocking(move || s.purge()).await;
                }
                _ = async { housekeeping_stop.wait_for(|stop| *stop).await.is_ok() } => return Ok(()),
            }
        }
    });

    let config = &service.config;
    let lexicons = config
        .lexicons
        .as_ref()
        .map_or_else(|| "built-in".to_owned(), |p| p.display().to_string());
    let policy = config
        .policy
        .as_ref()
        .map_or_else(|| "built-in".to_owned(), |p| p.display().to_string());
    tracing::info!(
        %grpc_addr,
        %http_addr,
        version = %service.rules().engine.version(),
        %lexicons,
        %policy,
        "callguard serving"
    );
    match (config.tls.is_some(), tokens.is_open()) {
        (_, true) => tracing::warn!(
            "no tokens configured: the service is open to anyone who can reach {grpc_addr} (loopback only)"
        ),
        (false, false) if !grpc_addr.ip().is_loopback() => tracing::warn!(
            "plaintext gRPC beyond loopback (allow_plaintext): tokens and transcripts cross the network unencrypted unless a TLS proxy is in front"
        ),
        (tls, false) => tracing::info!(tls, tokens = config.tokens.len(), "tokens required"),
    }
    Ok(RunningServer {
        grpc_addr,
        http_addr,
        service,
        webhooks,
        shutdown,
        _http_runtime: http_runtime,
        tasks: vec![grpc_task, http_task, housekeeping_task],
    })
}

fn http_router(service: Arc<Service>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    axum::Router::new()
        .route("/metrics", get(|| async { metrics::prometheus().render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = service.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: the alert store failed\n",
                        )
                    }
                }
            }),
        )
}

/// Reads the PEM files of `[tls]` (mutual TLS when `client_ca` is set).
fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, ServeError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| ServeError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(tls)
}

/// Runs until SIGTERM or Ctrl-C; SIGHUP reloads lexicons, policy and
/// webhooks ([`RunningServer::reload`]).
pub async fn run(config: ServeConfig) -> Result<(), ServeError> {
    // The handlers are in place before the service says it is serving: a
    // SIGHUP sent on that line (systemd's ExecReload, a script) must reload,
    // not meet the default action and end the process.
    let signals = StopSignals::install();
    let server = start(config).await?;
    signals.wait(&server).await;
    tracing::info!("shutting down: no new streams; finishing events in flight");
    server.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGHUP, registered; `None` where they could not be (then
/// only Ctrl-C stops the service).
#[cfg(unix)]
struct StopSignals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

#[cfg(unix)]
impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(hup)) => StopSignals(Some((term, hup))),
            _ => StopSignals(None),
        }
    }

    async fn wait(self, server: &RunningServer) {
        let Some((mut term, mut hup)) = self.0 else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => server.reload().await,
            }
        }
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn install() -> Self {
        StopSignals
    }

    async fn wait(self, _server: &RunningServer) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
