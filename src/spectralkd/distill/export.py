"""`spectralkd export`: a trained classifier as a timm / Hugging Face Hub model folder.

The folder holds ``config.json`` (written by timm's own ``save_config_for_hf``: architecture, ``model_args``,
``num_classes``, ``label_names`` and a ``pretrained_cfg`` with the run's preprocessing), ``model.safetensors``
(the native timm state dict) and ``README.md`` (a model card: teacher, recipe, data, accuracy, command). It loads
with ``timm.create_model("local-dir:DIR", pretrained=True)`` and, uploaded as it is, with ``"hf-hub:USER/REPO"``.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from spectralkd.errors import UserError
from spectralkd.runtime.checkpoint import _plain_tensors, load_weights
from spectralkd.runtime.io import atomic_write_bytes, atomic_write_text

# The first timm whose save_config_for_hf takes data_config and records the factory's model arguments.
EXPORT_MIN_TIMM = "1.0.31"

# Fields of timm's default pretrained_cfg that describe the architecture's *original* published weights (their
# tag, licence, paper); they do not hold for our weights, so they are dropped from the exported config.
_FOREIGN_CFG_KEYS = ("tag", "license", "paper_ids", "paper_name", "origin_url", "notes", "hf_hub_id",
                     "hf_hub_filename", "url", "file", "source", "state_dict", "test_input_size", "test_crop_pct")


def _load_source(checkpoint: Path) -> tuple[dict, dict]:
    """(state_dict, card) from a ``.safetensors`` (with its card) or a ``.pt``/``.pth`` (no card)."""
    from spectralkd.features import load_state_dict_file

    if checkpoint.is_dir():
        hint = " (e.g. RUN/best.safetensors)" if (checkpoint / "best.safetensors").is_file() else ""
        raise UserError(f"--checkpoint {checkpoint} is a folder; give the weights file{hint}")
    if not checkpoint.is_file():
        raise UserError(f"--checkpoint {checkpoint} does not exist")
    if checkpoint.suffix == ".safetensors":
        state, card = load_weights(checkpoint)
        return state, card
    return load_state_dict_file(checkpoint), {}


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder to write config.json, model.safetensors and README.md")
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"--out {out}: {out.parent} is a file, not a folder")


def _timm_config(model: torch.nn.Module, card: dict, data: dict) -> dict:
    """timm's Hub ``config.json`` for ``model`` with the run's preprocessing and class names."""
    import inspect

    import timm
    from timm.models import _hub

    save_config_for_hf = _hub.save_config_for_hf
    if "data_config" not in inspect.signature(save_config_for_hf).parameters:
        raise UserError(f"spectralkd export needs timm >= {EXPORT_MIN_TIMM} (its config writer records the model's "
                        f"arguments and preprocessing); this is timm {timm.__version__}: "
                        f"pip install 'timm>={EXPORT_MIN_TIMM}'")
    data_config = {}
    if data.get("input_size"):
        size = int(data["input_size"])
        data_config["input_size"] = (3, size, size)
    for key in ("mean", "std"):
        if data.get(key) is not None:
            data_config[key] = tuple(float(v) for v in data[key])
    for key in ("crop_pct", "interpolation"):
        if data.get(key) is not None:
            data_config[key] = data[key]
    model_config = {}
    classes = data.get("classes")
    if classes and len(classes) == getattr(model, "num_classes", None):
        model_config["label_names"] = list(classes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        try:
            save_config_for_hf(model, str(path), model_config=model_config, data_config=data_config)
        except (ValueError, TypeError) as exc:
            raise UserError(f"timm cannot describe this model for export: {' '.join(str(exc).split())[:200]}") from None
        config = json.loads(path.read_text())
    for key in _FOREIGN_CFG_KEYS:
        config["pretrained_cfg"].pop(key, None)
    return config


def _fmt_pct(value) -> str:
    return f"{value:.2f} %" if isinstance(value, (int, float)) else "not recorded"


def model_card_markdown(card: dict, config: dict, n_params: int, repo_hint: str = "USER/REPO") -> str:
    """The ``README.md`` of an exported folder: Hub front matter, then teacher, recipe, data, accuracy, command."""
    run_cfg = card.get("config") or {}
    data = card.get("data") or {}
    teacher = run_cfg.get("teacher") or {}
    distill = run_cfg.get("distill") or {}
    command = card.get("command") or "not recorded"
    distilled = bool(teacher.get("name")) or command.startswith("spectralkd distill")
    arch = config["architecture"]
    pcfg = config["pretrained_cfg"]
    lines = ["---", "library_name: timm", "pipeline_tag: image-classification", "tags:", "- image-classification",
             "- timm", "- spectralkd"]
    if distilled:
        lines.append("- knowledge-distillation")
    lines += ["---", "", f"# {arch} ({'distilled' if distilled else 'trained'} with spectralkd)", ""]
    lines += [f"A `{arch}` classifier ({n_params / 1e6:.2f} M parameters, {config['num_classes']} classes, "
              f"input {pcfg['input_size'][1]}×{pcfg['input_size'][2]}) exported by `spectralkd export`.", ""]
    lines += ["## Teacher", ""]
    if distilled:
        src = teacher.get("checkpoint") or ("timm pretrained weights" if teacher.get("pretrained") else "not recorded")
        kw = f", kwargs `{json.dumps(teacher.get('kwargs'))}`" if teacher.get("kwargs") else ""
        lines.append(f"`{teacher.get('name') or 'not recorded'}`{kw}, weights: {src}.")
    else:
        lines.append("None: trained from labels only (`spectralkd train`).")
    lines += ["", "## Recipe", ""]
    if run_cfg:
        optim, sched, aug = run_cfg.get("optim") or {}, run_cfg.get("sched") or {}, run_cfg.get("aug") or {}
        lines.append(f"- {card.get('epochs_done', run_cfg.get('epochs'))} of {run_cfg.get('epochs')} epochs, "
                     f"seed {card.get('seed', run_cfg.get('seed'))}, precision {run_cfg.get('precision')}, "
                     f"batch {(run_cfg.get('data') or {}).get('batch_size')} per process")
        lines.append(f"- optimiser {optim.get('opt')} lr {optim.get('lr')} weight decay {optim.get('weight_decay')}; "
                     f"schedule {sched.get('sched')} with {sched.get('warmup_epochs')} warm-up epochs")
        lines.append(f"- augmentation: auto-augment {aug.get('auto_augment')}, label smoothing {aug.get('smoothing')}, "
                     f"mixup {aug.get('mixup')}, cutmix {aug.get('cutmix')}")
        if distilled:
            keys = ("mode", "alpha", "tau", "beta", "w_fft", "feature_loss", "band_emphasis", "band_strength")
            lines.append("- distillation: " + ", ".join(f"{k} {distill.get(k)}" for k in keys if k in distill))
            pairs = card.get("pairs") or {}
            if pairs:
                lines.append(f"- feature pairs: student {pairs.get('student_ids')} ↔ teacher {pairs.get('teacher_ids')}")
        lines.append(f"- weights exported: {card.get('weights', 'model')} (epoch {card.get('epoch')})")
    else:
        lines.append("Not recorded (the checkpoint had no spectralkd model card).")
    lines += ["", "## Data", ""]
    if data:
        lines.append(f"`{data.get('path')}`: {data.get('num_train')} training / {data.get('num_val')} validation images, "
                     f"{len(data.get('classes') or [])} classes; input {data.get('input_size')} px, mean "
                     f"{data.get('mean')}, std {data.get('std')}, {data.get('interpolation')} resize, "
                     f"crop_pct {data.get('crop_pct')}.")
    else:
        lines.append("Not recorded.")
    lines += ["", "## Accuracy", ""]
    lines.append(f"Validation top-1 {_fmt_pct(card.get('top1'))}, top-5 {_fmt_pct(card.get('top5'))}"
                 + (f" at epoch {card['epoch']}" if card.get("epoch") else "") + " (as measured during training).")
    lines += ["", "## Command", "", "```", command, "```", "", "## Use", "", "```python", "import timm",
              "from timm.data import create_transform, resolve_data_config", "",
              f'model = timm.create_model("hf-hub:{repo_hint}", pretrained=True)  # or "local-dir:PATH/TO/THIS/FOLDER"',
              "model.eval()", "transform = create_transform(**resolve_data_config({}, model=model))",
              "labels = model.pretrained_cfg.get(\"label_names\")", "```", ""]
    return "\n".join(lines)


def export_for_timm(checkpoint: str | Path, out: str | Path, model_name: str | None = None,
                    model_kwargs: str | dict | None = None, verify: bool = True) -> dict:
    """Write ``out/{config.json, model.safetensors, README.md}`` for the classifier in ``checkpoint``.

    ``model_name``/``model_kwargs`` default to the checkpoint's model card (needed for files without one).
    With ``verify``, the folder is loaded back through ``timm.create_model("local-dir:...", pretrained=True)`` and
    its logits on a random batch are compared with the source model's; the largest difference is returned.
    """
    import timm

    from spectralkd.features import create_model, load_into, parse_model_kwargs

    checkpoint, out = Path(checkpoint), Path(out)
    _check_out(out)
    state, card = _load_source(checkpoint)
    name = model_name or card.get("model")
    if not name:
        raise UserError(f"checkpoint {checkpoint} has no model card naming the model; pass --model NAME and "
                        "--model-kwargs JSON (e.g. '{\"num_classes\": 10}')")
    kwargs = parse_model_kwargs(model_kwargs) if model_kwargs else dict(card.get("model_kwargs") or {})
    data = dict(card.get("data") or {})
    if "num_classes" not in kwargs and data.get("classes"):
        kwargs["num_classes"] = len(data["classes"])
    model = create_model(name, model_kwargs=kwargs)
    load_into(model, state, str(checkpoint), strict=True)
    model.eval()
    config = _timm_config(model, card, data)
    n_params = sum(p.numel() for p in model.parameters())

    from safetensors.torch import save as st_save

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "model.safetensors", st_save(_plain_tensors(model.state_dict()), metadata={"format": "pt"}))
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(out / "README.md", model_card_markdown(card, config, n_params))
    result = {"out": str(out), "model": name, "num_classes": config["num_classes"], "params": n_params,
              "files": ["config.json", "model.safetensors", "README.md"]}
    if verify:
        size = tuple(config["pretrained_cfg"]["input_size"])
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, *size, generator=gen)
        loaded = timm.create_model(f"local-dir:{out.resolve()}", pretrained=True).eval()
        with torch.no_grad():
            diff = (loaded(x) - model(x)).abs().max().item()
        result["max_abs_logit_diff"] = diff
        if diff != 0.0:
            raise UserError(f"exported folder {out} does not reproduce the model through timm (max |Δlogit| {diff:.3g})")
    return result
