"""Portrait's jobs: thin drivers that read tables, apply pure transformations and write tables."""
