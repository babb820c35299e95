"""The benchmark tables of docs/benchmarks.md and README.md are generated from benchmarks/results/*.json by
tools/fill_bench_tables.py: the committed docs must match the committed JSON files, the filler touches only the
text between its markers, and the benchmarks' result files accumulate sections."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fill_tables = _load("fill_bench_tables", ROOT / "tools" / "fill_bench_tables.py")
sys.path.insert(0, str(ROOT / "benchmarks"))
import _results  # noqa: E402


def test_docs_match_result_files():
    """The repository's docs and JSON files cannot drift apart: --check on this checkout passes."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "fill_bench_tables.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_marker_is_a_known_block():
    for doc in fill_tables.DOCS:
        names = {m["name"] for m in fill_tables.MARKER.finditer((ROOT / doc).read_text())}
        assert names, doc
        assert names <= set(fill_tables.BLOCKS), names - set(fill_tables.BLOCKS)


def test_fill_replaces_only_between_markers():
    text = ("intro 1.23× stays\n<!-- bench:a -->\nold table 9.99\n<!-- /bench:a -->\nmiddle <!-- other comment -->\n"
            "<!-- bench:b -->\n<!-- /bench:b -->\ntail 4.56 stays")
    out = fill_tables.fill(text, lambda name: f"NEW {name}\n\n| t | {name} |")
    assert out == ("intro 1.23× stays\n<!-- bench:a -->\nNEW a\n\n| t | a |\n<!-- /bench:a -->\n"
                   "middle <!-- other comment -->\n<!-- bench:b -->\nNEW b\n\n| t | b |\n<!-- /bench:b -->\n"
                   "tail 4.56 stays")
    assert fill_tables.fill(out, lambda name: f"NEW {name}\n\n| t | {name} |") == out  # idempotent


@pytest.mark.parametrize("text", ["a\n<!-- bench:a -->\nbody\n", "<!-- /bench:a -->\n",
                                  "<!-- bench:a -->\n<!-- /bench:b -->\n"])
def test_unpaired_markers_are_refused(text):
    with pytest.raises(fill_tables.FillError):
        fill_tables.fill(text, lambda name: "x")


def test_unknown_block_is_refused(tmp_path):
    render = fill_tables.renderer(tmp_path)
    with pytest.raises(fill_tables.FillError, match="unknown block 'nope'"):
        fill_tables.fill("<!-- bench:nope -->\n<!-- /bench:nope -->\n", render)


def _copy_repo(tmp_path: Path) -> Path:
    for doc in fill_tables.DOCS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / doc, tmp_path / doc)
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    for path in (ROOT / "benchmarks" / "results").glob("bench_*.json"):
        shutil.copy(path, results / path.name)
    return tmp_path


def test_check_fails_when_a_result_changes_and_fill_repairs_it(tmp_path, capsys):
    root = _copy_repo(tmp_path)
    path = root / "benchmarks" / "results" / "bench_distill.json"
    data = json.loads(path.read_text())
    data["sections"]["cohort"]["results"]["speedup"] = 2.345
    path.write_text(json.dumps(data))
    before = (root / "docs" / "benchmarks.md").read_text()
    assert fill_tables.main(["--check", "--root", str(root)]) == 1
    assert (root / "docs" / "benchmarks.md").read_text() == before  # --check writes nothing
    assert fill_tables.main(["--root", str(root)]) == 0
    assert fill_tables.main(["--check", "--root", str(root)]) == 0
    after = (root / "docs" / "benchmarks.md").read_text()
    assert "**2.35×**" in after and "**2.35×**" not in before
    readme = " ".join((root / "README.md").read_text().split())  # the block is re-wrapped
    assert "2.35× faster per student" in readme
    # Outside the blocks nothing moved: removing every block body gives the same text before and after.
    strip = lambda t: fill_tables.MARKER.sub(lambda m: m.group(1) + m.group(4), t)  # noqa: E731
    assert strip(after) == strip(before)


def test_missing_result_file_says_so_with_the_command(tmp_path):
    name = next(k for k, f in fill_tables.BLOCKS.items() if f is fill_tables.spectral_table)
    text = fill_tables.renderer(tmp_path)(name)
    assert "Not measured" in text and "benchmarks/bench_spectral.py" in text
    text = fill_tables.renderer(tmp_path)("distill-step")
    assert "section `step` of bench_distill.json" in text and "--only step" in text


def test_merge_accumulates_sections_and_keeps_other_keys(tmp_path):
    bench_distill = pytest.importorskip("bench_distill")
    path = tmp_path / "bench_distill.json"
    shutil.copy(ROOT / "benchmarks" / "results" / "bench_distill.json", path)
    before = json.loads(path.read_text())
    head = _results.header(1)
    sec = _results.section(head, {"quick": True}, {"ratio": 0.5}, ["a line"])
    name = "probe"  # a section the committed file does not have
    assert name not in before["sections"]
    after = _results.merge(path, "bench_distill", {name: sec}, bench_distill.derive)
    assert after == json.loads(path.read_text())
    assert set(after["sections"]) == set(before["sections"]) | {name}
    for key in before:
        if key not in ("sections", "commands", "output", "date", "machine"):
            assert after[key] == before[key], key
    for kept, old in before["sections"].items():
        assert after["sections"][kept] == old
    assert after["commands"][name] == head["command"] and after["output"][name] == ["a line"]
    assert after["commands"]["gpu_check_smoke"] == before["commands"]["gpu_check_smoke"]


def test_committed_distill_summary_follows_its_sections():
    bench_distill = pytest.importorskip("bench_distill")
    data = json.loads((ROOT / "benchmarks" / "results" / "bench_distill.json").read_text())
    derived = json.loads(json.dumps(data))
    bench_distill.derive(derived)
    assert derived == data
    # The ratio is logit-KD img/s over SpectralKD img/s of the same run (step time ratio), to the printed digits.
    img = data["sections"]["step"]["results"]["img_per_s"]
    assert data["step_ratio_spectralkd_over_logit_kd"]["bf16"] == pytest.approx(img["logit-KD bf16"]
                                                                                / img["spectralkd bf16"], abs=0.01)


def test_header_names_machine_versions_and_command():
    head = _results.finish(_results.header(1))
    assert head["threads"] == 1 and head["command"].startswith("python ")
    assert head["machine"]["cores"] >= 1 and head["machine"]["cpu_model"]
    assert set(head["versions"]) >= {"python", "torch", "timm", "numpy", "spectralkd", "git_commit"}
    assert head["machine"]["loaded"] in (True, False, None)


def test_loaded_verdict():
    cores = _results.os.cpu_count() or 1
    busy = _results.LOADED_SHARE * cores + 0.5
    assert _results.is_loaded([busy, 0, 0], None, 1) is True
    assert _results.is_loaded([0.1, 0, 0], [1.05, 0, 0], 1) is False  # only the benchmark's own thread
    assert _results.is_loaded([0.1, 0, 0], [busy + 1, 0, 0], 1) is True
    assert _results.is_loaded([busy, 0, 0], [1.05, 0, 0], 1) is False  # a paused job's tail at the start only
    assert _results.is_loaded(None, None, 1) is None


def test_bench_spectral_writes_every_figure(tmp_path):
    """A tiny end-to-end run of benchmarks/bench_spectral.py writes the header, numbers and printed lines."""
    out = tmp_path / "bench_spectral.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_spectral.py"), "--layers", "1",
                           "--images", "2", "--channels", "8", "--size", "4", "--repeat", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sec = json.loads(out.read_text())["sections"]["main"]
    assert sec["settings"]["channels"] == 8 and sec["header"]["threads"] == 1
    assert "--channels 8" in sec["header"]["command"]
    r = sec["results"]
    assert set(r["measures"]) == {"spectrum", "entropy", "svd_rank", "spatial", "all"}
    for row in r["measures"].values():
        assert row["wall"]["ratio"] == pytest.approx(row["wall"]["numpy_s"] / row["wall"]["spectralkd_s"])
    assert r["values_equal_within_1e-5"] is True
    assert any(line.startswith("channel entropy") for line in sec["output"])
    assert sec["output"] == [line for line in proc.stdout.splitlines() if not line.startswith("→")]
