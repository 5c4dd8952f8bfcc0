//! The start of a command-line program: ONNX Runtime's usage reports off and the async runtime
//! built before any other thread starts, logs to stderr, and a failure printed as one line with
//! its exit code.

use std::future::Future;
use std::process::ExitCode;

/// Runs `main` on a new tokio runtime as the program `name`. An error it returns, or a runtime
/// that cannot start, is printed as `name: error` and exits with `failure`. Logs go to stderr,
/// filtered by `RUST_LOG` (default: warnings, and only errors from the embedded index).
pub fn run<F, Fut>(name: &str, failure: u8, main: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    // Before tokio starts its threads.
    crate::embed::opt_out_of_runtime_telemetry();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::from(failure);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,qdrant_edge=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match runtime.block_on(main()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::from(failure)
        }
    }
}
