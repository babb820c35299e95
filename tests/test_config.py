import pytest

from spectralkd.config import load_config, parse_override
from spectralkd.errors import UserError

DEFAULTS = {"epochs": 10, "optim": {"lr": 1e-3, "wd": 0.05}, "model": {"kwargs": {}}}


def test_overrides_parse_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\noptim:\n  lr: 0.01\nmodel:\n  kwargs: {depth: 2}\n")
    cfg = load_config(path, ["optim.wd=0", "model.kwargs.embed_dim=48"], DEFAULTS)
    assert cfg == {"epochs": 3, "optim": {"lr": 0.01, "wd": 0}, "model": {"kwargs": {"depth": 2, "embed_dim": 48}}}
    assert parse_override("a.b=[1, 2]") == {"a": {"b": [1, 2]}}


def test_unknown_keys_and_bad_files(tmp_path):
    with pytest.raises(UserError, match="unknown config key 'optim.lrr'.*allowed at this level: lr, wd"):
        load_config(None, ["optim.lrr=1"], DEFAULTS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad, [], DEFAULTS)
    with pytest.raises(UserError, match="key=value"):
        load_config(None, ["epochs"], DEFAULTS)
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "missing.yaml", [], DEFAULTS)
