"""Kafka access: the SASL/TLS settings, and that every client we build logs in with them.

The embedded broker (Tansu 0.6) enforces SCRAM when started with
``--authentication``, but its ``tansu user create`` cannot authenticate, so
no user can be provisioned on such a broker (and its in-memory storage cannot
be shared with an open broker that could). These tests therefore prove the
half a local broker can: an authenticating broker refuses a client without
credentials and an unknown user, and every client factory (and the faust
app's credentials) offers SCRAM-SHA-512 with the configured user, as seen on
the wire by a byte relay in front of the broker. A successful login with the
right password is left to the cluster (Strimzi); the manifests that set it up
are checked in tests/unit/test_operations.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import certifi
import pytest
from aiokafka import AIOKafkaProducer
from faust import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from crisiswatch.runtime.broker import free_port, tansu_binary
from crisiswatch.runtime.kafka import (
    KafkaSettings,
    ensure_topics,
    faust_credentials,
    make_consumer,
    make_producer,
    partition_count,
)

USER = "crisiswatch-listener"
PASSWORD = "not-the-listeners-password"
SCRAM = "SCRAM-SHA-512"


class Relay:
    """A TCP relay on 127.0.0.1 that forwards to ``target`` and keeps every byte the clients sent."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._sent = bytearray()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def sent(self) -> bytes:
        """Everything clients have sent so far."""
        with self._lock:
            return bytes(self._sent)

    def clear(self) -> None:
        """Forget what was sent so far."""
        with self._lock:
            self._sent.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, keep: bool) -> None:
        try:
            while data := source.recv(65536):
                if keep:
                    with self._lock:
                        self._sent += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop accepting and cut every relayed connection."""
        for open_socket in self._sockets:
            open_socket.close()


def _supports_authentication() -> bool:
    try:
        binary = tansu_binary()
    except RuntimeError:
        return False
    result = subprocess.run([binary, "broker", "--help"], capture_output=True, text=True, timeout=30)
    return "--authentication" in result.stdout


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    """A Tansu broker that requires SASL authentication, reached (and advertised) through a :class:`Relay`."""
    if not _supports_authentication():
        pytest.skip("the embedded broker has no --authentication option")
    port = free_port()
    relay = Relay(("127.0.0.1", port))
    broker = subprocess.Popen(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{relay.port}",
            "--storage-engine",
            "memory://tansu/",
            "--authentication",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            assert broker.poll() is None, "the broker exited before listening"
            assert time.monotonic() < deadline, "the broker did not listen within 30 s"
            time.sleep(0.05)
        yield relay
    finally:
        relay.close()
        broker.terminate()
        broker.wait(10)


def sasl_settings(relay: Relay, user: str = USER) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{relay.port}",
        security_protocol="SASL_PLAINTEXT",
        sasl_username=user,
        sasl_password=PASSWORD,
        connect_deadline_s=2,
    )


def logged_in_as(sent: bytes, user: str) -> bool:
    """Whether the bytes hold a SASL handshake for SCRAM-SHA-512 and a SCRAM client-first message for ``user``."""
    return SCRAM.encode() in sent and f"n={user},r=".encode() in sent


def test_sasl_needs_a_username_and_a_password() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_username=USER)
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_password=PASSWORD)


def test_credentials_or_a_ca_without_the_protocol_that_uses_them_are_refused() -> None:
    with pytest.raises(ValidationError, match="would never send them"):
        KafkaSettings(sasl_username=USER, sasl_password=PASSWORD)
    with pytest.raises(ValidationError, match="uses no TLS"):
        KafkaSettings(ssl_cafile=Path(certifi.where()))
    with pytest.raises(ValidationError):
        KafkaSettings(security_protocol="SASL_TLS", sasl_username=USER, sasl_password=PASSWORD)


def test_the_manifests_variables_configure_a_scram_login_and_never_show_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": SCRAM,
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": PASSWORD,
        "KAFKA_SSL_CAFILE": certifi.where(),
    }.items():
        monkeypatch.setenv(name, value)
    settings = KafkaSettings()
    assert settings.client_security() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": SCRAM,
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
        "ssl_cafile": certifi.where(),
    }
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())


def test_faust_gets_the_same_login_and_a_verifying_tls_context() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL", sasl_username=USER, sasl_password=PASSWORD, ssl_cafile=Path(certifi.where())
    )
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    options = credentials_to_aiokafka_auth(credentials)
    assert {key: options[key] for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username")} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": SCRAM,
        "sasl_plain_username": USER,
    }
    assert options["sasl_plain_password"] == PASSWORD
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs(), "the context trusts the configured CA bundle"

    assert faust_credentials(KafkaSettings()) is None
    tls_only = faust_credentials(KafkaSettings(security_protocol="SSL", ssl_cafile=Path(certifi.where())))
    assert isinstance(tls_only, SSLCredentials)
    assert credentials_to_aiokafka_auth(tls_only)["security_protocol"] == "SSL"


def test_an_authenticating_broker_refuses_a_client_without_credentials(relay: Relay) -> None:
    relay.clear()
    with pytest.raises(ConnectionError):
        make_producer(KafkaSettings(bootstrap_servers=f"127.0.0.1:{relay.port}", connect_deadline_s=2), "anonymous")
    assert relay.sent(), "the client reached the broker"
    assert SCRAM.encode() not in relay.sent()


@pytest.mark.parametrize(
    "connect",
    [
        lambda settings: make_producer(settings, "crisiswatch-listener"),
        lambda settings: make_consumer(settings, "crisiswatch-classifier", ["mentions.raw"], "crisiswatch-classifier"),
        lambda settings: ensure_topics(settings, ["mentions.raw"]),
        lambda settings: partition_count(settings, "mentions.raw"),
    ],
    ids=["producer", "consumer", "admin", "metadata"],
)
def test_every_client_logs_in_with_the_configured_scram_user_and_an_unknown_user_is_refused(
    relay: Relay, connect: Callable[[KafkaSettings], object]
) -> None:
    relay.clear()
    with pytest.raises(ConnectionError):
        connect(sasl_settings(relay))
    assert logged_in_as(relay.sent(), USER)


def test_the_faust_apps_credentials_log_in_with_the_configured_scram_user(relay: Relay) -> None:
    settings = sasl_settings(relay, user="crisiswatch-alerter")

    async def start() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.servers,
            request_timeout_ms=3000,
            **credentials_to_aiokafka_auth(faust_credentials(settings)),
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    relay.clear()
    with pytest.raises(Exception):  # noqa: B017 - aiokafka reports a refused SCRAM login as it parses it
        asyncio.run(asyncio.wait_for(start(), timeout=30))
    assert logged_in_as(relay.sent(), "crisiswatch-alerter")
