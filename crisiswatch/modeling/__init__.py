"""Model tooling beside the classifier service: labelled-data reading, fine-tuning, evaluation, and their commands.

``crisiswatch classify`` and ``crisiswatch model train|eval`` live in :mod:`.cli`.
Imports :mod:`crisiswatch.sentiment`; no service imports it.
"""
