"""Webhooks: durable, signed, ordered delivery of the outbox's events to partners.

``schedule`` (pure retry policy), ``outbox`` (claiming and recording, in SQL), ``sender``
(the HTTP seam), ``dispatcher`` (the async delivery loop), ``history`` (what operators
read) and ``metrics`` (Prometheus). Import the module you need; this package imports
nothing, so settings can read the schedule without loading the HTTP client.
"""
