"""Packaged default configuration (the Northshire demo area's agency registry)."""
