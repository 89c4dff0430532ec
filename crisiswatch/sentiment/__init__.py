"""The sentiment model: loading (PyTorch or ONNX Runtime), text preparation, batching, scoring.

The classifier service serves it; the model tooling trains and evaluates it.
Imports only :mod:`crisiswatch.contracts`.
"""
