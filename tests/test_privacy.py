"""Privacy by default: pseudonymous ids, no PII or raw id in any output file, strict mode."""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from conf import load_config
from jobs.full import open_warehouse
from jobs.privacy import KEY_ENV, PrivacyError, PseudonymKey, hmac_column, load_key, pseudonym
from tests.conftest import portrait_here
from tests.helpers import scan_for_leaks

OUTPUTS = ("profiles", "labels", "quarantine", "runs", "embedding_cache")


def test_spark_hmac_is_rfc2104_hmac_sha256(spark):
    from pyspark.sql import functions as F

    ids = ["U0000001", "1", "57b2a98a409812fe9618067b6b8ebe4f", "用户-42", None]
    for secret in (b"short key", b"k" * 100):  # keys longer than a block are hashed first
        key = PseudonymKey(secret, "test")
        got = [r[0] for r in spark.createDataFrame([(i,) for i in ids], "id string")
               .select(hmac_column(F.col("id"), key)).collect()]
        want = [None if i is None else "u_" + hmac.new(secret, i.encode(), hashlib.sha256).hexdigest()[:32]
                for i in ids]
        assert got == want
        assert got[0] == pseudonym("U0000001", key)


def test_key_comes_from_env_then_file_then_is_generated(tmp_path):
    assert load_key(str(tmp_path / "k"), False, {KEY_ENV: "from-env"}).secret == b"from-env"
    generated = load_key(str(tmp_path / "k"), False, {})
    assert "generated local key" in generated.source and (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    again = load_key(str(tmp_path / "k"), True, {})  # an existing key file satisfies strict mode
    assert again.secret == generated.secret and "key file" in again.source


def test_strict_mode_without_a_key_refuses(tmp_path):
    with pytest.raises(PrivacyError, match="strict mode: no pseudonymisation key"):
        load_key(str(tmp_path / "missing"), True, {})


def test_strict_mode_cli_fails_at_start_with_a_clear_message(spark, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    result = portrait_here("full", "--set", "privacy.strict=true", cwd=tmp_path)
    assert result.returncode == 2
    assert f"strict mode: no pseudonymisation key. Set {KEY_ENV}" in result.stderr


def test_no_output_file_holds_pii_or_raw_ids(demo_run, spark):
    """The demo's generated users carry names, phones and emails, and its bad rows include users: none of
    them, and no raw id, is in any file of any output table, MLflow's store or the training checkpoints."""
    cfg = load_config(overrides=[f"warehouse.path={demo_run.warehouse}"])
    wh = open_warehouse(cfg, spark)
    users = wh.read("users").collect()
    secrets_ = {u.user_id for u in users if u.user_id} | {v for u in users for v in (u.name, u.phone, u.email) if v}
    assert len(secrets_) > 1000
    roots = [Path(wh.path(t)) for t in (*OUTPUTS, "training_snapshot", "segments", "model_metrics")]
    roots += [demo_run.directory / "mlruns", demo_run.directory / ".portrait" / "checkpoints"]
    assert all(r.exists() for r in roots)
    assert scan_for_leaks(secrets_, roots) >= 40
    quarantined_users = [json.loads(r.raw_row) for r in wh.read("quarantine").collect() if r.source_table == "users"]
    assert quarantined_users and all(q["name"] in (None, "<redacted>") for q in quarantined_users)
    profile_ids = [r.user_id for r in wh.read("profiles").select("user_id").collect()]
    assert all(i.startswith("u_") and len(i) == 34 for i in profile_ids)
