"""payout131: a self-hostable payout server speaking Bank 131's partner payout API."""
