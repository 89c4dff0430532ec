"""Runtime plumbing the services share: Kafka clients, the metrics server, logs, signals, retries.

Imports only :mod:`crisiswatch.contracts`.
"""
