#!/bin/sh
# The chatd command for the shared load benchmark (bench/run.sh, CHATD_CMD):
#   CHATD_CMD="$PWD/scripts/bench-chatd.sh {config} --port {port}" bench/run.sh chatd custom ...
# The config the bench writes keeps the default limit of 32 unauthenticated
# sockets per address, which its ~200 simultaneous opens trip, and may name the
# relay section by its old name; this copy fixes both. The relay is the
# in-process one unless CHATD_RELAY_URL is set. `exec` keeps the pid the
# bench samples that of the server itself. CHATD_PYTHON picks the interpreter
# (default: this worktree's .venv), PYTHONPATH another checkout's chatd,
# CHATD_BENCH_TOML more config lines (e.g. '[filter]\nmode = "off"').
set -eu
cfg="$1"
shift
out="${cfg%.toml}.chatd.toml"
sed 's/^\[broker\]$/[relay]/' "$cfg" > "$out"
printf '\n[limits]\nmax_unauthenticated_per_ip = 1000\n%b\n' "${CHATD_BENCH_TOML:-}" >> "$out"
exec "${CHATD_PYTHON:-$(dirname "$0")/../.venv/bin/python}" -m chatd serve --config "$out" "$@"
