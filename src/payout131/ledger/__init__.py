"""The double-entry ledger: integer kopecks, balanced transactions, holds; the money rules.

``accounts`` (the accounts and their balances), ``book`` (the only writer of transactions,
entries and holds) and ``check`` (everything recomputed from the entries). The database
refuses what does not add up: see docs/architecture.md, "Where each rule is enforced".
"""
