"""Payout sessions and their payouts: the state machine and the use cases that move it.

``states`` (the statuses and every allowed move, as data), ``records`` (the rows as typed
values), ``store`` (the one module that reads and writes them), and one module per use
case, each written once for a group of calls (a single call is a group of one):
``opening`` (create, start, init), ``answers`` (confirm, cancel), ``checks`` (the check
step: ready_to_confirm), ``outcomes`` (success, failure, trouble, refund, and the rail's
news), ``reads`` (status). ``fees`` is the bank's fee on a payout.
"""
