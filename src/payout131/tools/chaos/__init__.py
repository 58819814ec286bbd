"""The crash test (``payout131 chaos``): load, SIGKILLs and database crashes, then proof.

A run starts ``payout131 serve`` as a child process on a fresh home, registers partners that
pay in both flows (single request, and two-step confirmed or cancelled from the
``ready_to_confirm`` webhook by the harness's own receiver), drives load over HTTP, and kills
the server with SIGKILL at random moments (or, in the second mode, stops PostgreSQL
abruptly), restarting it each time. When the load stops and the server has caught up, it
proves from the database, the rail's records and the receiver's log that nothing was lost
and nothing happened twice (``verify``). The random choices come from one seed, printed at
the start, so a failing run can be repeated. See docs/reliability.md.
"""
