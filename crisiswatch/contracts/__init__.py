"""The contracts every service speaks: message schemas, topic names, Kafka, metrics and logging helpers.

This package is the only code the services share; they never import each other.
"""
