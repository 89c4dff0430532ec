"""Classifier service: scores the sentiment of brand mentions with a transformer model.

Consumes ``mentions.raw``, batches mentions, runs the model and produces
``mentions.scored`` keyed by brand. Runs on CPU or GPU; see ``settings.py``.
"""
