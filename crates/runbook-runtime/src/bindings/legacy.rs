//! The capability functions as contracts 0.1.0–0.3.0 import them: the same host functions, but
//! their `error` variant has six cases (no `over-budget`, added in 0.4.0) and the component
//! model checks a variant's cases exactly. So each function is registered here by hand with the
//! current host trait behind it and the error mapped on the way out: `over-budget` becomes
//! `denied` with the same text. Every other type is unchanged since 0.1.0 and checks
//! structurally against the current Rust types.

use wasmtime::component::{HasData, LinkerInstance};

use super::CapError;
use super::runbook::host as current;
use super::v0_3::generated::runbook::host::types::Error as OldError;
use current::docker::{ListFilter, LogOptions, PruneOptions};
use current::fs_read::{FindOptions, GrepOptions};
use current::http::Request;
use current::notify::Message;
use current::report::{Level, StepStatus};

/// The error as an old contract knows it.
pub fn old_error(error: CapError) -> OldError {
    match error {
        CapError::Denied(s) => OldError::Denied(s),
        CapError::NotFound(s) => OldError::NotFound(s),
        CapError::Invalid(s) => OldError::Invalid(s),
        CapError::Unavailable(s) => OldError::Unavailable(s),
        CapError::Timeout(s) => OldError::Timeout(s),
        CapError::Failed(s) => OldError::Failed(s),
        CapError::OverBudget(info) => OldError::Denied(info.message),
    }
}

fn errors<T>(r: Result<T, CapError>) -> (Result<T, OldError>,) {
    (r.map_err(old_error),)
}

/// `largest-many`: one result per path inside the call's result.
type Nested<T, E> = Result<Vec<Result<T, E>>, E>;
fn nested<T>(r: Nested<T, CapError>) -> (Nested<T, OldError>,) {
    (
        r.map(|each| each.into_iter().map(|r| r.map_err(old_error)).collect())
            .map_err(old_error),
    )
}

fn unit(r: ()) {
    r
}

/// A `fn <interface>(instance, getter)` registering the listed functions of the current host
/// trait `$iface::Host` under their WIT names, each result passed through `$conv`.
macro_rules! legacy_interface {
    ($name:ident, $iface:ident, {
        $($wit:literal => $method:ident($($arg:ident: $ty:ty),*) $conv:ident;)*
    }) => {
        pub fn $name<T, D>(
            inst: &mut LinkerInstance<'_, T>,
            getter: fn(&mut T) -> D::Data<'_>,
        ) -> wasmtime::Result<()>
        where
            D: HasData,
            for<'a> D::Data<'a>: current::$iface::Host + Send,
            T: Send + 'static,
        {
            $(
                inst.func_wrap_async(
                    $wit,
                    move |mut caller: wasmtime::StoreContextMut<'_, T>,
                          ($($arg,)*): ($($ty,)*)| {
                        Box::new(async move {
                            let host = &mut getter(caller.data_mut());
                            let r = current::$iface::Host::$method(host, $($arg),*).await?;
                            Ok($conv(r))
                        })
                    },
                )?;
            )*
            Ok(())
        }
    };
}

legacy_interface!(docker, docker, {
    "list-containers" => list_containers(filter: ListFilter) errors;
    "inspect" => inspect(container: String) errors;
    "logs" => logs(container: String, options: LogOptions) errors;
    "start" => start(container: String) errors;
    "stop" => stop(container: String, timeout: Option<u32>) errors;
    "restart" => restart(container: String, timeout: Option<u32>) errors;
    "pause" => pause(container: String) errors;
    "unpause" => unpause(container: String) errors;
    "stats" => stats(container: String) errors;
    "disk-usage" => disk_usage() errors;
    "prune" => prune(options: PruneOptions) errors;
    "network-disconnect" => network_disconnect(container: String, network: String, force: bool) errors;
});

legacy_interface!(fs_read, fs_read, {
    "read" => read(path: String, offset: u64, max_bytes: u32) errors;
    "tail" => tail(path: String, lines: u32) errors;
    "list-dir" => list_dir(path: String) errors;
    "stat" => stat(path: String) errors;
    "usage" => usage(path: String) errors;
    "largest" => largest(path: String, depth: u32, limit: u32) errors;
    "largest-many" => largest_many(paths: Vec<String>, depth: u32, limit: u32) nested;
    "find" => find(path: String, options: FindOptions) errors;
    "find-entries" => find_entries(path: String, options: FindOptions) errors;
    "grep" => grep(path: String, pattern: String, options: GrepOptions) errors;
});

legacy_interface!(http, http, {
    "send" => send(req: Request) errors;
    "probe" => probe(url: String, timeout_ms: Option<u32>) errors;
});

legacy_interface!(notify, notify, {
    "send" => send(channel: String, message: Message) errors;
});

legacy_interface!(report, report, {
    "log" => log(level: Level, message: String) unit;
    "step" => step(name: String, status: StepStatus, detail: String) unit;
    "attach" => attach(name: String, content_type: String, data: Vec<u8>) errors;
});

legacy_interface!(approval, approval, {
    "ask" => ask(group: String, question: current::approval::Question) errors;
});
