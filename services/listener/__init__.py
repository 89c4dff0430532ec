"""Listener service: brings brand mentions in, validates and normalises them, and produces them.

Sources: a recorded JSONL/CSV file (replayed with its timing scaled), the
synthetic scenario generator, and an HTTP ingest endpoint. Every input becomes
either a ``Mention`` on ``mentions.raw`` or a ``DeadLetter`` on ``mentions.dlq``.
"""
