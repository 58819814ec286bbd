"""The partner SDK: a client for Bank 131's payout API and webhook verification."""
