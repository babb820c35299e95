"""Typed configs: every key of train/distill and sr train/distill has a type and range, checked once at load time
(one line naming the key, the value and what is allowed; exit 2; nothing written), and numeric CLI flags likewise."""

import pytest
import yaml

from spectralkd.config import load_config
from spectralkd.config import classifier, sr
from spectralkd.config.classifier import ClassifierConfig
from spectralkd.config.schema import validate
from spectralkd.config.sr import SRConfig
from spectralkd.paths import REPO_ROOT

DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"


@pytest.mark.parametrize("setting, message", [
    ("seed=abc", "config key 'seed': 'abc' is not allowed; expected an integer ≥ 0"),
    ("epochs=2.5", "config key 'epochs': 2.5 is not allowed; expected an integer ≥ 1"),
    ("epochs=0", "config key 'epochs': 0 is not allowed; expected an integer ≥ 1"),
    ("epochs=true", "config key 'epochs': true is not allowed; expected an integer ≥ 1"),
    ("optim.lr=fast", "config key 'optim.lr': 'fast' is not allowed; expected a number > 0"),
    ("optim.lr=0", "config key 'optim.lr': 0 is not allowed; expected a number > 0"),
    ("optim.lr=.nan", "config key 'optim.lr': nan is not allowed; expected a number > 0"),
    ("data.batch_size=-4", "config key 'data.batch_size': -4 is not allowed; expected an integer ≥ 1"),
    ("max_val_batches=0", "config key 'max_val_batches': 0 is not allowed; expected null or an integer ≥ 1"),
    ("model=5", "config key 'model': 5 is not allowed; expected a mapping with keys name, kwargs, pretrained"),
    ("aug.hflip=abc", "config key 'aug.hflip': 'abc' is not allowed; expected a number in [0, 1]"),
    ("aug.hflip=1.5", "config key 'aug.hflip': 1.5 is not allowed; expected a number in [0, 1]"),
    ("distill.alpha=-0.1", "config key 'distill.alpha': -0.1 is not allowed; expected a number in [0, 1]"),
    ("data.crop_pct=-1", "config key 'data.crop_pct': -1 is not allowed; expected null or a number in (0, 1]"),
    ("data.std=[0,0,0]", "config key 'data.std': [0, 0, 0] is not allowed; expected null or a list of numbers > 0"),
    ("data.mean=[0.5,2,0.5]", "config key 'data.mean': [0.5, 2, 0.5] is not allowed; expected null or a list of "
                              "numbers in [0, 1]"),
    ("aug.scale=[1.0,0.5]", "config key 'aug.scale': [1.0, 0.5] is not allowed; expected [min, max] with min ≤ max"),
    ("device=gpu", "config key 'device': 'gpu' is not allowed; expected auto, cpu, cuda or cuda:N"),
    ("precision=fp8", "config key 'precision': 'fp8' is not allowed; expected one of fp32, bf16, fp16"),
    ("distill.feature_loss=l2", "config key 'distill.feature_loss': 'l2' is not allowed; expected one of spectral, "
                                "feature_mse, magnitude, band"),
    ("distill.band_emphasis=mid", "config key 'distill.band_emphasis': 'mid' is not allowed; expected one of low, high"),
    ("sched.sched=cosin", "config key 'sched.sched': 'cosin' is not allowed; expected one of cosine"),
    ("distill.student_ids=first", "config key 'distill.student_ids': 'first' is not allowed; expected null or auto or "
                                  "a list of integers"),
    ("ema.decay=1", "config key 'ema.decay': 1 is not allowed; expected a number in (0, 1)"),
])
def test_bad_values_are_one_line_before_any_run_directory(cli, tmp_path, setting, message):
    out = tmp_path / "run"
    code, _, err = cli("distill", "--config", DISTILL, "--out", out, "--set", setting)
    assert code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("setting, message", [
    ("scale=5", "config key 'scale': 5 is not allowed; expected 3 or a power of two ≥ 2"),
    ("optim.betas=[0.9]", "config key 'optim.betas': [0.9] is not allowed; expected a list of 2 numbers in [0, 1)"),
    ("data.patch_size=0", "config key 'data.patch_size': 0 is not allowed; expected an integer ≥ 1"),
    ("val.every=x", "config key 'val.every': 'x' is not allowed; expected an integer ≥ 1"),
    ("distill.student_blocks=[-1]", "config key 'distill.student_blocks': [-1] is not allowed; expected null or a "
                                    "list of integers ≥ 0"),
])
def test_sr_bad_values_are_one_line(cli, tmp_path, setting, message):
    out = tmp_path / "run"
    code, _, err = cli("sr", "train", "--set", f"out={out}", "--set", setting)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_good_values_are_coerced_to_plain_types():
    cfg = load_config(DISTILL, ["epochs=3", "optim.lr=1e-3", "data.batch_size=8.0", "aug.hflip=1"],
                      classifier.defaults())
    # YAML reads `1e-3` as text; the schema makes it a float; 8.0 becomes the int 8; lists stay lists.
    assert type(cfg["epochs"]) is int and cfg["epochs"] == 3
    assert type(cfg["optim"]["lr"]) is float and cfg["optim"]["lr"] == 0.001
    assert type(cfg["data"]["batch_size"]) is int and cfg["data"]["batch_size"] == 8
    assert type(cfg["aug"]["hflip"]) is float and cfg["aug"]["hflip"] == 1.0
    assert type(cfg["aug"]["scale"]) is list and cfg["aug"]["scale"] == [0.6, 1.0]
    assert cfg["model"]["kwargs"] == {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}
    assert type(cfg) is dict and type(cfg["optim"]) is dict
    assert yaml.safe_load(yaml.safe_dump(cfg, sort_keys=False)) == cfg  # saved config.yaml round-trips
    assert load_config(None, ["distill.student_ids=[0,-1]"], classifier.defaults())["distill"]["student_ids"] == [0, -1]
    assert load_config(None, ["device=cuda:1", "data.path=generated"], classifier.defaults())["device"] == "cuda:1"
    s = load_config(None, ["optim.lr=1e-3", "max_minutes=15", "data.val=[a, b]"], sr.defaults())
    assert s["optim"]["lr"] == 0.001 and type(s["max_minutes"]) is float and s["data"]["val"] == ["a", "b"]


def test_defaults_are_the_documented_values():
    d = classifier.defaults()
    assert (d["epochs"], d["precision"], d["optim"]["lr"], d["data"]["batch_size"], d["aug"]["ratio"],
            d["distill"]["mode"], d["ema"]["decay"], d["model"]["kwargs"]) == \
        (10, "bf16", 5e-4, 128, [0.75, 1.3333333], "fft", 0.9998, {})
    s = sr.defaults()
    assert (s["scale"], s["precision"], s["optim"]["betas"], s["sched"]["total_iters"], s["val"]["every"]) == \
        (2, "fp32", [0.9, 0.99], 2000, 500)
    assert load_config(None, [], classifier.defaults()) == d and load_config(None, [], sr.defaults()) == s
    assert set(classifier.RESUME_MUTABLE) >= {"epochs", "out"} and "out" in sr.RESUME_MUTABLE


def _leaves(schema):
    for name, field in schema.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            yield from ((f"{name}.{k}", f) for k, f in _leaves(sub))
        else:
            yield name, field


@pytest.mark.parametrize("schema", [ClassifierConfig, SRConfig])
def test_every_key_is_documented(schema):
    undocumented = [name for name, field in _leaves(schema) if not field.description]
    assert undocumented == []


def _saved_configs():
    files = [*REPO_ROOT.glob("configs/**/*.yaml"), *REPO_ROOT.glob("benchmarks/results/**/config.yaml"),
             *REPO_ROOT.glob("artifacts/**/config.yaml")]
    return sorted(f for f in files if f.parent.name != "cohorts")  # cohort files list students (tests/test_cohort.py)


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and k != "kwargs":
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_every_saved_config_loads_unchanged():
    files = _saved_configs()
    assert len(files) >= 30  # the recipes and the committed runs
    for path in files:
        defaults = sr.defaults() if "sr" in path.relative_to(REPO_ROOT).parts else classifier.defaults()
        cfg = load_config(path, [], defaults)
        # every value the file sets comes back equal (validation coerces types, never changes a value) ...
        given = dict(_flat(yaml.safe_load(path.read_text())))
        loaded = dict(_flat(cfg))
        assert {k: loaded[k] for k in given} == given, path
        # ... and checking the resolved config again changes nothing (what a saved config.yaml and --resume see)
        assert validate(cfg, defaults.schema) == cfg, path


@pytest.mark.parametrize("argv, flag, value", [
    (["analyze", "--model", "m", "--crop-pct", "-1"], "--crop-pct", "-1 is not allowed; expected a number in (0, 1]"),
    (["analyze", "--model", "m", "--std", "0", "0", "0"], "--std", "0 is not allowed; expected a number > 0"),
    (["analyze", "--model", "m", "--mean", "0.5", "2", "0.5"], "--mean", "2 is not allowed; expected a number in [0, 1]"),
    (["analyze", "--model", "m", "--split", "nosuch"], "--split", "invalid choice: 'nosuch'"),
    (["analyze", "--model", "m", "--num-images", "0"], "--num-images", "0 is not allowed; expected an integer ≥ 1"),
    (["analyze", "--model", "m", "--batch-size", "x"], "--batch-size", "'x' is not allowed; expected an integer ≥ 1"),
    (["eval", "--checkpoint", "c", "--crop-pct", "1.5"], "--crop-pct", "1.5 is not allowed; expected a number in (0, 1]"),
    (["eval", "--checkpoint", "c", "--std", "0.2", "-1", "0.2"], "--std", "-1 is not allowed; expected a number > 0"),
    (["eval", "--checkpoint", "c", "--split", "nosuch"], "--split", "invalid choice: 'nosuch'"),
    (["eval", "--checkpoint", "c", "--batch-size", "0"], "--batch-size", "0 is not allowed; expected an integer ≥ 1"),
    (["compare", "a", "--num-images", "-5"], "--num-images", "-5 is not allowed; expected an integer ≥ 1"),
    (["sr", "test", "--scale", "2", "--data", "d", "--tile", "0"], "--tile", "0 is not allowed; expected an integer ≥ 1"),
    (["sr", "upscale", "a", "b", "--weights", "w", "--scale", "2", "--tile-overlap", "-1"], "--tile-overlap",
     "-1 is not allowed; expected an integer ≥ 0"),
])
def test_bad_cli_flags_name_the_flag_and_value(cli, argv, flag, value):
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]  # argparse: the usage line, then one error line
    assert f"argument {flag}" in last and value in last, err
    assert "Traceback" not in err
