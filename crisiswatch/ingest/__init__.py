"""Turning outside records into mentions: field mapping, timestamps, brand matching, file sources.

Also the synthetic traffic generator that demos, benchmarks and evaluations replay.
Imports only :mod:`crisiswatch.contracts`.
"""
