"""Sending: the transaction manager (journal first, nonces, fees, replacement, cancellation,
reconciliation with the chain) and its fee policy."""
