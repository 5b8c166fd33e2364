"""A throwaway PostgreSQL for the scale benchmark, started as the tests start theirs
(tests/support/postgres_server.py: initdb into a temporary directory, 127.0.0.1 only, a
free port, fsync off), with one empty database. It prints the database's URL and runs
until interrupted, then removes its directory.

    .venv/bin/python -m scripts.scale.postgres    # prints postgresql://chatd@127.0.0.1:PORT/test_PID_1
"""

from __future__ import annotations

import signal
import sys
import threading

from tests.support.postgres_server import PostgresProc


def main() -> None:
    server = PostgresProc()
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print(server.new_database(), flush=True)
        stop.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
