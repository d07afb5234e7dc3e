"""Readers for real logs nobody here generated: Census-Income (KDD), the Open Bandit Dataset and
AliExpress in its published per-country layout. Each returns plain frames with the source's own
columns cleaned, its task labels, and a documented split; the files are only read, never changed.
"""
