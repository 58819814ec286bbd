"""Tokenized bank accounts: the tokens partners pay to, and the vault that seals the numbers.

``account_tokens`` (tokens and public tokens for the widget), ``vault`` (AES-256-GCM at
rest, a key ring) and ``rotation`` (re-sealing everything under a new key).
"""
