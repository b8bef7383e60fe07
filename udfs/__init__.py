"""Code that runs inside Spark's Python workers. Self-contained: never imports ``jobs``."""
