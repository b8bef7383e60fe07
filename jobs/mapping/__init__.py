"""Your own tables through a mapping file: any source in CSV, JSON lines, Parquet or Delta onto the five input tables.

``spec`` reads and checks the file, ``sources`` reads and parses the source files, ``tables``
builds the input tables with Spark SQL, and ``ingest`` lands them with their quarantine.
"""
