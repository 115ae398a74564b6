"""Offline evaluation: splits and ranking metrics. Never imports a model.

Splits and metrics follow ``PROTOCOL.md`` so numbers compare with the peers' numbers.
"""
