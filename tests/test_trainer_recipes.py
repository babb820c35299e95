"""The shipped recipes load (no unknown keys) and their layer pairs fit the real architectures."""
import pytest
import torch

from spectralkd.config import load_config
from spectralkd.config.classifier import defaults
from spectralkd.distill.model_setup import effective_lr
from spectralkd.distill.pairs import resolve_pairs, validate_pairs
from spectralkd.features import create_model, num_block_maps
from spectralkd.paths import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "configs").glob("*/*.yaml"))
RECIPES = [p for p in CONFIGS if p.parent.name in ("imagenet", "cifar10", "smoke")]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_loads(path):
    cfg = load_config(path, [], defaults())
    assert cfg["model"]["name"]


@pytest.mark.parametrize("name", ["deit_tiny_from_cait_s24", "deit_small_from_cait_s24", "swin_tiny_from_swin_small",
                                  "deit_tiny_from_regnety160", "deit_small_from_swin_small",
                                  "../cifar10/student_spectralkd", "../cifar10/xres_student_fourier",
                                  "../cifar10/xres_student_interpolate"])
def test_recipe_pairs_fit_architectures(name):
    cfg = load_config(REPO_ROOT / "configs" / "imagenet" / f"{name}.yaml", [], defaults())
    with torch.device("meta"):  # shapes only: no weight initialisation, no memory
        student = create_model(cfg["model"]["name"], model_kwargs=cfg["model"]["kwargs"])
        teacher = create_model(cfg["teacher"]["name"].split(".")[0], model_kwargs=cfg["teacher"]["kwargs"])
    d = cfg["distill"]
    s, t = resolve_pairs(d["student_ids"], d["teacher_ids"], None, num_block_maps(student), num_block_maps(teacher))
    shapes = validate_pairs(student, teacher, s, t, cfg["data"]["input_size"], device="meta",
                            spatial=d["spatial_align"])
    assert len(shapes) == len(s)
    if name.startswith(("deit", "swin")):
        assert effective_lr(cfg, cfg["data"]["batch_size"] * 2) == pytest.approx(5e-4)  # 2 GPUs × 256
    if name == "deit_tiny_from_cait_s24":
        assert shapes[0] == ((192, 14, 14), (384, 14, 14)) and t == [0, 1, 18, 19, 20, 21, 22, 23]
    if name == "deit_tiny_from_regnety160":  # RegNetY-16GF stages s1..s4 ↔ DeiT-Tiny blocks 4, 6, 9, 11
        assert shapes == [((192, 14, 14), (224, 56, 56)), ((192, 14, 14), (448, 28, 28)),
                          ((192, 14, 14), (1232, 14, 14)), ((192, 14, 14), (3024, 7, 7))]
        assert d["spatial_align"] == "fourier" and d["mode"] == "fft"
    if name == "deit_small_from_swin_small":
        assert shapes == [((384, 14, 14), (96, 56, 56)), ((384, 14, 14), (192, 28, 28)),
                          ((384, 14, 14), (384, 14, 14)), ((384, 14, 14), (768, 7, 7))]
    if name.startswith("../cifar10/xres"):  # the patch-8 student's 4×4 maps against the teacher's 8×8
        assert shapes[0] == ((64, 4, 4), (96, 8, 8))
    if name == "swin_tiny_from_swin_small":
        assert [a for a, _ in shapes] == [(96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7)]
