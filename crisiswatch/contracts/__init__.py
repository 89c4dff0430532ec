"""The wire contracts: message schemas and topic names, and nothing else.

Every other package may import this one; it imports none of ours.
"""
