"""An aiohttp app served for real on 127.0.0.1 from a thread of its own: the peer that stubs of outside services use."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class ThreadedServer:
    """Serves one aiohttp application on ``127.0.0.1:port`` until :meth:`stop`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    def start(self, app: web.Application) -> ThreadedServer:
        """Serve ``app`` from a daemon thread; returns once the port accepts connections (at most 10 s)."""
        ready = threading.Event()

        def serve() -> None:
            self._runner = web.AppRunner(app)
            self.loop.run_until_complete(self._runner.setup())
            self.loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Close the connections and the listening socket, then stop the loop."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
