"""The mapping file: what it may say, and the checks that make a bad one fail at start with its line.

A mapping names its **sources** (files in CSV, JSON lines, Parquet or Delta, and how to parse their
columns) and builds each input **table** from them with Spark SQL: a FROM clause over the sources
(``{name}``), an optional WHERE, rejections that go to quarantine with a named reason, and one
expression per target column. The README's "Your own data" section explains one complete file.
"""
from __future__ import annotations

import re
from importlib.abc import Traversable
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from conf import Zone
from jobs.yaml_lines import LineTable
from schemas import INPUT_TABLES

ColumnType = Literal["string", "int", "long", "double", "boolean", "timestamp", "date"]
EPOCHS = ("epoch_seconds", "epoch_millis")
REQUIRED_TABLES = ("users", "items", "transactions")
SOURCE_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file, the line and the key."""


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"not a regular expression: {err}") from None
    return value


def _code(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ValueError("a reason is a lower-case code such as cancellation or order_canceled")
    return value


def _label(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ValueError("letters, digits, - and _ only")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SourceColumn(_Strict):
    """How one source column is parsed; a non-empty value that fails goes to quarantine as ``unparseable_<column>``."""

    type: ColumnType = "string"
    format: str | None = None      # timestamp/date: a Spark datetime pattern, or epoch_seconds / epoch_millis
    zone: Zone | None = None       # the zone a naive time is in; default: the mapping's zone, then time.zone
    pattern: Annotated[str, AfterValidator(_regex)] | None = None  # the trimmed text must match in full
    values: dict[str, str] | None = None  # value map applied to the trimmed text (pv -> view); others stay
    nulls: list[str] = [""]        # texts that mean "no value"
    user_id: bool = False          # a user id: shown pseudonymised in quarantine rows

    @model_validator(mode="after")
    def _format_fits(self) -> "SourceColumn":
        if self.format is not None and self.type not in ("timestamp", "date"):
            raise ValueError(f"format applies to timestamp and date columns, not {self.type}")
        if self.format in EPOCHS and self.type != "timestamp":
            raise ValueError(f"{self.format} applies to timestamp columns")
        if self.zone is not None and self.type != "timestamp":
            raise ValueError("zone applies to timestamp columns")
        return self


class Source(_Strict):
    """One source: its files (relative to ``--path``), their format, and how to parse its columns."""

    format: Literal["csv", "jsonl", "parquet", "delta", "files"]  # files: one row (path, name) per file found
    files: str                     # a file, a glob (*.csv), or a directory (Delta: the table's directory)
    header: bool = True            # csv: the first line names the columns
    delimiter: str = ","           # csv
    multiline: bool = False        # csv: quoted values may span lines (slower: a file is not split)
    encoding: str = "UTF-8"        # csv
    fields: list[str] | None = None  # the columns, in file order (required for a csv without header)
    columns: dict[str, SourceColumn] = {}

    @model_validator(mode="after")
    def _fields_known(self) -> "Source":
        if self.format == "csv" and not self.header and not self.fields:
            raise ValueError("a csv source without a header needs fields: the column names in file order")
        return self


class Reject(_Strict):
    """Rows of a table's FROM clause that ``when`` holds for go to quarantine with ``reason``, not into the table."""

    when: str                      # a Spark SQL predicate over the FROM rows
    reason: Annotated[str, AfterValidator(_code)]
    column: str | None = None      # the column the reason is about, for messages


class TableMapping(_Strict):
    """One input table: SELECT <columns> FROM <from> WHERE <where> [GROUP BY <group_by>], after the rejections."""

    from_: str = Field(alias="from")  # a source's name, or a Spark SQL FROM clause naming sources as {name}
    where: str | None = None
    reject: list[Reject] = []
    distinct: bool = False
    group_by: list[str] = []
    columns: dict[str, str]        # target column -> Spark SQL expression over the FROM rows

    @field_validator("columns", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        # YAML reads `quantity: 1` as a number; every expression is SQL text.
        return {k: v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in value.items()} if isinstance(value, dict) else value

    def source_names(self) -> list[str]:
        found = SOURCE_REF.findall(self.from_)
        return found or [self.from_.strip()]

    def from_clause(self) -> str:
        """The FROM clause with every source as a ``{name}`` placeholder."""
        return self.from_ if SOURCE_REF.search(self.from_) else "{" + self.from_.strip() + "}"


class Mapping(_Strict):
    name: Annotated[str, AfterValidator(_label)]  # names the source in quarantine rows: "<name>:<source>"
    zone: Zone | None = None       # the zone of naive times in every source; default: time.zone
    sources: dict[str, Source]
    tables: dict[Literal["users", "items", "transactions", "browse", "social"], TableMapping]
    _where: str = PrivateAttr("<mapping>")
    _lines: LineTable | None = PrivateAttr(None)

    def error(self, path: tuple[str, ...], text: str) -> MappingError:
        """An error about ``path`` in this file, with its line."""
        return MappingError(_message(self._where, self._lines or LineTable(""), [(path, text)]))


def _problems(m: Mapping) -> list[tuple[tuple[str, ...], str]]:
    """Checks across keys: every path is where the file has to change."""
    found = []
    for table in REQUIRED_TABLES:
        if table not in m.tables:
            found.append((("tables",), f"tables.{table} is missing: {', '.join(REQUIRED_TABLES)} are required "
                                       f"(browse and social may be left out: they are written empty)"))
    for name, source in m.sources.items():
        if source.fields is not None:
            for column in source.columns:
                if column not in source.fields:
                    found.append((("sources", name, "columns", column),
                                  f"sources.{name}.columns.{column}: not one of its fields {source.fields}"))
    for table, tm in m.tables.items():
        schema = INPUT_TABLES[table].schema
        for ref in tm.source_names():
            if ref not in m.sources:
                found.append((("tables", table, "from"), f"tables.{table}.from: unknown source {ref!r} "
                                                         f"(sources: {', '.join(sorted(m.sources))})"))
        for column in tm.columns:
            if column not in schema.fieldNames():
                found.append((("tables", table, "columns", column),
                              f"tables.{table}.columns.{column}: {table} has no such column "
                              f"(columns: {', '.join(schema.fieldNames())})"))
        derived = {f.name for f in schema.fields if f.metadata.get("partition")}
        for field in schema.fields:
            if not field.nullable and field.name not in tm.columns and field.name not in derived:
                found.append((("tables", table, "columns"),
                              f"tables.{table}.columns: {field.name} is required (never null in {table})"))
    return found


def parse_mapping(text: str, where: str = "<mapping>") -> Mapping:
    """A checked mapping from YAML text; a bad one raises MappingError naming ``where``, the line and the key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise MappingError(f"mapping {where}: {line}not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise MappingError(f"mapping {where}: must hold a mapping with name, sources and tables at the top level")
    lines = LineTable(text)
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as err:
        raise MappingError(_message(where, lines, [
            (tuple(str(p) for p in e["loc"]), f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}")
            for e in err.errors()])) from None
    problems = _problems(mapping)
    if problems:
        raise MappingError(_message(where, lines, problems))
    mapping._where, mapping._lines = where, lines
    return mapping


def _message(where: str, lines: LineTable, problems: list[tuple[tuple[str, ...], str]]) -> str:
    said = []
    for path, text in problems:
        line = lines.line_of(path)
        said.append(f"line {line}: {text}" if line else text)
    return f"mapping {where}: " + "; ".join(said)


def load_mapping(path: str | Path | Traversable) -> Mapping:
    file = path if isinstance(path, Traversable) else Path(path)
    if not file.is_file():
        raise MappingError(f"mapping file not found: {file}")
    return parse_mapping(file.read_text(encoding="utf-8"), str(file))
