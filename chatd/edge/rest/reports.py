"""REST: reports for the host platform and staff (the figures are chatd.responses')."""

from __future__ import annotations

from aiohttp import web

from chatd.edge.keys import CHAT
from chatd.edge.rest.common import ApiKey, int_param, json_response, principal
from chatd.errors import BadRequest, Forbidden
from chatd.responses import Report
from chatd.wire import ID_CHARS

_PARAMS = frozenset({"supplier", "sales_rep", "days"})


class ResponseTimesJson(Report):
    supplier: str | None
    sales_rep: str | None


async def get_response_times(request: web.Request) -> web.Response:
    """First-response times of a supplier's or a sales rep's orders (api key or staff)."""
    who = principal(request)
    if not isinstance(who, ApiKey) and who.role != "staff":
        raise Forbidden("api key or staff required")
    q = request.query
    unknown = sorted(set(q) - _PARAMS)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]}: the report takes days, supplier and sales_rep")
    who_for = {k: q.get(k) or None for k in ("supplier", "sales_rep")}
    for name, value in who_for.items():
        if value is not None and len(value) > ID_CHARS:
            raise BadRequest(f"{name} must be at most {ID_CHARS} characters")
    days = int_param(request, "days")
    if days is None:  # absent: the default (0 is refused, as any value but 7, 30 and 90)
        days = 30
    report = await request.app[CHAT].response_report(who_for["supplier"], who_for["sales_rep"], days)
    answer: ResponseTimesJson = {"supplier": who_for["supplier"], "sales_rep": who_for["sales_rep"], **report}
    return json_response(answer)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/reports/response-times", get_response_times)
