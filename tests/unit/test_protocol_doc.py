"""docs/protocol.md is the wire contract: it must name everything the code speaks.

The document's convention, which this test parses:

* `## Client frames` and `## Server frames` hold one `### \\`<type>\\`` subsection
  per frame tag, with a table row per field (`` `field` `` and its bounds) and
  a ```json example that decodes as that frame;
* `## Errors` has a row per error code with its HTTP status, `## Close codes`
  a row per close code;
* `## Limits` has a row per `[limits]` and `[attachments]` setting with its
  default;
* every route of the app has a `### \\`METHOD /path\\`` heading (REST routes
  under `## REST`).

Routes are read from the app's router, so moving a handler between modules
does not matter; only adding one without documenting it does.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec
import pytest

from chatd import errors, wire
from chatd.app import create_app
from chatd.config import AttachmentsConfig, Config, LimitsConfig, WebhooksConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
TEXT = DOC.read_text(encoding="utf-8")


def _sections(text: str) -> dict[str, tuple[str, dict[str, str]]]:
    """`## title` -> (its whole body, {`### title`: body}), fenced code kept in the bodies."""
    out: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    h2 = h3 = None
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            h2, h3 = line[3:].strip(), None
            out[h2] = ([], {})
            continue
        if not fenced and line.startswith("### ") and h2 is not None:
            h3 = line[4:].strip()
            out[h2][1][h3] = []
            continue
        if h2 is None:
            continue
        out[h2][0].append(line)
        if h3 is not None:
            out[h2][1][h3].append(line)
    return {k: ("\n".join(body), {t: "\n".join(b) for t, b in subs.items()}) for k, (body, subs) in out.items()}


SECTIONS = _sections(TEXT)


def _section(prefix: str) -> tuple[str, dict[str, str]]:
    """The first `## ` section whose title starts with `prefix` (empty if none)."""
    found = [v for k, v in SECTIONS.items() if k.lower().startswith(prefix.lower())]
    return found[0] if found else ("", {})


REQUIRED = ["Client frames", "Server frames", "Errors", "Close codes", "Limits", "REST", "Webhooks"]


@pytest.mark.parametrize("prefix", REQUIRED)
def test_the_sections_this_test_reads_exist(prefix):
    assert any(k.lower().startswith(prefix.lower()) for k in SECTIONS), f"no '## {prefix}' section"


def _frame_subsections(prefix: str) -> dict[str, str]:
    """frame tag -> subsection body, from headings like ### `join`."""
    out = {}
    for title, body in _section(prefix)[1].items():
        m = re.fullmatch(r"`([a-z_]+)`.*", title)
        if m:
            out[m.group(1)] = body
    return out


def _tag(cls) -> str:
    return cls.__struct_config__.tag


CLIENT = {_tag(c): c for c in typing.get_args(wire.ClientFrame)}
SERVER = {_tag(c): c for c in typing.get_args(wire.ServerFrame)}
CLIENT_DOC = _frame_subsections("Client frames")
SERVER_DOC = _frame_subsections("Server frames")


def _mentions(body: str, name: str) -> bool:
    """`name`, `name?` or `[section] name` in backticks."""
    return re.search(r"`(\[\w+\] )?" + re.escape(name) + r"\??`", body) is not None


def _lines_naming(body: str, name: str) -> list[str]:
    return [line for line in body.splitlines() if _mentions(line, name)]


def _structs_in(t) -> list:
    """The msgspec StructTypes inside a field type (through Optional, lists, unions)."""
    if isinstance(t, msgspec.inspect.StructType):
        return [t]
    if isinstance(t, msgspec.inspect.UnionType):
        return [s for u in t.types for s in _structs_in(u)]
    if isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)):
        return _structs_in(t.item_type)
    return []


def _number_forms(n) -> list[str]:
    if n == wire.MAX_INT:
        return ["2^63-1"]
    if n == wire.MAX_LIMIT:
        return ["2^31-1"]
    if isinstance(n, float):
        return [f"{n:g}", f"{n:,g}", f"{n:,.0f}" if n.is_integer() else f"{n:g}"]
    return [str(n), f"{n:,}"]


def _has_number(line: str, n) -> bool:
    return any(re.search(r"(?<![\d.,^])" + re.escape(form) + r"(?![\d]|[.,]\d)", line) for form in _number_forms(n))


# --- frames -----------------------------------------------------------------


def test_every_client_frame_is_documented_and_every_documented_one_exists():
    assert set(CLIENT) == set(CLIENT_DOC), (
        f"undocumented: {sorted(set(CLIENT) - set(CLIENT_DOC))}; "
        f"not in wire.py: {sorted(set(CLIENT_DOC) - set(CLIENT))}"
    )


def test_every_server_frame_is_documented_and_every_documented_one_exists():
    assert set(SERVER) == set(SERVER_DOC), (
        f"undocumented: {sorted(set(SERVER) - set(SERVER_DOC))}; "
        f"not in wire.py: {sorted(set(SERVER_DOC) - set(SERVER))}"
    )


FRAMES = [("client", tag, CLIENT[tag], CLIENT_DOC.get(tag, "")) for tag in CLIENT] + [
    ("server", tag, SERVER[tag], SERVER_DOC.get(tag, "")) for tag in SERVER
]


@pytest.mark.parametrize("side,tag,cls,body", FRAMES, ids=[f"{s}-{t}" for s, t, _, _ in FRAMES])
def test_every_field_is_named_in_its_frame_subsection(side, tag, cls, body):
    """Fields of the frame, and of the untagged values inside it (a message is a frame of its own)."""
    missing = []
    todo = [msgspec.inspect.type_info(cls)]
    seen = set()
    while todo:
        info = todo.pop()
        if info.cls in seen:
            continue
        seen.add(info.cls)
        for field in info.fields:
            if not _mentions(body, field.name):
                missing.append(f"{info.cls.__name__}.{field.name}")
            todo += [s for s in _structs_in(field.type) if s.cls.__struct_config__.tag is None]
    assert not missing, f"{side} frame {tag!r}: fields not named (as `field`) in its subsection: {missing}"


def _bounds(t) -> list:
    """The numeric bounds a client field's type carries (string lengths, integer ranges, list sizes)."""
    out = []
    if isinstance(t, msgspec.inspect.UnionType):
        return [b for u in t.types for b in _bounds(u)]
    for attr in ("min_length", "max_length", "ge", "le"):
        value = getattr(t, attr, None)
        if value is not None:
            out.append(value)
    if isinstance(t, msgspec.inspect.ListType):
        out += _bounds(t.item_type)
    return out


CLIENT_FIELDS = [
    (tag, f.name, _bounds(f.type))
    for tag, cls in CLIENT.items()
    for f in msgspec.inspect.type_info(cls).fields
    if _bounds(f.type)
]


@pytest.mark.parametrize("tag,field,bounds", CLIENT_FIELDS, ids=[f"{t}.{f}" for t, f, _ in CLIENT_FIELDS])
def test_client_field_bounds_are_stated_on_the_fields_row(tag, field, bounds):
    lines = _lines_naming(CLIENT_DOC.get(tag, ""), field)
    missing = [b for b in bounds if not any(_has_number(line, b) for line in lines)]
    assert not missing, f"`{tag}.{field}`: bounds {missing} not stated on a line naming the field"


def _json_examples(body: str) -> list[str]:
    return re.findall(r"```json\n(.*?)```", body, flags=re.S)


def _objects(block: str) -> list[str]:
    """An example block holds one (pretty-printed) JSON object, or one object per line."""
    try:
        msgspec.json.decode(block)
        return [block]
    except msgspec.DecodeError:
        return [line for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("tag", sorted(CLIENT))
def test_client_frame_example_decodes_as_that_frame(tag):
    examples = _json_examples(CLIENT_DOC.get(tag, ""))
    assert examples, f"client frame {tag!r} has no ```json example"
    for raw in examples:
        for one in _objects(raw):
            assert isinstance(wire.decoder.decode(one), CLIENT[tag]), one


@pytest.mark.parametrize("tag", sorted(SERVER))
def test_server_frame_example_decodes_as_that_frame(tag):
    examples = _json_examples(SERVER_DOC.get(tag, ""))
    assert examples, f"server frame {tag!r} has no ```json example"
    for raw in examples:
        for one in _objects(raw):
            assert isinstance(wire.server_decoder.decode(one), SERVER[tag]), one


# --- errors, close codes, limits ------------------------------------------------


def _error_codes() -> set[str]:
    codes = set(errors.HTTP_STATUS)
    todo = [errors.ChatError]
    while todo:
        cls = todo.pop()
        codes.add(cls.code)
        todo += cls.__subclasses__()
    return codes


@pytest.mark.parametrize("code", sorted(_error_codes()))
def test_every_error_code_has_a_row_with_its_http_status(code):
    body = _section("Errors")[0]
    rows = [line for line in _lines_naming(body, code) if line.startswith("|")]
    assert rows, f"error code {code!r} has no row in '## Errors'"
    status = errors.HTTP_STATUS[code]
    assert any(_has_number(row, status) for row in rows), f"{code!r}: HTTP {status} not on its row"


@pytest.mark.parametrize("code", list(errors.CloseCode), ids=lambda c: str(int(c)))
def test_every_close_code_has_a_row(code):
    body = _section("Close codes")[0]
    assert re.search(rf"^\|\s*`?{int(code)}`?\s*\|", body, flags=re.M), f"close code {int(code)} has no row"


LIMITS = [("limits", f, getattr(LimitsConfig(), f)) for f in LimitsConfig.__struct_fields__] + [
    ("attachments", f, getattr(AttachmentsConfig(), f))
    for f in AttachmentsConfig.__struct_fields__
    if isinstance(getattr(AttachmentsConfig(), f), (int, float))
]


@pytest.mark.parametrize("section,key,default", LIMITS, ids=[f"{s}.{k}" for s, k, _ in LIMITS])
def test_every_limit_has_a_row_with_its_default(section, key, default):
    body = _section("Limits")[0]
    rows = [line for line in _lines_naming(body, key) if line.startswith("|")]
    assert rows, f"[{section}] {key} has no row in '## Limits'"
    assert any(_has_number(row, default) for row in rows), f"[{section}] {key}: default {default} not on its row"


@pytest.mark.parametrize("key", WebhooksConfig.__struct_fields__)
def test_every_webhook_setting_is_named(key):
    assert _mentions(_section("Webhooks")[0], key), f"[webhooks] {key} not named in '## Webhooks'"


# --- routes ------------------------------------------------------------------------


def _app_routes() -> set[tuple[str, str]]:
    app = create_app(Config())  # routes are registered here; nothing is opened until startup
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}


ROUTE_IN_HEADING = re.compile(r"`(GET|PUT|POST|DELETE|PATCH|OPTIONS) (/[^`\s]*)`")


def _documented_routes(headings) -> set[tuple[str, str]]:
    return {m.groups() for h in headings for m in ROUTE_IN_HEADING.finditer(h)}


def test_every_route_of_the_app_has_a_heading():
    headings = [line for line in TEXT.splitlines() if line.startswith("### ")]
    missing = _app_routes() - _documented_routes(headings)
    assert not missing, f"routes without a '### `METHOD /path`' heading: {sorted(missing)}"


def test_every_documented_rest_route_exists():
    documented = _documented_routes(_section("REST")[1])
    assert documented, "no '### `METHOD /path`' headings under '## REST'"
    extra = documented - _app_routes()
    assert not extra, f"documented but not registered by create_app: {sorted(extra)}"


def test_no_pointer_to_a_contract_outside_the_repository():
    assert "shared/spec" not in TEXT
