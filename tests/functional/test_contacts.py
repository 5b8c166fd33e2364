"""Contact data (issue 13): participants carry e-mail, phone, locale and an avatar in
PUT /api/v1/orders and /buyers; avatars are shown with the participants, while
e-mail and phone never reach anyone over the socket or REST."""

from __future__ import annotations

import json

import pytest

from tests.support.client import request, token

BACKENDS = ("single", "cluster")

EMAILS = ("bea@buyer.example", "sam@supplier.example", "rita@rep.example", "+49 30 555 0101", "+1 212 555 0199")


def person(pid: str, name: str, email: str, phone: str | None = None, **kw) -> dict:
    return {"id": pid, "name": name, "email": email, **({"phone": phone} if phone else {}), **kw}


async def test_avatars_are_shown_and_contact_details_are_never_sent(server):
    body = {
        "buyer": person("buyer1", "Bea", EMAILS[0], EMAILS[3], locale="de-DE", avatar_url="https://cdn.example/b.png"),
        "supplier": person("supplier1", "Sam", EMAILS[1], EMAILS[4], avatar_url="https://cdn.example/s.png"),
        "sales_rep": person("rep1", "Rita", EMAILS[2]),
    }
    st, o = await server.api("PUT", "/api/v1/orders/C-1", body)
    assert st == 201, o
    clients = {}
    for role, user in (("buyer", "buyer1"), ("supplier", "supplier1"), ("sales_rep", "rep1"), ("staff", "staff1")):
        c = await server.client(user, role)
        j = await c.join("C-1")
        avatars = {p["id"]: p["avatar_url"] for p in j["participants"]}
        assert avatars == {
            "buyer1": "https://cdn.example/b.png",
            "supplier1": "https://cdn.example/s.png",
            "rep1": None,
        }
        clients[role] = c
    for role, c in clients.items():
        ack = await request(
            c, {"type": "send", "order": "C-1", "client_id": f"m-{role}", "text": f"hi from {role}"}, "ack"
        )
        assert ack["type"] == "ack"
    st, rep = await server.api(
        "PUT",
        "/api/v1/buyers/buyer1",
        {
            "sales_rep": person("rep2", "Ron", "ron@rep.example", avatar_url="https://cdn.example/r.png"),
            "contact": {"email": "bea.new@buyer.example"},
        },
    )
    assert st == 200, rep
    st, _ = await server.api("PUT", "/api/v1/orders/C-1", {"status": "packed"})
    answers = [json.dumps(f) for c in clients.values() for f in c.frames]
    for auth in (None, token("staff1", "staff"), token("buyer1", "buyer"), token("supplier1", "supplier")):
        kw = {} if auth is None else {"auth": auth}
        for path in ("/api/v1/orders/C-1", "/api/v1/orders/C-1/messages", "/api/v1/threads"):
            st, data = await server.api("GET", path, **kw)
            answers.append(json.dumps(data) if not isinstance(data, bytes) else data.decode())
    every = "\n".join(answers + [json.dumps(o), json.dumps(rep)])
    for secret in (*EMAILS, "bea.new@buyer.example", "ron@rep.example"):
        assert secret not in every, secret
    assert "https://cdn.example/b.png" in every  # the avatars are there


@pytest.mark.parametrize(
    "field,value",
    [
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("phone", "call me"),
        ("locale", "english please"),
        ("avatar_url", "javascript:alert(1)"),
        ("avatar_url", 'https://x.example/"onerror="x'),
        ("avatar_url", "data:image/png;base64,AAAA"),
    ],
)
async def test_bad_contact_fields_are_refused(server, field, value):
    body = {"buyer": {"id": "b", "name": "B", field: value}, "supplier": {"id": "s", "name": "S"}}
    st, err = await server.api("PUT", "/api/v1/orders/C-2", body)
    assert st == 400 and err["error"]["code"] == "bad_request", (field, value)
    st, _ = await server.api("GET", "/api/v1/orders/C-2")
    assert st == 404  # nothing stored
