"""CNN and Swin stage teachers: their maps, names, the cross-architecture pair recommendation, pair validation
with spatial alignment, `analyze --student-model`, and a ResNet teacher distilling a DeiT student end to end."""
import json
import math

import numpy as np
import pytest
import torch
import yaml
from conftest import run_cli
from PIL import Image

from spectralkd.analysis.pipeline import student_map_shapes
from spectralkd.analysis.recommend import depth_matched_pairs, describe_pairs, recommend_from_layers, relative_depth
from spectralkd.distill.pairs import validate_pairs
from spectralkd.errors import UserError
from spectralkd.features import block_maps, create_model, map_names, module_maps, num_block_maps
from spectralkd.paths import REPO_ROOT
from spectralkd.runtime.runlog import read_jsonl

SWIN = dict(img_size=32, window_size=2, embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), num_classes=10)
DEIT = dict(img_size=32, patch_size=8, depth=6, embed_dim=32, num_heads=2, num_classes=10)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name, kwargs, channels, names", [
    ("resnet18", {}, [64, 64, 128, 256, 512], ["act1", "layer1", "layer2", "layer3", "layer4"]),
    ("regnety_002", {}, [32, 24, 56, 152, 368], ["stem", "s1", "s2", "s3", "s4"]),
    ("convnext_atto", {}, [40, 80, 160, 320], ["stages.0", "stages.1", "stages.2", "stages.3"]),
    ("swin_tiny_patch4_window7_224", SWIN, [24, 48, 96, 192], ["layers.0", "layers.1", "layers.2", "layers.3"]),
])
def test_stage_maps_have_the_stage_shapes_and_equal_the_named_modules(name, kwargs, channels, names):
    model = create_model(name, model_kwargs=kwargs).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = block_maps(model, x)
        hooked = module_maps(model, x, names)  # Swin's NHWC stage outputs are recognised without nhwc=True
    reductions = [info["reduction"] for info in model.feature_info]  # strides 2, 4, 8, 16, 32 (stem first)
    assert [tuple(m.shape) for m in maps] == [(2, c, 32 // r, 32 // r) for c, r in zip(channels, reductions)]
    assert num_block_maps(model) == len(channels) and map_names(model) == names
    for a, b in zip(maps, hooked):
        assert torch.allclose(a, b, atol=1e-6)


def test_relative_depth_rule_by_hand():
    # RegNetY: stem, s1..s4 (T = 5) → DeiT-Tiny (S = 12): round((t+1)·12/5) − 1 = 1, 4, 6, 9, 11
    assert [relative_depth(t, 5, 12) for t in range(5)] == [1, 4, 6, 9, 11]
    # k = 3 best stages by score: s4 (0.9), stem (0.8), s2 (0.7) → students 11, 1, 6 in student order
    assert depth_matched_pairs([0.8, 0.1, 0.7, 0.2, 0.9], 12, 3) == ([1, 6, 11], [0, 2, 4])
    # a 12-block teacher into a 4-stage student: blocks 2, 5, 8, 11 sit at stages 0..3; collisions keep the best
    scores = [0.0] * 12
    scores[11], scores[10], scores[5], scores[2] = 4.0, 3.5, 3.0, 2.0
    assert depth_matched_pairs(scores, 4, 3) == ([0, 1, 3], [2, 5, 11])
    with pytest.raises(UserError, match="between 1 and 4"):
        depth_matched_pairs(scores, 4, 5)


def test_recommendation_across_architectures_shows_sizes():
    regnet = create_model("regnety_002").eval()
    deit = create_model("deit_tiny_patch16_224", model_kwargs=DEIT)
    with torch.no_grad():
        t_maps = block_maps(regnet, torch.randn(2, 3, 32, 32))
    layers = [{"index": i, "shape": list(m.shape[1:]), "intensity": float(m.abs().mean())}
              for i, m in enumerate(t_maps)]
    s_shapes = student_map_shapes(deit, 32)
    assert s_shapes == [[32, 4, 4]] * 6
    rec = recommend_from_layers(layers, 6, 3, student_shapes=s_shapes)
    assert rec["rule"] == "relative_depth" and len(rec["student_ids"]) == 3
    # every chosen teacher stage sits at its relative depth in the 6-block student
    assert rec["student_ids"] == [relative_depth(t, 5, 6) for t in rec["teacher_ids"]]
    best = sorted(range(5), key=lambda i: -layers[i]["intensity"])[:3]
    assert sorted(rec["teacher_ids"]) == sorted(best)
    assert rec["teacher_shapes"] == [layers[t]["shape"] for t in rec["teacher_ids"]]
    assert rec["student_shapes"] == [[32, 4, 4]] * 3
    assert f"{rec['student_ids'][0]} (32×4×4) <- {rec['teacher_ids'][0]} (" in describe_pairs(rec)
    # without the student's shapes, a stage teacher with a deeper student is also paired by relative depth,
    # and block ↔ block keeps SpectralKD's rule
    assert recommend_from_layers(layers, 6, 3)["rule"] == "relative_depth"
    blocks = [{"index": i, "shape": [32, 4, 4], "intensity": float(i)} for i in range(6)]
    assert recommend_from_layers(blocks, 6, 2, student_shapes=s_shapes)["rule"] == "blocks"
    # a 4-stage student of a 4-stage teacher: stage by stage
    swin = [[24, 8, 8], [48, 4, 4], [96, 2, 2], [192, 1, 1]]
    convnext = [{"index": i, "shape": s, "intensity": 1.0} for i, s in enumerate([[40, 8, 8], [80, 4, 4], [160, 2, 2],
                                                                                [320, 1, 1]])]
    assert recommend_from_layers(convnext, 4, student_shapes=swin)["rule"] == "stages"


def test_validate_pairs_needs_fourier_for_different_sizes():
    teacher = create_model("resnet10t", model_kwargs={"num_classes": 10}).eval()
    student = create_model("deit_tiny_patch16_224", model_kwargs=DEIT)
    with pytest.raises(UserError, match=r"\(64, 8, 8\).*differ in H×W; set distill.spatial_align: fourier"):
        validate_pairs(student, teacher, [0, 5], [1, 2], 32)
    shapes = validate_pairs(student, teacher, [0, 5], [1, 2], 32, spatial="fourier")
    assert shapes == [((32, 4, 4), (64, 8, 8)), ((32, 4, 4), (128, 4, 4))]
    with pytest.raises(UserError, match="spatial alignment 'bicubic' is not supported"):
        validate_pairs(student, teacher, [0], [1], 32, spatial="bicubic")


def test_analyze_with_student_model_recommends_pairs_across_architectures(tmp_path):
    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / f"img{i}.png")
    code, out, err = run_cli("analyze", "--model", "resnet10t", "--input-size", "32", "--data", str(data),
                             "--student-model", "deit_tiny_patch16_224", "--student-model-kwargs", json.dumps(DEIT),
                             "--num-pairs", "3", "--out", str(tmp_path / "o"), "--no-progress")
    assert code == 0, err
    rec = json.loads((tmp_path / "o" / "analysis.json").read_text())["recommended"]
    assert rec["rule"] == "relative_depth" and len(rec["teacher_ids"]) == 3
    assert rec["student_shapes"] == [[32, 4, 4]] * 3 and rec["teacher_shapes"][0][0] in (24, 32, 64, 128, 256, 512)
    assert "rule relative_depth" in out and "(32×4×4) <-" in out
    assert "layer1" in (tmp_path / "o" / "layers.csv").read_text()  # stage names from feature_info
    code, _, err = run_cli("analyze", "--model", "resnet10t", "--input-size", "32", "--data", str(data),
                           "--student-model", "deit_tiny_patch16_224", "--student-model-kwargs", json.dumps(DEIT),
                           "--student-depth", "4", "--out", str(tmp_path / "p"), "--no-progress")
    assert code == 2 and "--student-depth 4 but --student-model deit_tiny_patch16_224 has 6 maps" in err


def test_resnet_teacher_distils_deit_student_end_to_end(tmp_path, synthetic_root):
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke" / "distill.yaml").read_text())
    cfg["teacher"] = {"name": "resnet10t", "kwargs": {"num_classes": 10}, "mean": [0.5, 0.5, 0.5],
                      "std": [0.25, 0.25, 0.25]}
    cfg["max_steps_per_epoch"] = 3
    # student blocks 0, 1 (4×4 maps) ↔ ResNet layer1 (8×8) and layer2 (4×4)
    cfg["distill"].update(student_ids=[0, 1], teacher_ids=[1, 2], spatial_align="fourier")
    path = tmp_path / "resnet_teacher.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run_cli("distill", "--config", str(path), "--data", str(synthetic_root),
                           "--out", str(tmp_path / "r"))
    assert code == 0, err
    (record,) = read_jsonl(tmp_path / "r" / "log.jsonl")
    assert record["loss_fft"] > 0 and record["loss_kd"] > 0
    assert math.isclose(record["train_loss"], record["loss_ce"] + record["loss_kd"] + record["loss_fft"], rel_tol=1e-6)
    # the same run with the strict default stops before training, naming the option
    code, _, err = run_cli("distill", "--config", str(path), "--set", "distill.spatial_align=strict",
                           "--data", str(synthetic_root), "--out", str(tmp_path / "s"))
    assert code == 2 and "distill.spatial_align: fourier" in err and not (tmp_path / "s").exists()


def test_distill_pairs_by_module_names(tmp_path, synthetic_root):
    """Any sub-module as a layer: a ResNet's inner block and a DeiT block named, maps by forward hooks."""
    from spectralkd.distill.pairs import resolve_pairs
    from spectralkd.features import MapsAndLogits

    teacher = create_model("resnet10t", model_kwargs={"num_classes": 10}).eval()
    with pytest.raises(UserError, match="1 ids but distill.teacher_ids has 2"):
        resolve_pairs([0], "layer1.0 layer2", None, 6, num_block_maps(teacher))
    s, t = resolve_pairs([0, -1], ["layer1.0", "layer2"], None, 6, num_block_maps(teacher))
    assert (s, t) == ([0, 5], ["layer1.0", "layer2"])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, maps = MapsAndLogits(teacher, t)(x)
        assert torch.allclose(logits, teacher(x), atol=1e-5)
        # layer2 is stage 2 of block_maps; layer1.0 (the only block of layer1) equals stage 1
        assert torch.allclose(maps[1], block_maps(teacher, x, [2])[0], atol=1e-6)
        assert torch.allclose(maps[0], block_maps(teacher, x, [1])[0], atol=1e-6)
    student = create_model("deit_tiny_patch16_224", model_kwargs=DEIT)
    shapes = validate_pairs(student, teacher, s, t, 32, spatial="fourier")
    assert shapes == [((32, 4, 4), (64, 8, 8)), ((32, 4, 4), (128, 4, 4))]
    with pytest.raises(UserError, match="module 'layer9' is not in ResNet"):
        MapsAndLogits(teacher, ["layer9"])
    with pytest.raises(UserError, match="must be a list of integers, of module names, or 'auto'"):
        resolve_pairs([0], "1 layer2", None, 6, 5)
    # end to end through the trainer, with the teacher's layers named
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke" / "distill.yaml").read_text())
    cfg["teacher"] = {"name": "resnet10t", "kwargs": {"num_classes": 10}, "mean": [0.5, 0.5, 0.5],
                      "std": [0.25, 0.25, 0.25]}
    cfg["max_steps_per_epoch"] = 2
    cfg["distill"].update(student_ids=[0, 1], teacher_ids=["layer1.0", "layer2"], spatial_align="fourier")
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run_cli("distill", "--config", str(path), "--data", str(synthetic_root),
                           "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "teacher ['layer1.0', 'layer2']" in err
    (record,) = read_jsonl(tmp_path / "r" / "log.jsonl")
    assert record["loss_fft"] > 0


def test_compare_ignores_pairs_given_as_module_names():
    from spectralkd.analysis.compare.pipeline import _run_pairs

    assert _run_pairs({"pairs": {"student_ids": [0, 1], "teacher_ids": ["layer1.0", "layer2"]}}) is None
    assert _run_pairs({"pairs": {"student_ids": [0, 1], "teacher_ids": [1, 2]}}) == {"student_ids": [0, 1],
                                                                                    "teacher_ids": [1, 2]}
