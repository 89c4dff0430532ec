"""The ``crisiswatch`` command: every service, the embedded broker, the demo and the model tools."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import typer

from crisiswatch.alerter.main import cli as alerter_cli
from crisiswatch.contracts.logs import configure_logging
from crisiswatch.contracts.topics import Topics
from crisiswatch.listener.main import cli as listener_cli

app = typer.Typer(help="crisiswatch: real-time social-listening crisis detection.", no_args_is_help=True)
app.add_typer(listener_cli, name="listener")
app.add_typer(alerter_cli, name="alerter")

try:
    from crisiswatch.classifier.main import classify, model_cli
    from crisiswatch.classifier.main import cli as classifier_cli
except ImportError as missing:  # the listener and alerter install without the model stack
    _missing_model_stack = str(missing)

    @app.command(
        "classifier", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
    )
    def classifier_unavailable() -> None:
        """Unavailable: install the model extra (pip install 'crisiswatch[model]')."""
        raise typer.BadParameter(f"the classifier needs the model extra: {_missing_model_stack}")
else:
    app.add_typer(classifier_cli, name="classifier")
    app.add_typer(model_cli, name="model")
    app.command("classify")(classify)


@app.command()
def broker(
    host: str = "127.0.0.1",
    port: int = 9092,
    partitions: Annotated[int, typer.Option(min=1, help="partitions per topic")] = 1,
    topic_prefix: str = "",
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu) and create the topics; Ctrl-C stops it."""
    from crisiswatch.broker import EmbeddedBroker

    configure_logging("INFO")
    log = logging.getLogger("crisiswatch.broker")
    with EmbeddedBroker(host, port, partitions, Topics(topic_prefix)) as running:
        log.info("broker listening; Ctrl-C stops it", extra={"bootstrap_servers": running.bootstrap_servers})
        try:
            while running.is_running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@app.command()
def demo(
    speed: Annotated[float, typer.Option(help="scenario minutes per wall second × 60")] = 600.0,
    port: Annotated[int, typer.Option(help="broker port; 0 picks a free one")] = 0,
) -> None:
    """Run broker, listener, classifier and alerter on the built-in scenario and show the alert."""
    from crisiswatch.demo import run_demo

    raise typer.Exit(run_demo(speed=speed, port=port))


def main() -> None:
    """Console entry point."""
    app()
