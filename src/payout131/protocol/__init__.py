"""Bank 131's wire protocol: field rules, requests decoded into checked values, rendering.

``validation`` holds the field rules (BIK, account control key, INN, KPP, purpose, amounts),
``payout_request`` turns a partner's payout fields into a checked instruction, ``wire``
renders sessions, payouts and webhook bodies in the v1 and v2 spellings, and ``openapi``
describes the whole API.
"""
