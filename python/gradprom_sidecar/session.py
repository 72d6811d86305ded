"""Placeholder until the compute session lands."""
