"""Adapters that map real public datasets into Portrait's input schemas."""
