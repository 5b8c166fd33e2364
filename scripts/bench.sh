#!/bin/sh
# `make bench`: the standard set of docs/benchmarks.md in one session, chatd beside its peers.
#
#   BENCH=<the shared bench folder> SESSION=name RATES="2000 4000" make bench
#
# 1. fan-out: chatd (default config: SQLite, contact filter on) and each of PEERS at
#    every rate of RATES, 1,000 orders x 3 connections, 12 s, in alternation;
# 2. the same rates with chatd on PostgreSQL when PG_URL names a server
#    (a fresh database per run is created next to it: PG_URL's database is a template);
# 3. idle: 10,000 joined connections, RSS per connection, chatd and the peers;
# 4. the store alone (scripts/bench_store.py), SQLite and PG_URL, as the load benchmark
#    and with webhooks, e-mail, staff, reads and photos on; with PG_URL, what a
#    message costs PostgreSQL by the shape of its statement (scripts/bench_pg_statements.py);
# 5. the bench's report of the session (its results folder, then summary.md).
# The bench pins each server to CPU 0 and its load generator to CPU 1.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$here/../shared/bench}
SESSION=${SESSION:-chatd-$(date +%Y%m%d-%H%M%S)}
RATES=${RATES:-2000 4000 6000}
PEERS=${PEERS:-sio-node aiohttp-ws}
PG_URL=${PG_URL:-}
PY=${PY:-$here/.venv/bin/python}
[ -x "$BENCH/run.sh" ] || { echo "bench: no load benchmark at $BENCH (set BENCH=...)" >&2; exit 2; }
CHATD_CMD="$here/scripts/bench-chatd.sh {config} --port {port}"
export CHATD_CMD
run() { "$BENCH/run.sh" "$@" --session "$SESSION"; }
# with_db <command...>: runs it with the URL of a fresh database next to PG_URL's as its last argument
with_db() {
    db="bench_$(date +%s%N)"
    psql -q "$PG_URL" -c "CREATE DATABASE $db"
    url="${PG_URL%/*}/$db"
    "$@" "$url" || true
    psql -q "$PG_URL" -c "DROP DATABASE $db"
}
pg_fanout() { CHATD_STORE_URL="$3" run chatd custom --rate "$2" --rooms 1000 --duration 12; }
pg_store() { "$PY" "$here/scripts/bench_store.py" --url "$1"; }
deployed="--offline --watched --reads --photos --bot --staff-reads"
# shellcheck disable=SC2086 # $deployed: several flags
pg_deployed() { "$PY" "$here/scripts/bench_store.py" $deployed --url "$1"; }
pg_statements() { "$PY" "$here/scripts/bench_pg_statements.py" --url "$1"; }

for rate in $RATES; do
    run chatd custom --rate "$rate" --rooms 1000 --duration 12
    for peer in $PEERS; do run "$peer" custom --rate "$rate" --rooms 1000 --duration 12; done
    [ -z "$PG_URL" ] || with_db pg_fanout _ "$rate"
done
run chatd idle
for peer in $PEERS; do run "$peer" idle; done
echo "store alone, SQLite: $("$PY" "$here/scripts/bench_store.py")"
# shellcheck disable=SC2086 # $deployed: several flags
echo "store alone, SQLite, $deployed: $("$PY" "$here/scripts/bench_store.py" $deployed)"
[ -z "$PG_URL" ] || echo "store alone, PostgreSQL: $(with_db pg_store)"
[ -z "$PG_URL" ] || echo "store alone, PostgreSQL, $deployed: $(with_db pg_deployed)"
[ -z "$PG_URL" ] || with_db pg_statements
python3 "$BENCH/bench.py" report "${BENCH_DEPS:-$HOME/.cache/chatd-bench}/results/$SESSION"
