"""The Bank of Russia BIK directory: which banks exist and which may receive payouts.

``bik`` parses the official ED807 file and the CSV snapshot shipped in ``data/``;
``store`` keeps the directory in the database, where ``payout131 bik import`` replaces it.
"""
