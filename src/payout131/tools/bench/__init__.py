"""``payout131 bench``: end-to-end payout throughput and latency against the machine's limits.

``harness`` runs the server and the phases, ``load`` is the separate load process (with its
``receiver`` for webhooks and its ``connections``), ``ceilings`` and ``cluster`` measure the
storage ceiling, ``bound`` what any server could carry here given what those cost in CPU,
``usage`` reads CPU and memory from ``/proc``, ``partners`` registers and preloads,
``report`` judges and prints. See docs/benchmarks.md.
"""
