"""``payout131 demo``: a server, a demo partner and its receiver walking the seed flows."""
