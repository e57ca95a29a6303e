"""Pathdreamer-style world model: point-cloud memory (``memory``) and its re-projection into
guidance images (``reproject``)."""
