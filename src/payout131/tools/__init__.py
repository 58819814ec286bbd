"""Tools around the product: the benchmark, the crash test, the demo, a private PostgreSQL.

They drive payout131 from outside (its CLI, its HTTP API, its database) and the product
imports nothing from here; ``payout131 bench``, ``chaos`` and ``demo`` load them when run.
"""
