"""The config.toml of a chatd that a measuring script starts (conn-memory.py, ws-cpu.py):
loopback only, a SQLite file in the run's folder, the in-process relay, and no
limit on unauthenticated sockets, which the scripts open by the hundred."""

from __future__ import annotations

import os


def write_config(folder: str, port: int, secret: str, api_key: str = "", more: str = "") -> str:
    """Write it into `folder`; its path."""
    path = os.path.join(folder, "config.toml")
    key = f'api_key = "{api_key}"\n' if api_key else ""
    with open(path, "w") as f:
        f.write(
            f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n[auth]\nsecret = "{secret}"\n{key}\n'
            f'[store]\npath = "{folder}/chatd.sqlite3"\n\n[relay]\nurl = ""\n\n'
            f"[limits]\nmax_unauthenticated_per_ip = 1000\n{more}\n"
        )
    return path
