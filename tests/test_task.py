"""spectralkd.SpectralKD, the library object (a timm TrainingTask), against independent computations."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.loss import LabelSmoothingCrossEntropy
from timm.task import TrainingTask

import spectralkd
from spectralkd.distill.losses import SpectralKDLoss, spectral_alignment_loss
from spectralkd.errors import UserError
from spectralkd.features import block_maps, create_model

STUDENT = ("deit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2,
                                     "num_classes": 10})
TEACHER = ("cait_xxs24_224", {"img_size": 32, "patch_size": 8, "depth": 4, "embed_dim": 64, "num_heads": 2,
                              "depth_token_only": 1, "num_classes": 10})


def _models(student=STUDENT):
    torch.manual_seed(0)
    return create_model(student[0], model_kwargs=student[1]), create_model(TEACHER[0], model_kwargs=TEACHER[1])


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)


def test_public_name_and_timm_contract():
    assert spectralkd.SpectralKD is spectralkd.distill.task.SpectralKD
    student, teacher = _models()
    task = spectralkd.SpectralKD(student, teacher, [0, 1], [1, 3])
    assert isinstance(task, TrainingTask)
    out = task(*_batch())
    assert {"loss", "output", "loss_ce", "loss_kd", "loss_fft"} <= set(out)
    assert out["output"].shape == (4, 10) and out["loss"].requires_grad


def test_loss_equals_spectralkd_loss_on_the_same_maps():
    student, teacher = _models()
    task = spectralkd.SpectralKD(student, teacher, [0, 1], [1, 3], mode="soft", alpha=0.7, tau=2.0, w_fft=0.3,
                                 label_smoothing=0.1, student_norm=((0.5,) * 3, (0.25,) * 3),
                                 teacher_norm=((0.5,) * 3, (0.25,) * 3))
    images, labels = _batch()
    task.train()
    out = task(images, labels)
    # independent: maps from forward_intermediates, logits from plain forwards, the loss assembled by hand
    student.train()
    s_maps = block_maps(student, images, [0, 1])
    with torch.no_grad():
        t_logits, t_maps = teacher(images), block_maps(teacher, images, [1, 3])
    s_logits = student(images)
    ce = LabelSmoothingCrossEntropy(0.1)(s_logits, labels)
    kd = F.kl_div(F.log_softmax(s_logits / 2, 1), F.log_softmax(t_logits / 2, 1), reduction="batchmean",
                  log_target=True) * 4
    expected = 0.3 * ce + 0.7 * kd + 0.3 * spectral_alignment_loss(s_maps, t_maps)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    ref, parts = SpectralKDLoss(LabelSmoothingCrossEntropy(0.1), "soft", 0.7, 2.0, 1.0, 0.3)(
        s_logits, labels, t_logits, s_maps, t_maps)
    assert out["loss"].item() == pytest.approx(ref.item(), rel=1e-6)
    for key in ("loss_ce", "loss_kd", "loss_fft"):
        assert out[key].item() == pytest.approx(parts[key].item(), rel=1e-5)


def test_teacher_is_frozen_in_eval_mode_and_gets_no_gradients():
    student, teacher = _models()
    task = spectralkd.SpectralKD(student, teacher, [0, 1], [1, 3])
    task.train()
    assert student.training and not teacher.training
    task(*_batch())["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_teacher_input_is_renormalised():
    student, teacher = _models()
    s_norm, t_norm = ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    task = spectralkd.SpectralKD(student, teacher, mode="soft", w_fft=0.0, student_norm=s_norm, teacher_norm=t_norm)
    raw = torch.rand(2, 3, 32, 32)
    as_student = (raw - torch.tensor(s_norm[0]).view(1, 3, 1, 1)) / torch.tensor(s_norm[1]).view(1, 3, 1, 1)
    as_teacher = (raw - torch.tensor(t_norm[0]).view(1, 3, 1, 1)) / torch.tensor(t_norm[1]).view(1, 3, 1, 1)
    logits, _ = task.teacher(as_student)
    assert torch.allclose(logits, teacher(as_teacher), atol=1e-5)


class TinyCNN(nn.Module):
    """Not a timm model: layers are reached by module name only."""

    def __init__(self, width: int):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.stage1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.stage2(self.stage1(self.stem(x))).mean((2, 3)))


def test_module_names_of_any_module_and_one_student_forward():
    torch.manual_seed(0)
    student, teacher = TinyCNN(8), TinyCNN(16)
    calls = {"n": 0}
    student.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    task = spectralkd.SpectralKD(student, teacher, ["stage1", "stage2"], ["stage1", "stage2"], mode="fft",
                                 alpha=0.0, w_fft=1.0, label_smoothing=0.0)
    images, labels = _batch()
    out = task(images, labels)
    assert calls["n"] == 1  # maps and logits from one student forward
    captured = {}
    hooks = [getattr(m, n).register_forward_hook(lambda mod, i, o, n=n: captured.__setitem__(n, o))
             for m in (student,) for n in ("stage1", "stage2")]
    logits = student(images)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        t_maps = [teacher.stage1(teacher.stem(images))]
        t_maps.append(teacher.stage2(t_maps[0]))
    expected = F.cross_entropy(logits, labels) + spectral_alignment_loss([captured["stage1"], captured["stage2"]],
                                                                         t_maps)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("layers, message", [
    ((["stage9"], ["stage1"]), "module 'stage9' is not in TinyCNN"),
    (([0], [1]), "has no forward_intermediates"),
    ((["stage1", "stage2"], ["stage1"]), "2 student layers but 1 teacher layers"),
    ((None, None), "needs student_layers and teacher_layers"),
])
def test_bad_layers_are_one_line_user_errors(layers, message):
    with pytest.raises(UserError, match=message):
        spectralkd.SpectralKD(TinyCNN(8), TinyCNN(16), *layers, mode="fft")


def test_index_out_of_range_and_unalignable_maps():
    student, teacher = _models()
    with pytest.raises(UserError, match="index 7 is out of range; valid: 0..1"):
        spectralkd.SpectralKD(student, teacher, [7], [1])
    task = spectralkd.SpectralKD(TinyCNN(8), TinyCNN(8), ["stage1"], ["stage2"], mode="fft")
    with pytest.raises(UserError, match=r"differ in spatial size"):
        task(*_batch())


def test_distillation_token_student_hard_mode_matches_deit():
    student, teacher = _models(("deit_tiny_distilled_patch16_224", STUDENT[1]))
    task = spectralkd.SpectralKD(student, teacher, mode="hard", alpha=0.5, w_fft=0.0, label_smoothing=0.1)
    images, labels = _batch()
    task.train()
    out = task(images, labels)
    student.train()
    cls, dist = student(images)  # distilled training: (class head, distillation head)
    with torch.no_grad():
        t_arg = teacher(images).argmax(1)
    expected = 0.5 * LabelSmoothingCrossEntropy(0.1)(cls, labels) + 0.5 * F.cross_entropy(dist, t_arg)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(out["output"], (cls + dist) / 2, atol=1e-6)
    student.eval()  # evaluation averages the two heads (timm's behaviour)
    assert torch.allclose(task.get_eval_model()(images), (cls + dist) / 2, atol=1e-5)


def test_soft_mode_distillation_head_gets_the_kl_term():
    student, teacher = _models(("deit_tiny_distilled_patch16_224", STUDENT[1]))
    task = spectralkd.SpectralKD(student, teacher, [0, 1], [1, 3], mode="soft", alpha=0.9, tau=1.0, w_fft=0.2)
    images, labels = _batch()
    task.train()
    out = task(images, labels)
    cls, dist = student(images)
    with torch.no_grad():
        t_logits = teacher(images)
    kd = F.kl_div(F.log_softmax(dist, 1), F.log_softmax(t_logits, 1), reduction="batchmean", log_target=True)
    assert out["loss_kd"].item() == pytest.approx(0.9 * kd.item(), rel=1e-5)
    assert out["loss_ce"].item() == pytest.approx(0.1 * LabelSmoothingCrossEntropy(0.1)(cls, labels).item(), rel=1e-5)


def test_amp_safe_fft_in_float32_and_ema():
    student, teacher = _models()
    task = spectralkd.SpectralKD(student, teacher, [0, 1], [1, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = task(*_batch())
    assert out["loss_fft"].dtype == torch.float32 and torch.isfinite(out["loss"])
    ema = task.setup_ema(decay=0.5)
    before = [p.detach().clone() for p in student.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    task.update_ema(step=5)  # past timm's first step, which copies
    assert task.get_eval_model(ema=True) is ema
    for old, new, avg in zip(before, student.parameters(), ema.module.parameters()):
        assert torch.allclose(avg, 0.5 * old + 0.5 * new.detach(), atol=1e-6)


def test_maps_of_different_sizes_with_fourier_alignment():
    from spectralkd.distill.losses import feature_alignment_loss

    torch.manual_seed(0)
    student = create_model(STUDENT[0], model_kwargs={**STUDENT[1], "patch_size": 16})  # 2×2 maps
    teacher = create_model(TEACHER[0], model_kwargs=TEACHER[1])                           # 4×4 maps
    images, labels = _batch()
    with pytest.raises(UserError, match="fourier"):
        spectralkd.SpectralKD(student, teacher, [0, 1], [1, 3], mode="fft")(images, labels)
    task = spectralkd.SpectralKD(student, teacher, [0, 1], [1, 3], mode="fft", alpha=0.0, w_fft=1.0,
                                 label_smoothing=0.0, spatial="fourier")
    task.train()
    out = task(images, labels)
    with torch.no_grad():
        t_maps = block_maps(teacher, images, [1, 3])
    s_maps = block_maps(student, images, [0, 1])
    expected = F.cross_entropy(student(images), labels) + feature_alignment_loss(s_maps, t_maps, "spectral",
                                                                                 spatial="fourier")
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
