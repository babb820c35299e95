"""Load MDBN (or the plain / inception comparison nets) weights: published BasicSR files, plain state dicts, safetensors.

Never runs pickled code (``torch.load(weights_only=True)`` / safetensors). The architecture (features, blocks,
scale) is read from the tensor shapes; a file for another scale, or whose shapes do not fit, is a UserError
naming the file and both values.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from spectralkd.features.models import load_state_dict_file
from spectralkd.errors import UserError
from spectralkd.sr.mdbn import MDBN, check_scale
from spectralkd.sr.inception import InceptionSRNet
from spectralkd.sr.plainnet import PlainResNet

# The architectures ``build_model`` (and ``sr train``'s model.arch) accepts.
ALLOWED_ARCHS = ("mdbn", "plain", "inception")

def infer_arch(state: dict[str, torch.Tensor], path: str | Path = "weights") -> dict:
    """``{"arch": "mdbn"|"plain"|"inception", "num_feat", "num_block", "upscale", "num_in_ch", "num_out_ch"}``
    (plus ``branch_feat`` for inception) from shapes."""
    if "conv_first.weight" not in state or "conv_last.weight" not in state:
        raise UserError(f"{path} is not an MDBN state dict (no conv_first/conv_last weights)")
    for key, value in state.items():
        if key.endswith(".weight") and (value.dim() != 4 or min(value.shape) < 1) and value.dim() != 1:
            raise UserError(f"{path}: tensor {key} has shape {tuple(value.shape)}; a convolution weight of an SR "
                            "network is 4-D (out, in, kh, kw) with every size ≥ 1")
    for key in ("conv_first.weight", "conv_last.weight"):
        if state[key].dim() != 4:
            raise UserError(f"{path}: tensor {key} has shape {tuple(state[key].shape)}, expected 4-D (out, in, kh, kw)")
    num_feat, num_in = state["conv_first.weight"].shape[:2]
    arch = ("mdbn" if any(".baseblock1." in k for k in state)
            else "inception" if any(".branch1x1." in k for k in state) else "plain")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
    ups = sorted(int(m.group(1)) for k in state if (m := re.match(r"upsample\.(\d+)\.weight$", k)))
    if not ups:
        raise UserError(f"{path} has no upsample.N.weight tensors")
    first = state[f"upsample.{ups[0]}.weight"].shape[0] // num_feat
    if first not in (4, 9):
        raise UserError(f"{path}: upsample.{ups[0]}.weight has {state[f'upsample.{ups[0]}.weight'].shape[0]} output "
                        f"channels; with num_feat={num_feat} a pixel-shuffle upsampler has 4×num_feat or 9×num_feat")
    scale = 3 if first == 9 else 2 ** len(ups)
    out = {"arch": arch, "num_feat": int(num_feat), "num_block": max(blocks) + 1 if blocks else 0,
           "upscale": scale, "num_in_ch": int(num_in), "num_out_ch": int(state["conv_last.weight"].shape[0])}
    if arch == "inception":
        out["branch_feat"] = int(state["body.0.branch1x1.weight"].shape[0])
    return out


def build_model(arch: dict) -> nn.Module:
    """MDBN, the plain net or the inception net from an ``infer_arch``-style dict (``arch`` defaults to mdbn)."""
    name = arch.get("arch", "mdbn")
    if name not in ALLOWED_ARCHS:
        raise UserError(f"model.arch '{name}' is not supported; allowed: {', '.join(ALLOWED_ARCHS)}")
    kwargs = {k: arch[k] for k in ("num_in_ch", "num_out_ch", "num_feat", "num_block", "upscale")}
    if name == "inception":
        return InceptionSRNet(**kwargs, branch_feat=arch.get("branch_feat"))
    return MDBN(**kwargs) if name == "mdbn" else PlainResNet(**kwargs)


def load_sr_model(path: str | Path, scale: int | None = None) -> nn.Module:
    """An MDBN or plain SR net built from the shapes in ``path`` with its weights loaded (eval mode)."""
    state = load_state_dict_file(path)  # BasicSR params_ema preferred over params; DDP/compile prefixes removed
    arch = infer_arch(state, path)
    if scale is not None and check_scale(scale) != arch["upscale"]:
        raise UserError(f"weights {path} are for scale x{arch['upscale']}, but scale x{scale} was requested")
    model = build_model(arch)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        detail = "; ".join(filter(None, [
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
            f"shape (file vs model) {', '.join(wrong[:3])}" if wrong else ""]))
        raise UserError(f"weights {path} do not fit {arch['arch'].upper()}(num_feat={arch['num_feat']}, "
                        f"num_block={arch['num_block']}, upscale={arch['upscale']}): {detail}")
    model.load_state_dict(state)
    return model.eval()


def load_mdbn(path: str | Path, scale: int) -> MDBN:
    """MDBN for ``scale`` from a BasicSR file (``params_ema`` preferred over ``params``), a state dict, a training
    checkpoint or safetensors."""
    model = load_sr_model(path, scale)
    if not isinstance(model, MDBN):
        kind = "an inception net" if type(model).__name__ == "InceptionSRNet" else "a plain residual net"
        raise UserError(f"weights {path} are {kind}, not MDBN (no body.N.baseblock1 keys)")
    return model
