# Shared environment for supportbot scripts (sourced, not run).
# Keeps downloads and the Cargo build outside the checkout so reruns are fast.
SUPPORTBOT_CACHE="${SUPPORTBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/supportbot}"
export SUPPORTBOT_CACHE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SUPPORTBOT_CACHE/target}"
