"""benchmarks/gpu_check.py --smoke: every GPU code path of the device-ready check runs on the CPU at tiny sizes."""
import json
import os
import subprocess
import sys

import pytest

from spectralkd.paths import REPO_ROOT


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True and set(result["step"]) == {"bf16", "bf16_compiled"}
    for row in result["step"].values():
        assert row["spectralkd_img_s"] > 0 and row["timm_logit_kd_img_s"] > 0
    # bf16 against fp32 on one batch: close, not equal (autocast really ran)
    agreement = result["loss_agreement"]["bf16"]["loss"]
    assert 0 < agreement["rel_diff"] < 0.05
    assert result["cohort"]["speedup"] > 0 and len(result["cohort"]["students"]) == 4
    assert set(result["mdbn_x2"]) == {"fp32", "bf16", "channels_last", "compiled"}
    assert result["mdbn_x2"]["channels_last"]["max_abs_diff_vs_fp32"] < 1e-4
    assert result["mdbn_x2"]["compiled"]["max_abs_diff_vs_fp32"] < 1e-3
    peers = result["sr_peers"]
    if "skipped" not in peers:  # spandrel is in the test extra; absent only in a bare install
        assert {(r["model"], r["scale"]) for r in peers["rows"]} == \
            {(m, s) for m in ("MDBN", "SwinIR-light", "SAFMN", "SPAN", "OmniSR") for s in (2, 4)}
        assert all(r["params"] > 1e5 and r["seconds_fp32"] > 0 and r["seconds_bf16"] > 0 for r in peers["rows"])
