"""Scoring and using trained models: the one evaluation path, metrics, per-image records,
enhancing images and files, and the cross-model table of several IPs and VRs (ESTR's table).
"""
