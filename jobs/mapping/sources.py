"""Reading a mapping's sources and parsing their columns; rows that fail are kept for quarantine, never dropped."""
from __future__ import annotations

import glob
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StringType, StructField, StructType

from jobs.clock import instant_from_local
from jobs.mapping.spec import Source, SourceColumn
from jobs.privacy import PseudonymKey, row_json
from jobs.validation.checks import MALFORMED_ROW, unparseable
from jobs.validation.validate import PARSE_ERROR, RAW_JSON

CORRUPT = "_corrupt_record"
SPARK_TYPES = {"string": "string", "int": "int", "long": "bigint", "double": "double", "boolean": "boolean",
               "timestamp": "timestamp", "date": "date"}
# Letters of a Spark datetime pattern that read a zone or offset: such a time is an instant already.
OFFSET_LETTERS = set("VzOXxZ")


def source_files(root: Path, source: Source, name: str) -> list[str]:
    """The files (or, for Delta, the table directory) a source names, relative to ``root``."""
    pattern = source.files if Path(source.files).is_absolute() else str(root / source.files)
    if source.format == "delta":
        if not (Path(pattern) / "_delta_log").is_dir():
            raise FileNotFoundError(f"sources.{name}: no Delta table at {pattern}")
        return [pattern]
    if source.format == "files":
        return [pattern]  # listed by Spark's executors, not on the driver
    found = sorted(p for p in glob.glob(pattern) if Path(p).is_file())
    if not found and Path(pattern).is_dir():
        found = sorted(str(p) for p in Path(pattern).iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    if not found:
        raise FileNotFoundError(f"sources.{name}: no files match {pattern}")
    return found


def _text_schema(columns: list[str]) -> StructType:
    """All-text columns plus the one Spark fills with lines it cannot split."""
    return StructType([StructField(c, StringType()) for c in columns] + [StructField(CORRUPT, StringType())])


def read_source(spark: SparkSession, source: Source, files: list[str]) -> DataFrame:
    """The source's rows: text columns for CSV and JSON lines (a malformed line keeps its text in
    ``_corrupt_record``), typed columns for Parquet and Delta."""
    if source.format == "csv":
        reader = (spark.read.option("header", source.header).option("sep", source.delimiter)
                  .option("encoding", source.encoding).option("multiLine", source.multiline).option("escape", '"'))
        fields = source.fields or reader.csv(files[0]).columns  # the header line only
        return (reader.schema(_text_schema(fields)).option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT).csv(files))
    if source.format == "jsonl":
        fields = source.fields or list(source.columns)
        return (spark.read.schema(_text_schema(fields)).option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT).json(files))
    if source.format == "files":
        # Spark lists the files (their content is never read: only the path column is selected).
        # DIR/**/NAME-GLOB looks under DIR at any depth, which lists far faster than a glob per folder.
        folder, _, name_glob = files[0].partition("/**/")
        reader = spark.read.format("binaryFile")
        if name_glob:
            reader = reader.option("recursiveFileLookup", True).option("pathGlobFilter", name_glob)
        found = reader.load(folder).select(F.regexp_replace("path", "^file:", "").alias("path"))
        frame = found.withColumn("name", F.element_at(F.split("path", "/"), -1))
    elif source.format == "parquet":
        frame = spark.read.parquet(*files)
    else:
        from deltalake import DeltaTable
        frame = spark.read.option("basePath", files[0]).parquet(*DeltaTable(files[0]).file_uris())
    frame = frame.select(*(source.fields or frame.columns))
    return frame.withColumn(CORRUPT, F.lit(None).cast("string"))


def _parsed(text: Column, spec: SourceColumn, zone: str) -> Column:
    """Text (trimmed, nulls and value map applied) -> the declared type; null when it does not parse."""
    if spec.type == "timestamp" and spec.format in ("epoch_seconds", "epoch_millis"):
        whole = text.try_cast("bigint")
        return F.timestamp_seconds(whole) if spec.format == "epoch_seconds" else F.timestamp_millis(whole)
    if spec.type == "timestamp":
        if spec.format is not None:
            value = F.try_to_timestamp(text, F.lit(spec.format))
            return value if OFFSET_LETTERS & set(spec.format) else instant_from_local(value, zone)
        with_offset = text.rlike(r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$")
        value = text.try_cast("timestamp")  # a naive text reads as UTC wall-clock time: the session's zone
        return F.when(with_offset, value).otherwise(instant_from_local(value, zone))
    if spec.type == "date":
        return F.try_to_date(text, F.lit(spec.format)) if spec.format is not None else text.try_cast("date")
    if spec.type == "boolean":
        lower = F.lower(text)
        return F.when(lower.isin("true", "1", "yes", "y", "t"), True).when(lower.isin("false", "0", "no", "n", "f"),
                                                                              False)
    return text if spec.type == "string" else text.try_cast(SPARK_TYPES[spec.type])


def column_parser(name: str, spec: SourceColumn, dtype: DataType, zone: str) -> Column:
    """The parsed value of source column ``name`` (of Spark type ``dtype`` as read)."""
    if dtype.simpleString() == SPARK_TYPES[spec.type] and spec.values is None and spec.pattern is None:
        return F.col(name)  # Parquet and Delta columns that are typed already
    text = F.when(_given(name, spec), F.trim(F.col(name).cast("string")))
    if spec.values:
        mapped = F.create_map(*[x for k, v in sorted(spec.values.items()) for x in (F.lit(k), F.lit(v))])
        text = F.coalesce(mapped[text], text)
    if spec.pattern is not None:
        text = F.when(text.rlike(f"^(?:{spec.pattern})$"), text)
    return _parsed(text, spec, zone)


def _given(name: str, spec: SourceColumn) -> Column:
    """The source holds a value (not null, not one of the column's null texts)."""
    text = F.trim(F.col(name).cast("string"))
    return text.isNotNull() & ~text.isin(*spec.nulls) if spec.nulls else text.isNotNull()


def parse_source(source: Source, zone: str, key: PseudonymKey | None) -> callable:
    """raw rows -> the typed columns under their own names, ``_raw_json`` and ``_parse_error``.

    A row is ``malformed_row`` when Spark could not split it into fields, else ``unparseable_<column>``
    for the first declared column whose non-null value did not parse. The raw JSON kept for quarantine
    shows user id columns as pseudonyms; a malformed line, which cannot be split, only as its hash and length.
    """
    def apply(raw: DataFrame) -> DataFrame:
        fields = [c for c in raw.columns if c != CORRUPT]
        types = {f.name: f.dataType for f in raw.schema.fields}
        ids = {c for c, spec in source.columns.items() if spec.user_id}
        malformed = F.to_json(F.struct(F.sha2(F.col(CORRUPT), 256).alias("malformed_line_sha256"),
                                       F.length(CORRUPT).alias("length")))
        kept = F.when(F.col(CORRUPT).isNotNull(), malformed if key is not None else F.col(CORRUPT))
        out = raw.withColumn(RAW_JSON, F.coalesce(kept, row_json(fields, ids, key)))
        parsed = {c: column_parser(c, spec, types[c], spec.zone or zone) for c, spec in source.columns.items()}
        failures = [F.when(F.col(CORRUPT).isNotNull(), F.lit(MALFORMED_ROW))] + [
            F.when(F.col(f"_parsed_{c}").isNull() & _given(c, source.columns[c]), F.lit(unparseable(c)))
            for c in parsed]
        out = out.withColumns({f"_parsed_{c}": p for c, p in parsed.items()}).withColumn(PARSE_ERROR,
                                                                                        F.coalesce(*failures))
        return out.select(*[F.col(f"_parsed_{c}").alias(c) if c in parsed else F.col(c) for c in fields],
                          RAW_JSON, PARSE_ERROR)
    return apply


def parsed_rows(df: DataFrame) -> DataFrame:
    """The rows that parsed, with only the source's columns: what the tables' SQL sees."""
    return df.filter(F.col(PARSE_ERROR).isNull()).drop(RAW_JSON, PARSE_ERROR)
