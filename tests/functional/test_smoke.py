BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis


async def test_send_receive_ack(server):

    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    j = await buyer.join("o1")
    assert j["last_seq"] == 0 and j["status"] == "open"
    await supplier.join("o1")
    ack = await buyer.post("o1", "hello")
    assert ack["type"] == "ack" and ack["seq"] == 1 and ack["duplicate"] is False
    m = await supplier.expect("message", order="o1")
    assert m["text"] == "hello" and m["sender"] == {"id": "buyer1", "name": "Buyer1", "role": "buyer"}
    u = await supplier.expect("unread", order="o1")
    assert u["count"] == 1 and u["total"] == 1
