# Shared environment for supportbot scripts (sourced, not run).
# Keeps downloads and the Cargo build outside the checkout so reruns are fast.
SUPPORTBOT_CACHE="${SUPPORTBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/supportbot}"
export SUPPORTBOT_CACHE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SUPPORTBOT_CACHE/target}"
# ONNX Runtime's Microsoft builds (the PyPI wheel's library) otherwise queue usage reports for
# Microsoft in ~/.cache/Microsoft; the binaries turn them off themselves, this covers the Python
# references of the benchmarks.
export ORT_DISABLE_TELEMETRY="${ORT_DISABLE_TELEMETRY:-1}"
