"""Regenerate the benchmark tables of docs/benchmarks.md and the README figures from benchmarks/results/*.json.

Each generated block sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; only the text between the
markers is replaced, everything else stays as written. Every block names the run it comes from (date, command,
threads, load average) and says so when the run was taken on a loaded machine or in a quick (smoke) mode.

    python tools/fill_bench_tables.py            # rewrite the blocks in place
    python tools/fill_bench_tables.py --check    # exit 1 if a doc differs from what the JSON files give
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import textwrap
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/benchmarks.md", "README.md")
MARKER = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)
OPEN = re.compile(r"<!-- /?bench:([\w-]+) -->")
WIDTH = 118  # the docs' line length


class FillError(Exception):
    """A marker without its pair, an unknown block name or a result file that cannot be read."""


# ---------------------------------------------------------------------------------------------- formatting helpers

def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise FillError(f"{path}: not valid JSON ({e})") from None


def section(data: dict | None, name: str) -> dict | None:
    return (data or {}).get("sections", {}).get(name)


class Missing(Exception):
    """A block's result is not in the files: the block says so (the message) instead of a table."""


def need(results: Path, bench: str, name: str, command: str, whole_file: bool = False, prefix: str = "") -> dict:
    """Section ``name`` of ``<bench>.json``, or :class:`Missing` naming what is absent and the command that makes it."""
    sec = section(load(results, bench), name)
    if sec is None:
        what = f"{bench}.json" if whole_file else f"section `{name}` of {bench}.json"
        raise Missing(prefix + missing(what, command))
    return sec


def x(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}×"


def provenance(sec: dict, command: bool = True, memory: bool = False) -> str:
    """One line naming the run: date, command, threads, load average; a warning when loaded or quick (``memory``:
    the figures are peak memory, which other jobs do not change; only the times are affected)."""
    head = sec["header"]
    m = head.get("machine", {})
    load = m.get("loadavg_start")
    parts = [f"run {head['date'][:16].replace('T', ' ')}{' UTC' if 'T' in head['date'] else ''}",
             f"`{head['command']}`", f"{head['threads']} thread{'s' if head['threads'] != 1 else ''}"]
    if not command:
        del parts[1]
    if m.get("cpu_model"):
        parts.append(f"{m['cpu_model']}, {m.get('cores')} cores")
    if load:
        end = m.get("loadavg_end")
        parts.append(f"load average {load[0]:.1f} at start" + (f", {end[0]:.1f} at end" if end else ""))
    if m.get("note"):
        parts.append(m["note"])
    versions = head.get("versions", {})
    if versions.get("torch"):
        parts.append(f"torch {versions['torch']}")
    line = "Source: " + "; ".join(parts) + "."
    warn = []
    if m.get("loaded") and memory:
        warn.append("taken on a **loaded machine**: the peak memory does not depend on it, the seconds are inflated")
    elif m.get("loaded"):
        warn.append("taken on a **loaded machine** (other jobs shared the cores): provisional, the times are "
                    "inflated and the ratios noisy")
    if sec.get("settings", {}).get("quick"):
        warn.append("**quick (smoke) mode** — smaller sizes/fewer repeats than the documented setup")
    if warn and not (memory and not sec.get("settings", {}).get("quick")):
        line += " ⚠ " + "; ".join(warn) + ". Re-run the command (without `--quick`) on an idle machine."
    elif warn:
        line += " ⚠ " + "; ".join(warn) + "."
    return line


def missing(what: str, command: str) -> str:
    return f"_Not measured in the result files yet ({what}); run `{command}` and then `python tools/fill_bench_tables.py`._"


def loaded_note(sec: dict, memory: bool = False) -> str:
    m = {} if memory else sec["header"].get("machine", {})
    quick = sec.get("settings", {}).get("quick")
    flags = [f for f, on in (("loaded machine", m.get("loaded")), ("quick mode", quick)) if on]
    return f" (provisional: {', '.join(flags)})" if flags else ""


# ---------------------------------------------------------------------------------------------------- spectral

SPECTRAL_LABELS = {"spectrum": "channel spectrum + intensity", "entropy": "channel entropy",
                   "svd_rank": "SVD energy ranks", "spatial": "spatial spectra", "all": "full measure set (+ RMS, range)"}


def spectral_table(results: Path) -> str:
    sec = need(results, "bench_spectral", "main", "python benchmarks/bench_spectral.py", whole_file=True)
    r, s = sec["results"], sec["settings"]
    lines = [provenance(sec), "",
             f"Features: {s['layers']} layers × {s['images']} images × {s['channels']} channels × "
             f"{s['size']}×{s['size']} float32 ({s['feature_mib']:.0f} MiB), {s['bins']} entropy bins, spectralkd "
             f"median of {s['repeat']} run{'s' if s['repeat'] != 1 else ''}, numpy 1 run.", "",
             "| measure | spectralkd wall s | numpy wall s | ratio | spectralkd CPU s | numpy CPU s | ratio |",
             "|---|---|---|---|---|---|---|"]
    for key, label in SPECTRAL_LABELS.items():
        w, c = r["measures"][key]["wall"], r["measures"][key]["cpu"]
        bold = key in ("entropy", "all")
        rw, rc = x(w["ratio"], 1), x(c["ratio"], 1)
        if bold:
            rw, rc = f"**{rw}**", f"**{rc}**"
        lines.append(f"| {label} | {w['spectralkd_s']:.3f} | {w['numpy_s']:.3f} | {rw} | {c['spectralkd_s']:.3f} | "
                     f"{c['numpy_s']:.3f} | {rc} |")
    mem = r["peak_memory_above_inputs"]
    lines.append(f"| peak memory above the inputs | {mem['spectralkd_mib']:.1f} MiB | {mem['numpy_mib']:.1f} MiB "
                 "| | | | |")
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in r["max_relative_difference"].items())
    ok = "equal within 1e-5 relative" if r["values_equal_within_1e-5"] else "**differ beyond 1e-5 relative**"
    ent, full = r["measures"]["entropy"]["wall"]["ratio"], r["measures"]["all"]["wall"]["ratio"]
    no_svd = r["without_svd_ranks"]["wall"]
    t = r["targets"]
    lines += ["", f"Values, largest relative difference over all layers: {diffs} — {ok} (the script exits 1 "
                  "otherwise).", "",
              f"Targets (wall time): entropy ≥ {t['entropy_ratio']:.0f}× — {verdict(ent >= t['entropy_ratio'])} "
              f"({x(ent, 1)}); whole set ≥ {t['full_set_ratio']:.0f}× — {verdict(full >= t['full_set_ratio'])} "
              f"({x(full, 1)}; without the SVD ranks the other measures together: {x(no_svd['ratio'], 1)}, "
              f"{no_svd['spectralkd_s']:.2f} s vs {no_svd['numpy_s']:.2f} s)."]
    return "\n".join(lines)


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def spectral_readme(results: Path) -> str:
    sec = need(results, "bench_spectral", "main", "python benchmarks/bench_spectral.py", whole_file=True,
               prefix="**Spectral measures**: ")
    r, s = sec["results"], sec["settings"]
    m = r["measures"]
    mem = r["peak_memory_above_inputs"]
    return (f"**Spectral measures** (`benchmarks/bench_spectral.py`, {s['layers']} layers × {s['images']} images × "
            f"{s['channels']} ch × {s['size']}×{s['size']}, {s['threads']} thread, against a straightforward numpy "
            f"implementation of the same definitions; values equal within 1e-5 relative: "
            f"{'yes' if r['values_equal_within_1e-5'] else '**no**'}){loaded_note(sec)}: channel entropy "
            f"{x(m['entropy']['wall']['ratio'], 1)} faster (target ≥ 20×: {verdict(m['entropy']['wall']['ratio'] >= 20)}); "
            f"the whole measure set {x(m['all']['wall']['ratio'], 1)} (target ≥ 10×: "
            f"{verdict(m['all']['wall']['ratio'] >= 10)}; the exact SVD energy ranks are LAPACK-bound on both sides, "
            f"{x(m['svd_rank']['wall']['ratio'], 1)}; the other measures together "
            f"{x(r['without_svd_ranks']['wall']['ratio'], 1)}); {mem['spectralkd_mib']:.0f} MiB extra memory vs "
            f"{mem['numpy_mib']:.0f} MiB.")


# ----------------------------------------------------------------------------------------------------- distill

DISTILL_CMD = "python benchmarks/bench_distill.py"


def distill_loss(results: Path) -> str:
    sec = need(results, "bench_distill", "loss", f"{DISTILL_CMD} --only loss")
    r = sec["results"]
    return "\n".join([provenance(sec), "", "| implementation | best ms | median ms |", "|---|---|---|",
                      f"| `spectral_alignment_loss` | {r['spectralkd_ms']:.1f} | {r['spectralkd_median_ms']:.1f} |",
                      f"| plain per-pair loop of the same math (pool, two `rfft2`, stack, MSE) | "
                      f"{r['per_pair_loop_ms']:.1f} | {r['per_pair_loop_median_ms']:.1f} |",
                      f"| **ratio** | **{x(r['ratio'])}** (target ≤ {r['target']:.1f}: {verdict(r['ratio'] <= r['target'])}) "
                      f"| {x(r['median_ratio'])} |", "",
                      f"Both give {r['loss_value']:.6f} (per-pair loop {r['loss_value_per_pair_loop']:.6f})."])


def distill_step(results: Path) -> str:
    sec = need(results, "bench_distill", "step", f"{DISTILL_CMD} --only step")
    r = sec["results"]
    img, ratio = r["img_per_s"], r["step_ratio_spectralkd_over_logit_kd"]
    goal = r["goal"]
    return "\n".join([
        provenance(sec), "",
        "| variant | bf16 autocast img/s | fp32 img/s |", "|---|---|---|",
        f"| SpectralKD (soft KD + spectral, w_fft 0.2) | {img['spectralkd bf16']:.0f} | {img['spectralkd fp32']:.0f} |",
        f"| logit-KD only (w_fft 0: no maps extracted) | {img['logit-KD bf16']:.0f} | {img['logit-KD fp32']:.0f} |",
        f"| **step time SpectralKD / logit-KD** | **{x(ratio['bf16'], 3)}** (goal ≤ {goal}: "
        f"{verdict(ratio['bf16'] <= goal)}) | **{x(ratio['fp32'], 3)}** |", "",
        f"bf16 autocast vs fp32 for the SpectralKD step: **{x(r['spectralkd_bf16_over_fp32'])}** img/s. Best round of "
        f"each variant (medians in the JSON)."])


def distill_compare(results: Path) -> str:
    data = load(results, "bench_distill")
    timm, cohort = (section(data, k) for k in ("timm", "cohort"))
    rows = ["| measurement | command | result | goal |", "|---|---|---|---|"]
    sources = []
    if timm:
        r = timm["results"]
        img, ratio = r["img_per_s"], r["step_time_ratios"]
        cmd = timm["header"]["command"].removeprefix("python ")
        rows.append(f"| SpectralKD / timm `LogitDistillationTask`, {r['precision']} | `{cmd}` | "
                    f"{img['spectralkd']:.0f} vs {img['timm LogitDistillationTask']:.0f} img/s → "
                    f"{x(ratio['spectralkd_over_timm'], 3)} | |")
        rows.append(f"| our logit-KD / timm `LogitDistillationTask`, {r['precision']} | same run | "
                    f"{img['logit-KD (ours)']:.0f} vs {img['timm LogitDistillationTask']:.0f} img/s → "
                    f"{x(ratio['our_logit_kd_over_timm'], 3)} | |")
        sources.append(("timm", timm))
    if cohort:
        r = cohort["results"]
        cmd = cohort["header"]["command"].removeprefix("python ")
        rows.append(f"| cohort of {len(r['students'])} ({', '.join(r['students'])}) vs one by one, img/s per "
                    f"student | `{cmd}` | {r['img_per_s_per_student_cohort']:.0f} vs "
                    f"{r['img_per_s_per_student_one_by_one']:.0f} → **{x(r['speedup'])}** | ≥ {r['goal']}: "
                    f"{verdict(r['speedup'] >= r['goal'])} |")
        sources.append(("cohort", cohort))
    if not sources:
        return missing("sections `timm`, `cohort` of bench_distill.json", DISTILL_CMD)
    lines = {provenance(sec, command=False) for _, sec in sources}
    note = (next(iter(lines)).replace("Source: run", "Source: runs of", 1) if len(lines) == 1
            else " ".join(f"`{name}` — {provenance(sec, command=False)}" for name, sec in sources))
    return "\n".join(rows + ["", note])


def distill_compile(results: Path) -> str:
    c = (load(results, "bench_distill") or {}).get("compile")
    if not c:
        return "_No `compile` entry in bench_distill.json._"
    return (f"`torch.compile` (`compile: true`), from `benchmarks/results/bench_distill.json` → `compile`: "
            f"{c['note']}; first-epoch loss relative difference compiled vs eager "
            f"{c['first_epoch_loss_rel_diff_vs_eager']:.1e} (`tests/test_compile.py` checks the same).")


def distill_alignment(results: Path) -> str:
    sec = need(results, "bench_distill", "alignment", f"{DISTILL_CMD} --alignment")
    lines = [provenance(sec), "", "| teacher maps | `distill.spatial_align` | best ms | median ms | × strict |",
             "|---|---|---|---|---|"]
    for c in sec["results"]["cases"].values():
        h, w = c["teacher_hw"]
        note = " (published loss)" if c["spatial_align"] == "strict" else ""
        lines.append(f"| 384×{h}×{w} | `{c['spatial_align']}`{note} | {c['best_ms']:.1f} | {c['median_ms']:.1f} | "
                     f"{c['x_strict']:.2f} |")
    return "\n".join(lines)


def distill_readme(results: Path) -> str:
    data = load(results, "bench_distill")
    loss, step, cohort = (section(data, k) for k in ("loss", "step", "cohort"))
    parts = []
    if loss:
        r = loss["results"]
        parts.append(f"the spectral loss for 8 pairs (B 64, 192 ← 384 ch, 14×14) takes {x(r['ratio'])} the time of "
                     f"a plain per-pair loop (target ≤ 1.0){loaded_note(loss)}")
    else:
        parts.append(f"the spectral loss against a per-pair loop: not in the result file yet "
                     f"(`{DISTILL_CMD} --only loss`)")
    if step:
        r = step["results"]
        ratio = r["step_ratio_spectralkd_over_logit_kd"]
        parts.append(f"a CIFAR-10 distillation step with the spectral term costs {x(ratio['bf16'], 3)} the "
                     f"logit-KD-only step in bf16 (goal ≤ {r['goal']}: {verdict(ratio['bf16'] <= r['goal'])}), "
                     f"{x(ratio['fp32'], 3)} in fp32; bf16 autocast gives {x(r['spectralkd_bf16_over_fp32'])} the "
                     f"img/s of fp32 on this CPU{loaded_note(step)}")
    if cohort:
        r = cohort["results"]
        parts.append(f"a cohort of {len(r['students'])} students sharing one data stream and teacher pass trains "
                     f"{x(r['speedup'])} faster per student than one by one{loaded_note(cohort)}")
    return "**SpectralKD loss and step** (`benchmarks/bench_distill.py`, 1 thread): " + "; ".join(parts) + "."


# ---------------------------------------------------------------------------------------------------------- SR

SR_CMD = "python benchmarks/bench_sr.py"


def sr_sizes(results: Path) -> str:
    sec = need(results, "bench_sr", "sizes", f"{SR_CMD} --skip-mem")
    r = sec["results"]
    n = r["lr_size"]
    lines = [provenance(sec), "",
             f"| scale | params | GFLOPs / {n}² LR | GMACs / 720p HR | eager s / image | receptive radius (LR px) |",
             "|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| x{row['scale']} | {row['params']:,} | {row['gflops_lr']:.1f} | {row['gmacs_720p_hr']:.1f} | "
                     f"{row['eager_seconds']:.2f} | {row['receptive_radius']} |")
    return "\n".join(lines)


SR_PATHS = {"eager": "eager fp32 (`no_grad`, NCHW)", "tuned_fp32": "tuned fp32 (`inference_mode`, channels-last)",
            "tuned_bf16": "tuned bf16 (autocast)", "tuned_fp32_compile": "tuned fp32 + `torch.compile`"}


def sr_tuned(results: Path) -> str:
    sec = need(results, "bench_sr", "tuned", f"{SR_CMD} --skip-mem")
    r = sec["results"]
    lines = [provenance(sec), "", f"MDBN x{r['scale']}, one {r['lr_size']}×{r['lr_size']} LR image.", "",
             "| path | seconds | speed-up | max abs diff vs eager |", "|---|---|---|---|"]
    for p in r["paths"]:
        diff = "0" if p["max_abs_diff"] == 0 else f"{p['max_abs_diff']:.2e}"
        speed = f"**{x(p['speedup'])}**" if p["path"] == "tuned_fp32" else x(p["speedup"])
        lines.append(f"| {SR_PATHS.get(p['path'], p['label'])} | {p['seconds']:.3f} | {speed} | {diff} |")
    fp32 = next(p for p in r["paths"] if p["path"] == "tuned_fp32")
    met = fp32["speedup"] >= r["target_speedup"] and fp32["max_abs_diff"] <= r["target_max_abs_diff"]
    lines += ["", f"Target ≥ {r['target_speedup']}× with fp32 max abs diff ≤ {r['target_max_abs_diff']:.0e}: "
                  f"{verdict(met)} ({x(fp32['speedup'])}, {fp32['max_abs_diff']:.1e})."]
    return "\n".join(lines)


def memory_sections(data: dict | None) -> list[dict]:
    secs = [v for k, v in (data or {}).get("sections", {}).items() if k.startswith("memory_")]
    return sorted(secs, key=lambda s: -s["results"]["lr_size"])


def sr_memory(results: Path) -> str:
    secs = memory_sections(load(results, "bench_sr"))
    if not secs:
        return missing("sections `memory_*` of bench_sr.json", f"{SR_CMD} --skip-speed --mem-size 2048")
    lines = ["| LR image | mode | peak RSS MiB | RSS before inference MiB | seconds |", "|---|---|---|---|---|"]
    notes = []
    for sec in secs:
        r = sec["results"]
        n = r["lr_size"]
        for mode in ("tiled", "untiled"):
            m = r["modes"][mode]
            label = f"tiled, {r['tile']} px tiles, overlap {r['overlap']}" if mode == "tiled" else "untiled"
            lines.append(f"| {n}×{n} | {label} | {m['peak_mib']:,.0f} | {m['before_mib']:,.0f} | {m['seconds']:.0f} |")
        same = r["modes"]["tiled"]["checksum"] == r["modes"]["untiled"]["checksum"]
        notes.append(f"{n}²: untiled / tiled peak **{x(r['untiled_over_tiled_peak'], 1)}**, output checksums "
                     f"{r['modes']['tiled']['checksum']:.6g} vs {r['modes']['untiled']['checksum']:.6g}"
                     f" ({'identical' if same else 'different'}) — {provenance(sec, memory=True)}")
    return "\n".join(lines + [""] + notes)


def sr_precision(results: Path) -> str:
    sec = need(results, "bench_sr_precision", "main", "python benchmarks/bench_sr_precision.py", whole_file=True)
    r = sec["results"]
    lines = [provenance(sec), "",
             "| set | images | bf16 vs fp32 PSNR, uint8 RGB: min / mean dB | float: min dB | max abs diff (float) | "
             "max uint8 diff | PSNR-Y vs HR fp32 / bf16 | seconds fp32 / bf16 |", "|---|---|---|---|---|---|---|---|"]
    for s in r["sets"]:
        lines.append(f"| {s['set']} | {s['images']} | **{s['rgb_psnr_min']:.2f}** / {s['rgb_psnr_mean']:.2f} | "
                     f"{s['float_psnr_min']:.2f} | {s['max_abs_diff_float']:.2e} | {s['max_uint8_diff']} | "
                     f"{s['psnr_y_fp32']:.3f} / {s['psnr_y_bf16']:.3f} | {s['seconds_fp32']:.0f} / "
                     f"{s['seconds_bf16']:.0f} |")
    worst = min(s["rgb_psnr_min"] for s in r["sets"])
    speed = sum(s["seconds_fp32"] for s in r["sets"]) / sum(s["seconds_bf16"] for s in r["sets"])
    drops = " / ".join(f"{s['psnr_y_fp32'] - s['psnr_y_bf16']:.3f}" for s in r["sets"])
    lines += ["", f"Target ≥ {r['target_min_psnr_db']:.0f} dB for every image: "
                  f"{verdict(worst >= r['target_min_psnr_db'])} (worst {worst:.2f} dB). PSNR-Y against HR drops by "
                  f"{drops} dB; bf16 is {x(speed, 1)} faster over these images."]
    return "\n".join(lines)


ONNX_PATHS = {"eager": "eager fp32 (`no_grad`, NCHW)",
              "inference_upscaler": "`InferenceUpscaler` fp32 (`inference_mode`, channels-last)",
              "onnxruntime": "onnxruntime fp32"}


def sr_onnx(results: Path) -> str:
    sec = need(results, "bench_sr_onnx", "main", "python benchmarks/bench_sr_onnx.py --repeat 10", whole_file=True)
    s = sec["settings"]
    lines = [provenance(sec), "", f"onnxruntime {s['onnxruntime']}, `{s['weights']}`, best of {s['repeat']}.", "",
             "| LR size | path | seconds | speed vs eager | speed vs InferenceUpscaler | max abs diff vs eager |",
             "|---|---|---|---|---|---|"]
    for row in sec["results"]["rows"]:
        vs = x(row["speed_vs_inference_upscaler"])
        if row["path"] == "onnxruntime":
            vs = f"**{vs}**"
        diff = "0" if row["max_abs_diff_vs_eager"] == 0 else f"{row['max_abs_diff_vs_eager']:.1e}"
        n = row["lr_size"]
        lines.append(f"| {n}×{n} | {ONNX_PATHS[row['path']]} | {row['seconds']:.3f} | {x(row['speed_vs_eager'])} | "
                     f"{vs} | {diff} |")
    return "\n".join(lines)


def sr_peers(results: Path) -> str:
    data = load(results, "bench_sr_peers")
    if data is None:
        return missing("bench_sr_peers.json", "python benchmarks/bench_sr_peers.py --threads 1 --size 128 --repeat 3")
    st = data["settings"]
    if "header" in data:
        head = provenance({"header": data["header"], "settings": {}})
    else:
        load_end = st.get("loadavg_at_end")
        head = (f"Source: `benchmarks/results/bench_sr_peers.json` (LR {st['lr_size']}², {st['threads']} thread, best "
                f"of {st['repeat']}, torch {st['torch']}, spandrel {st['spandrel']}"
                + (f", load average {load_end[0]:.1f} at the end" if load_end else "") + ")."
                + (" ⚠ taken on a **loaded machine**: the seconds are inflated several-fold and rankings closer than "
                   "~20 % are not reliable." if load_end and load_end[0] > 1.5 else ""))
    n = st["lr_size"]
    lines = [head, "",
             f"| model | scale | params (here) | GFLOPs / {n}² LR | CPU s / image | published params | "
             "published PSNR Set5 / Set14 (Y) |",
             "|---|---|---:|---:|---:|---:|---|"]
    notes = {"SwinIR-light": "[1]", "SAFMN": "[2]", "SPAN": "[3]", "OmniSR": "[4]"}
    k = lambda v: f"{v / 1000:.0f}K"  # noqa: E731
    psnr = lambda d: f"{d['Set5']:.2f} / {d['Set14']:.2f}"  # noqa: E731
    for r in data["rows"]:
        note = notes.get(r["model"], "")
        if r["model"] == "MDBN":
            pp = ps = "—"
        else:
            pp = (f"{k(r['published_params'])} {note}" if r.get("published_params") else
                  f"{k(r['secondary_params'])}, secondary {note}" if r.get("secondary_params") else
                  f"not verified {note}")
            ps = (psnr(r["published_psnr"]) + f" {note}" + (f" (DF2K-trained: {psnr(r['published_psnr_df2k'])})"
                                                              if r.get("published_psnr_df2k") else "")
                  if r.get("published_psnr") else
                  f"{psnr(r['secondary_psnr'])}, secondary {note}" if r.get("secondary_psnr") else
                  f"not verified {note}")
        params = f"{r['params']:,}" + (f" ({r['params_excl_rel_pos_bias']:,} without rel.-pos. bias tables)"
                                       if "params_excl_rel_pos_bias" in r else "")
        name = "MDBN (eager)" if r["model"] == "MDBN" else r["model"]
        lines.append(f"| {name} | x{r['scale']} | {params} | {r['gflops']:.2f} | {r['seconds']:.2f} | {pp} | "
                     f"{ps} |")
        if "seconds_tuned" in r:
            lines.append(f"| MDBN (tuned: channels-last) | x{r['scale']} | {r['params']:,} | {r['gflops']:.2f} | "
                         f"{r['seconds_tuned']:.2f} | | |")
    ratios = []
    for scale in sorted({r["scale"] for r in data["rows"]}):
        rows = [r for r in data["rows"] if r["scale"] == scale]
        mdbn = next(r for r in rows if r["model"] == "MDBN")
        ratios.append(f"x{scale}: " + ", ".join(f"{r['model']} {r['seconds'] / mdbn['seconds']:.2f}" for r in rows
                                                if r is not mdbn))
    lines += ["", "Peer time / MDBN eager time (below 1: the peer is faster): " + "; ".join(ratios) + "."]
    return "\n".join(lines)


def sr_readme(results: Path) -> str:
    data = load(results, "bench_sr")
    tuned = section(data, "tuned")
    mems = memory_sections(data)
    prec = section(load(results, "bench_sr_precision"), "main")
    parts = []
    if tuned:
        p = {q["path"]: q for q in tuned["results"]["paths"]}
        parts.append(f"The tuned inference path (inference mode, channels-last) runs at {x(p['tuned_fp32']['speedup'])} "
                     f"the speed of plain eager at equal fp32 outputs (max |Δ| {p['tuned_fp32']['max_abs_diff']:.0e}), "
                     f"bf16 {x(p['tuned_bf16']['speedup'])}{loaded_note(tuned)}")
    if prec:
        worst = min(s["rgb_psnr_min"] for s in prec["results"]["sets"])
        parts.append(f"bf16 output stays ≥ {math.floor(worst * 10) / 10:.1f} dB PSNR from the fp32 output on "
                     f"{'/'.join(s['set'] for s in prec['results']['sets'])}{loaded_note(prec)}")
    if mems:
        r = mems[0]["results"]
        n = r["lr_size"]
        same = r["modes"]["tiled"]["checksum"] == r["modes"]["untiled"]["checksum"]
        parts.append(f"tiled inference of a {n}×{n} LR image peaks at {r['modes']['tiled']['peak_mib'] / 1024:.2f} GiB "
                     f"against {r['modes']['untiled']['peak_mib'] / 1024:.2f} GiB untiled, with "
                     f"{'an identical' if same else 'a different'} output{loaded_note(mems[0], memory=True)}")
    if not parts:
        return "SR speed: " + missing("bench_sr.json", SR_CMD)
    return "; ".join(parts) + ". Tables and commands: [docs/benchmarks.md](docs/benchmarks.md#super-resolution)."


BLOCKS: dict[str, Callable[[Path], str]] = {
    "spectral": spectral_table, "spectral-readme": spectral_readme,
    "distill-loss": distill_loss, "distill-step": distill_step, "distill-compare": distill_compare,
    "distill-compile": distill_compile, "distill-alignment": distill_alignment, "distill-readme": distill_readme,
    "sr-sizes": sr_sizes, "sr-tuned": sr_tuned, "sr-memory": sr_memory, "sr-precision": sr_precision,
    "sr-onnx": sr_onnx, "sr-peers": sr_peers, "sr-readme": sr_readme,
}


# ---------------------------------------------------------------------------------------------------------- fill

def fill(text: str, render: Callable[[str], str]) -> str:
    """Replace the body of every ``<!-- bench:NAME -->`` … ``<!-- /bench:NAME -->`` block with ``render(NAME)``;
    text outside the markers is returned unchanged. Unpaired or nested markers raise FillError."""
    spans = [(m.start(), m.end(), m["name"]) for m in MARKER.finditer(text)]
    covered = set()
    for start, end, _ in spans:
        covered.update(range(start, end))
    for m in OPEN.finditer(text):
        if m.start() not in covered:
            raise FillError(f"unpaired marker {m.group(0)!r} at character {m.start()}")
    for start, end, name in spans:
        inner = text[start:end].split("\n", 1)[1]
        if OPEN.search(inner[:-len(f"<!-- /bench:{name} -->")]):
            raise FillError(f"nested marker inside block {name!r}")

    def sub(m: re.Match) -> str:
        body = render(m["name"]).rstrip("\n") + "\n"
        return m.group(1) + body + m.group(4)

    return MARKER.sub(sub, text)


def wrap(text: str) -> str:
    """Wrap prose paragraphs to the docs' line length; tables (lines starting with '|') stay as they are."""
    paragraphs = text.split("\n\n")
    return "\n\n".join(p if p.lstrip().startswith("|") else
                       textwrap.fill(" ".join(p.split()), WIDTH, break_long_words=False, break_on_hyphens=False)
                       for p in paragraphs)


def renderer(results: Path) -> Callable[[str], str]:
    def render(name: str) -> str:
        if name not in BLOCKS:
            raise FillError(f"unknown block {name!r}; known: {', '.join(BLOCKS)}")
        try:
            return wrap(BLOCKS[name](results))
        except Missing as exc:
            return wrap(str(exc))
    return render


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a doc differs from what the JSON files give")
    ap.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = ap.parse_args(argv)
    render = renderer(args.root / "benchmarks" / "results")
    stale = []
    for doc in DOCS:
        path = args.root / doc
        text = path.read_text()
        try:
            new = fill(text, render)
        except FillError as e:
            print(f"{doc}: {e}", file=sys.stderr)
            return 2
        if new != text:
            stale.append(doc)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print("out of date with benchmarks/results/*.json: " + ", ".join(stale)
              + " (run python tools/fill_bench_tables.py)", file=sys.stderr)
        return 1
    print(("rewrote " + ", ".join(stale)) if stale and not args.check else "docs match the result files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
