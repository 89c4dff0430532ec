"""Dynamic int8 quantisation of an exported ONNX graph, for the sentiment models' ONNX engine.

The encoder's own graphs are written already quantised (:mod:`.onnx_graph`).
"""

from __future__ import annotations

import logging
from pathlib import Path


def quantise_weights(source: Path, target: Path) -> None:
    """Rewrite the graph's matrix multiplications with int8 weights, one scale per output channel.

    Activations are quantised on the fly per batch (dynamic quantisation), so
    no calibration data is needed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    root.addFilter(_without_preprocessing_advice)
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.removeFilter(_without_preprocessing_advice)


def _without_preprocessing_advice(record: logging.LogRecord) -> bool:
    """Drop the quantiser's advice to pre-process the graph, which concerns static (calibrated) quantisation."""
    return "pre-processing before quantization" not in record.getMessage()
