"""Detection maths (pure and deterministic): event-time buckets, the brand's memory, the detector.

The same code runs in the live alerter and in offline backtests.
Imports only :mod:`crisiswatch.contracts`.
"""
