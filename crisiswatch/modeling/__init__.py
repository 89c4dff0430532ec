"""Model tooling beside the classifier service: labelled-data reading, fine-tuning, evaluation.

Imports :mod:`crisiswatch.sentiment`; no service imports it.
"""
