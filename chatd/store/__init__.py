"""Persistence: the store is the truth; everything else is a cache or a relay."""
