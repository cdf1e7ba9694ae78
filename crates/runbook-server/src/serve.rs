//! `host serve`: start-up (the store, notifier, approvals, fleet, console, dispatcher,
//! schedules, rescuer), the router of every endpoint, and the drain on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::app::{App, Live};
use crate::console::Console;
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;
use crate::nodes::Fleet;
use crate::run::Host;
use crate::schedule::Schedules;
use crate::{reload, rescue};

/// Serves until SIGTERM/SIGINT, then drains: no new requests, running runs get the grace
/// period and are then marked interrupted, runs not started stay queued for the next host.
pub async fn serve(host: Host, ready: impl FnOnce(std::net::SocketAddr)) -> Result<()> {
    let server = &host.config.server;
    let listen = server.listen.clone();
    let grace = Duration::from_secs(server.shutdown_grace_secs);
    let max_body = server.max_body_bytes;
    let tls = match &server.tls {
        Some(files) => Some(Arc::new(
            crate::tls::Certificates::load(crate::tls::TlsFiles {
                cert: files.cert.clone(),
                key: files.key.clone(),
                client_ca: host.config.fleet.client_ca.clone(),
            })
            .context("[server] tls")?,
        )),
        None => None,
    };
    let store = host
        .store
        .clone()
        .context("`host serve` needs a run store (`store` in host.toml, or RUNBOOK_STORE)")?;
    let live = Live::from_config(&host.config)?;
    // Delivers what this host's runs queue, and what an earlier host left pending.
    let notifier = host.notifier();
    for (channel, problem) in notifier.problems() {
        tracing::warn!("notify channel {channel} cannot deliver (messages are kept): {problem}");
    }
    notifier.start();
    let digests =
        crate::digests::start(notifier.clone(), store.clone(), host.config.digest.clone());
    // Answers to questions are taken in from every channel for the server's whole life.
    let approvals = host.approvals();
    if let Some(approvals) = &approvals {
        approvals.listen();
    }
    let lease = host.config.server.lease();
    let fleet = Fleet::from_config(&host.config.fleet)?;
    let node_wait = fleet.node_wait;
    let console = Console::new(&*store).await?;
    if let Some(url) = &host.config.server.public_url {
        crate::notify::set_public_url(url).context("[server] public-url")?;
    }
    let node_intake = fleet.intake(&host.config.fleet);
    let safety = crate::safety::Safety::new(&host.config)?;
    let dispatcher = Arc::new(
        Dispatcher::new(
            Arc::new(host),
            store.clone(),
            Arc::new(Metrics::new()),
            node_intake,
            safety,
        )
        .context("starting the runtime that executes runs")?,
    );
    let schedules = Schedules::start(&dispatcher).await?;
    let app = Arc::new(App {
        dispatcher,
        store: store.clone(),
        fleet,
        live: std::sync::RwLock::new(Arc::new(live)),
        console,
        schedules,
        tls: tls.clone(),
    });
    let reloader = tokio::spawn(reload::on_sighup(app.clone()));
    // Runs of a process that died are lost once their lease ends, whichever replica looks;
    // this one's leases are renewed as long as it lives.
    let (stop_looking, stopped) = tokio::sync::watch::channel(false);
    let leases = crate::store::keep_leases(store.clone(), lease);
    let cancels = runbook_runtime::cancel::watch(store.clone());
    let rescuer = tokio::spawn(rescue::keep_looking(
        notifier.clone(),
        store.clone(),
        approvals,
        (lease / 3).max(Duration::from_millis(200)),
        node_wait,
        stopped,
    ));
    let claims = tokio::spawn(app.dispatcher.clone().claim_loop());
    // Audit events a process stored but died before queueing are shipped all the same.
    let shipper = tokio::spawn({
        let app = app.clone();
        runbook_runtime::audit::keep_shipping(store.clone(), notifier.clone(), move || {
            app.dispatcher.host().with_policy(|c| c.audit.clone())
        })
    });

    let mut routes = crate::routes::router(app.clone(), max_body);
    if tls.is_some() {
        routes = routes.layer(axum::middleware::map_response(strict_transport));
    }

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    ready(listener.local_addr()?);
    let closing = app.fleet.closing.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Held agent polls answer now rather than at the end of their wait.
        closing.cancel();
    };
    match tls {
        Some(certificates) => crate::tls::serve(listener, routes, certificates, shutdown).await?,
        None => {
            axum::serve(
                listener,
                routes.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await?
        }
    }
    app.schedules.stop();
    // Runs it already claimed start; then the running ones get the grace.
    app.dispatcher.stop_claiming();
    let _ = claims.await;
    let left = app.dispatcher.shutdown(grace).await;
    let _ = stop_looking.send(true);
    let _ = rescuer.await;
    reloader.abort();
    shipper.abort();
    if let Some(digests) = digests {
        digests.abort();
    }
    leases.abort();
    cancels.abort();
    if left > 0 {
        tracing::warn!(
            "shutdown: {left} runs did not finish within {}s and are marked interrupted; \
             queued runs are left for the next host",
            grace.as_secs()
        );
    }
    // In-flight deliveries finish; what is still pending waits in the outbox for the next host.
    notifier.stop(Duration::from_secs(10)).await;
    Ok(())
}

/// Over HTTPS, browsers are told to come back only that way.
async fn strict_transport(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
    response
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: no new webhooks; waiting for running runs");
}
