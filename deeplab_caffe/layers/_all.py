"""Imports every layer module so that each registers its type (add new modules here)."""
# noqa: F401
