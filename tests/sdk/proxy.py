"""A TCP relay between a client and the server that a test can steer: refuse
new connections, cut the open ones, swallow the server's replies, and tell
how many bytes the client has sent. It is how a test loses an ack on purpose."""

from __future__ import annotations

import asyncio


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.refuse = False  # new connections are closed at once
        self._muted: set[asyncio.StreamWriter] = set()  # clients the server's bytes no longer reach
        self.upstream_bytes = 0  # bytes the clients have sent, in total
        self._sent = asyncio.Condition()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        if self.refuse:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        tasks = [
            asyncio.create_task(self._pump(reader, up_writer, upstream=True)),
            asyncio.create_task(self._pump(up_reader, writer, upstream=False)),
        ]
        self._tasks.update(tasks)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        self._close(pair)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
        self._tasks.discard(asyncio.current_task())

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
        try:
            while data := await src.read(65536):
                if upstream:
                    dst.write(data)
                    async with self._sent:
                        self.upstream_bytes += len(data)
                        self._sent.notify_all()
                elif dst not in self._muted:
                    dst.write(data)
        except (ConnectionError, OSError):
            pass

    def mute(self) -> None:
        """From now on, nothing the server says on the open connections reaches
        their clients, even bytes already read; later connections are not muted."""
        self._muted.update(client for client, _ in self._pairs)

    def _close(self, pair) -> None:
        self._pairs.discard(pair)
        for w in pair:
            w.close()

    def cut(self) -> None:
        """Close every open connection (both sides)."""
        for pair in list(self._pairs):
            self._close(pair)

    async def sent_more_than(self, n: int, timeout: float = 10.0) -> None:
        """Wait until the clients have sent more than `n` bytes in total."""
        async with asyncio.timeout(timeout):
            async with self._sent:
                await self._sent.wait_for(lambda: self.upstream_bytes > n)

    async def aclose(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
