"""Privacy by default: user ids become keyed-HMAC pseudonyms at ingest; PII never reaches an output.

The key comes from the environment (``PORTRAIT_HMAC_KEY``) or a key file. Without either, a local
run generates a key file and says so; strict mode refuses to run instead.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

KEY_ENV = "PORTRAIT_HMAC_KEY"
PSEUDONYM_PREFIX = "u_"
PSEUDONYM_HEX = 32  # 128 bits of the HMAC: collisions are out of reach at any platform's scale
REDACTED = "<redacted>"


class PrivacyError(RuntimeError):
    """Privacy settings forbid the run (strict mode without a key)."""


@dataclass(frozen=True)
class PseudonymKey:
    secret: bytes
    source: str  # where the key came from, for the run log (never the key itself)


def load_key(key_file: str, strict: bool, env: Mapping[str, str]) -> PseudonymKey:
    """The HMAC key: from ``env[PORTRAIT_HMAC_KEY]``, else ``key_file``, else (not strict) a new local key file."""
    if env.get(KEY_ENV):
        return PseudonymKey(env[KEY_ENV].encode(), f"environment variable {KEY_ENV}")
    path = Path(key_file)
    if path.is_file():
        for _ in range(50):  # a job that has just created the file may not have written it yet
            secret = path.read_bytes().strip()
            if secret:
                return PseudonymKey(secret, f"key file {path}")
            time.sleep(0.1)
        raise PrivacyError(f"the key file {path} is empty; put a secret in it or delete it")
    if strict:
        raise PrivacyError(f"strict mode: no pseudonymisation key. Set {KEY_ENV}, or put a secret in "
                           f"privacy.key_file ({path}); Portrait will not run without one.")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Exclusive create: two jobs starting at once on a fresh machine must not each write a key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_key(key_file, strict, env)  # the other job's key
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32))
    return PseudonymKey(path.read_bytes().strip(),
                        f"generated local key {path} (fine for a demo; set {KEY_ENV} in production)")


def pseudonym(raw_id: str, key: PseudonymKey) -> str:
    """The pseudonym of one id, in plain Python (for lookups and tests)."""
    digest = hmac.new(key.secret, raw_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX]


def hmac_column(column: Column, key: PseudonymKey) -> Column:
    """HMAC-SHA256 of a string column, in Spark SQL (RFC 2104), as the pseudonym format. Null stays null."""
    secret = key.secret if len(key.secret) <= 64 else hashlib.sha256(key.secret).digest()
    secret = secret.ljust(64, b"\0")
    inner_pad = bytearray(b ^ 0x36 for b in secret)
    outer_pad = bytearray(b ^ 0x5C for b in secret)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), F.encode(column, "UTF-8")), 256))
    digest = F.sha2(F.concat(F.lit(outer_pad), inner), 256)
    return F.when(column.isNotNull(), F.concat(F.lit(PSEUDONYM_PREFIX), F.substring(digest, 1, PSEUDONYM_HEX)))


def pseudonymize(columns: list[str], key: PseudonymKey) -> Callable[[DataFrame], DataFrame]:
    """Replace each of ``columns`` (those present) with its pseudonym."""
    def apply(df: DataFrame) -> DataFrame:
        present = {c: hmac_column(F.col(c), key) for c in columns if c in df.columns}
        return df.withColumns(present) if present else df
    return apply


def row_json(columns: list[str], ids: set[str], key: PseudonymKey | None) -> Column:
    """A row as JSON for quarantine (an output table): the ``ids`` columns as pseudonyms when there is a key."""
    shown = [hmac_column(F.col(c).cast("string"), key).alias(c) if key is not None and c in ids else F.col(c)
             for c in columns]
    return F.to_json(F.struct(*shown), {"ignoreNullFields": "false"})


def redacted_struct(columns: list[str], pii: list[str]) -> Column:
    """The row as a struct for quarantine's raw JSON, with PII columns redacted."""
    return F.struct(*[F.when(F.col(c).isNotNull(), F.lit(REDACTED)).alias(c) if c in pii else F.col(c)
                      for c in columns])


def privacy_key(cfg: "PrivacyConf", env: Mapping[str, str] | None, rec: "RunRecorder | None" = None  # noqa: F821
                ) -> PseudonymKey | None:
    """The run's key (None when pseudonymisation is off); says where it came from, once per run."""
    if not cfg.pseudonymize:
        return None
    key = load_key(cfg.key_file, cfg.strict, env or {})
    if rec is not None and "pseudonym_key" not in rec.details:
        rec.details["pseudonym_key"] = key.source
        rec.console.print(f"[{rec.job}] user ids are pseudonymised with a keyed HMAC; key: {key.source}")
    return key


def ingest_privacy(cfg: "PrivacyConf", env: Mapping[str, str] | None,  # noqa: F821
                   rec: "RunRecorder | None" = None) -> Callable[[DataFrame], DataFrame]:  # noqa: F821
    """The ingest step's privacy transformation: user_id to its pseudonym (identity when off)."""
    key = privacy_key(cfg, env, rec)
    return (lambda df: df) if key is None else pseudonymize(["user_id"], key)
