//! What one delivery attempt came to, whichever sink made it (HTTP sinks, e-mail, local
//! files); the worker decides from it whether to retry.

use std::time::Duration;

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered,
    /// Worth trying again: 429, 5xx, timeouts, connection errors. `after` is the sink's own
    /// Retry-After, which wins over our backoff.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// The sink refused the message itself (400, 403, 404…): retrying cannot help.
    Failed(String),
}
