"""``python -m benchmarks.accelerator --small``: every section runs on CPU and its rows say
the device, the dtype and, where PyTorch is absent (as in CI), that it is not installed."""

import json
import subprocess
import sys

import pytest

from tests.runs import ROOT


@pytest.mark.slow
def test_accelerator_small_writes_every_row(tmp_path):
  out = tmp_path / "rows.json"
  cmd = [sys.executable, "-m", "benchmarks.accelerator", "--small", "--json", str(out)]
  run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stderr[-2000:]
  report = json.loads(out.read_text())
  rows = {r["benchmark"]: r for r in report["rows"]}
  assert not [r for r in report["rows"] if r["note"].startswith("failed")]
  assert all(r["device"] == report["device"] and r["device"].startswith("cpu")
             for r in rows.values())
  names = list(rows)
  for prefix in ("matrix entropy n=4,096", "matrix entropy n=1,024", "NC1-4, VCI, CDNV",
                 "C=128 classes", "C=512 classes", "README job (", "  README job: evaluation"):
    assert any(n.startswith(prefix) for n in names), prefix
  resnet = [r for r in report["rows"] if r["benchmark"].startswith("ResNet-18")]
  assert [r["dtype"] for r in resnet] == ["float32", "bfloat16"]
  assert all(float(r["ncjax s"]) > 0 for r in report["rows"]
             if not r["benchmark"].startswith("  "))  # a phase of the job may take 0 s
  assert all(r["peak memory"].endswith("GiB (XLA)") for r in report["rows"]
             if r["benchmark"].startswith("C="))
  compared = [r for r in report["rows"] if r["reference"]]
  if report["torch"] == "torch not installed":
    assert len(compared) == 5 and all(r["reference"] == "torch not installed" for r in compared)
  else:
    assert all(r["reference / ncjax"].endswith("x") for r in compared
               if not r["reference"].startswith("torchvision not"))
