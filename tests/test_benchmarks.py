"""The benchmark binaries run end to end on tiny inputs (no timing is asserted)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(script, *flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *flags],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


@pytest.mark.parametrize("script", ["graph_pass_speed.py", "reorder_speed.py"])
def test_helpfull_lists_the_flags(script):
    result = run_binary(script, "--helpfull")
    assert result.returncode == 0, result.stderr
    assert "--repeats" in result.stdout and "--out" in result.stdout


def test_graph_pass_speed_writes_its_table_and_json(tmp_path):
    out = tmp_path / "speed.json"
    result = run_binary("graph_pass_speed.py", "--sizes=100,300", "--repeats=1",
                        "--applications=VGG16", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert "| synthetic 100 |" in result.stdout and "| VGG16 |" in result.stdout
    rows = json.loads(out.read_text())["results"]
    assert [r["graph"] for r in rows] == ["synthetic 100", "synthetic 300", "VGG16"]
    vgg16 = rows[-1]
    assert (vgg16["sites"], vgg16["moved"]) == (5, 5)
    assert all(r["nodes_per_s"] > 0 and r["moved"] <= r["sites"] for r in rows)
    assert not os.path.exists(f"{out}.tmp")


def test_graph_pass_speed_rejects_bad_sizes():
    result = run_binary("graph_pass_speed.py", "--sizes=ten", "--applications=")
    assert result.returncode == 1 and "--sizes must be integers" in result.stderr


def test_reorder_speed_writes_json(tmp_path):
    out = tmp_path / "reorder.json"
    result = run_binary("reorder_speed.py", "--models=VGG16", "--repeats=1", f"--out={out}")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert [r["model"] for r in data["results"]] == ["VGG16"], data


def test_unknown_flag_is_a_usage_error():
    result = run_binary("graph_pass_speed.py", "--sizez=10")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("graph_pass_speed.py: error:")
