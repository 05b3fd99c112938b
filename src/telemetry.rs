//! The tracing subscriber: text or JSON lines on stderr, filtered by
//! `RUST_LOG` (default `info`; `warn` for a bulk import, whose progress bar
//! says what a line an entry would). Request spans: `api/observe.rs`.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls are ignored (tests).
pub fn init(format: LogFormat) {
    init_at(format, "info")
}

/// [`init`] with another level when `RUST_LOG` is not set.
pub fn init_at(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
