"""The OpenAPI 3.1 document (chatd/edge/rest/openapi.py): served at /api/v1/openapi.json, the
copy in docs/ current, every route in it, and schemathesis run against a live chatd over every
route with the api key and with a JWT: no server error, no answer outside the document."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path

import aiohttp
import msgspec

from chatd.edge.rest import openapi
from tests.support.client import API_KEY, token
from tests.support.procs import ROOT, ServerProc, child_env

COPY = ROOT / "docs" / "openapi.json"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
NOT_REST = {
    *("/ws", "/widget.js", "/session.js", "/widget.css"),
    *("/demo", "/demo/demo.js", "/demo/demo.css", "/demo/orders", "/demo/orders.js"),
    *("/console", "/console/console.js", "/console/console.css"),
}


def test_the_copy_in_docs_is_current():
    assert COPY.read_bytes() == openapi.encoded(), "run: chatd openapi > docs/openapi.json"
    doc = json.loads(COPY.read_text())
    assert doc["openapi"] == "3.1.0"
    # request bodies are the Structs the routes decode: unknown fields refused there too
    body = doc["components"]["schemas"]["OrderBody"]
    assert body["additionalProperties"] is False and "buyer" in body["properties"]


async def test_every_route_is_documented_and_served(server):
    app = server.app
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None and r.resource.canonical not in NOT_REST
    }
    doc = openapi.document()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    async with aiohttp.ClientSession() as s, s.get(server.base + openapi.PATH) as r:
        assert r.status == 200 and r.content_type == "application/json"
        assert msgspec.json.decode(await r.read()) == doc


async def _seed(proc: ServerProc) -> None:
    """Orders, messages and an attachment, so the fuzzed ids sometimes exist."""
    api = {"Authorization": f"Bearer {API_KEY}"}
    people = {
        "buyer": {"id": "buyer1", "name": "B"},
        "supplier": {"id": "supplier1", "name": "S"},
        "sales_rep": {"id": "rep1", "name": "R"},
    }
    async with aiohttp.ClientSession() as s:
        for order in ("0", "00", "A-1"):
            async with s.put(f"{proc.base}/api/v1/orders/{order}", json=people, headers=api) as r:
                assert r.status in (200, 201)
            async with s.post(
                f"{proc.base}/api/v1/orders/{order}/messages", json={"client_id": "seed", "text": "hi"}, headers=api
            ) as r:
                assert r.status in (200, 201)


async def _schemathesis(proc: ServerProc, credential: str, workdir: Path) -> tuple[int, str]:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    run = await asyncio.create_subprocess_exec(
        st,
        "run",
        proc.base + openapi.PATH,
        "-H",
        f"Authorization: Bearer {credential}",
        "--checks",
        CHECKS,
        "--max-examples",
        "25",
        "--workers",
        "1",
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "15",
        "--no-color",
        cwd=workdir,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(run.communicate(), 600)
    return run.returncode or 0, out.decode()


async def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(tmp_path):
    proc = ServerProc(tmp_path)
    await proc.astart()
    try:
        await _seed(proc)
        for name, credential in (("api key", API_KEY), ("jwt", token("supplier1", "supplier"))):
            code, out = await _schemathesis(proc, credential, tmp_path)
            n = len(openapi.OPERATIONS) - 1  # every operation but the document's own, which schemathesis skips
            assert code == 0 and f"{n}/{n}" in out and f"Tested: {n}" in out, (
                f"{name}:\n{out[out.find('FAILURES') :][:8000]}"
            )
            assert "failure" not in out.split("SUMMARY")[-1], out
    finally:
        proc.stop()
    # no traceback through chatd's code (aiohttp logs the malformed requests it refuses itself,
    # e.g. schemathesis' probe of a NUL in a header, with its parser's traceback)
    log = proc.log()
    assert not re.search(r'File "[^"]*/chatd/', log), log[-4000:]
