"""chatd as an integrator installs it: a wheel built the way a release is, in a venv of its own.

The sdist and the wheel are built with `python -m build` (sdist first, the wheel from it, so
both carry web/), installed with --no-deps into a fresh venv that borrows this venv's
dependencies through a .pth line (no download), and `chatd demo` runs from a directory with no
checkout in sight: /widget.js and the demo page come from the installed package data.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from chatd.edge import static
from tests.support.procs import ROOT, free_port

WEB = ROOT / "web"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("chatd-*.whl")
    assert list(out.glob("chatd-*.tar.gz")), "the sdist is built too"
    return whl


def test_the_wheel_ships_web_and_complete_metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(z.read(meta_name))
        for f in WEB.iterdir():
            if f.is_file() and f.suffix in (".js", ".css", ".html"):
                assert f"chatd/web/{f.name}" in names
                assert z.read(f"chatd/web/{f.name}") == f.read_bytes()
    assert not [n for n in names if n.startswith("chatd/web/test/") or n.endswith(".json")], "no tests, no tsconfig"
    assert "chatd/client/py.typed" in names  # PEP 561 for the SDK
    assert "chatd/relay/lua/admit.lua" in names and "chatd/mail/templates/notification.txt" in names
    assert meta["Name"] == "chatd" and meta["Requires-Python"] == ">=3.11"
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "Framework :: aiohttp" in classifiers
    assert meta["Description-Content-Type"] == "text/markdown"


def test_an_installed_wheel_serves_the_widget_and_the_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # the dependencies from this venv, appended after the fresh venv's own site-packages
    (site / "deps-from-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_") and k != "PYTHONPATH"}
    where = subprocess.run(
        [str(py), "-c", "import chatd.edge.static as s; print(s.__file__); print(s.web_dir())"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert where[0].startswith(str(site)), "chatd is imported from the wheel, not the checkout"
    assert where[1] == str(site / "chatd" / "web")

    port = free_port()
    proc = subprocess.Popen(
        [str(venv / "bin" / "chatd"), "demo", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        line = ""
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "(buyer): " in line or not line:
                break
        assert "(buyer): " in line, f"no demo link printed; exit code {proc.poll()}"
        demo_url = re.search(r"(http://\S+/demo\?\S+)", line)
        assert demo_url is not None
        while True:  # the links are printed at start-up, just before the port is bound
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "chatd demo did not start"
                time.sleep(0.1)
        with urllib.request.urlopen(base + "/widget.js", timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/javascript")
            parts = [(WEB / n).read_bytes() for n in static.FILES["/widget.js"][0]]
            assert r.read() == b"\n".join(parts)
        with urllib.request.urlopen(demo_url.group(1), timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
            assert r.read() == (WEB / "demo.html").read_bytes()
        for path, name in (("/widget.css", "widget.css"), ("/demo/demo.js", "demo.js")):
            with urllib.request.urlopen(base + path, timeout=10) as r:
                assert r.read() == (WEB / name).read_bytes()
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
