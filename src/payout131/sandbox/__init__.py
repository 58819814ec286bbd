"""The sandbox: test clocks, advancing them, and forcing the simulator's outcomes
(docs/sandbox.md). Only a server in sandbox mode (``PAYOUT131_MODE``, the default) offers it."""
