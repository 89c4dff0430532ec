"""Alerter service: turns scored mentions into crisis incidents and tells the service team.

A faust-streaming app: per-brand event-time buckets and the detector state live
in changelogged tables; incident events go to ``crisis.alerts`` first (the
durable record), and a second agent delivers them to Slack, or to the console
and a JSONL file when Slack is not configured.
"""
