"""With Sense studio pipeline: one module per stage, each reading and writing named DuckDB tables."""
