"""The Quick start path through the real ``portrait`` command: demo, then SQL from the same directory."""
from __future__ import annotations

from conftest import DEMO_ARGS, portrait, portrait_here


def test_demo_then_sql_from_the_same_directory(demo_run):
    tmp_path, demo = demo_run.directory, demo_run.result
    assert (tmp_path / "warehouse" / "profiles" / "_delta_log").is_dir()
    assert "Portrait tables under" in demo.stdout and "labels" in demo.stdout
    answer = portrait("sql", "select tag, count(*) as n from labels group by tag order by tag", cwd=tmp_path)
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert "dormant" in answer.stdout and "active" in answer.stdout


def test_sql_reads_the_warehouse_that_warehouse_names_from_any_directory(spark, demo_run, tmp_path):
    answer = portrait_here("sql", "select count(*) as profiles_n from profiles", "--warehouse", str(demo_run.warehouse),
                           cwd=tmp_path)
    assert answer.returncode == 0, answer.stderr[-3000:]
    users = DEMO_ARGS[DEMO_ARGS.index("--users") + 1]
    assert "profiles_n" in answer.stdout and users in answer.stdout, answer.stdout


def test_bad_config_fails_at_start_naming_the_key(spark, tmp_path):
    result = portrait_here("full", "--set", "tags.dormant_dayz=3", cwd=tmp_path)
    assert result.returncode == 2
    assert "tags.dormant_dayz" in result.stderr


def test_sql_without_tables_says_what_to_do(spark, tmp_path):
    result = portrait_here("sql", "select 1", cwd=tmp_path)
    assert result.returncode == 2
    assert "run 'portrait demo' first" in result.stderr
