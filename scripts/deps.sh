#!/usr/bin/env bash
# System packages the test suite needs, installed only when missing (Debian/Ubuntu).
# Shared by `make test` and `.ci/run`, so a newcomer's first `make test` passes
# on a fresh machine exactly as CI does. Needs root or password-less sudo.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# the deploy test runs Debian's nginx in front of chatd (non-root, 127.0.0.1, a temp dir)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
# promtool (`promtool check metrics` on /metrics) ships in Debian's prometheus package
command -v promtool >/dev/null || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "chatd tests need: ${need[*]}. Install them (apt-get install ${need[*]}) or run as root." >&2
  exit 1
fi
command -v apt-get >/dev/null || { echo "no apt-get: install ${need[*]} by hand" >&2; exit 1; }
echo "installing ${need[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# RUNLEVEL=1: the packages' services (nginx, prometheus, postgresql, redis) are not started;
# the tests run their own instances on free ports
"${sudo[@]}" env RUNLEVEL=1 apt-get install -y -qq "${need[@]}" >/dev/null
