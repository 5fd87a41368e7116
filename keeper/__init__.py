"""Liquidation keeper."""
