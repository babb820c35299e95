"""SpectralKD in a plain PyTorch loop: a small DeiT student distils a small CaiT teacher on the generated image set.

    python examples/own_loop.py        # no arguments; about half a minute on a CPU
"""
import timm
import torch
from torch.utils.data import DataLoader

from spectralkd import SpectralKD
from spectralkd.data import ImageFiles, data_config, eval_transform, labelled_split, synthetic_imagefolder


def main(steps: int = 30) -> float:
    torch.manual_seed(0)
    student = timm.create_model("deit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=32,
                                num_heads=2, num_classes=10)
    teacher = timm.create_model("cait_xxs24_224", img_size=32, patch_size=8, depth=4, embed_dim=64, num_heads=2,
                                depth_token_only=1, num_classes=10)  # load trained weights here in real use
    root = synthetic_imagefolder(train_per_class=20, val_per_class=5)
    items, _, _ = labelled_split(root, "train")
    transform = eval_transform(data_config(student, input_size=32, crop_pct=1.0))
    loader = DataLoader(ImageFiles(items, transform), batch_size=32, shuffle=True)

    # student blocks 0 and 1 learn the spectra of teacher blocks 1 and 3, beside label and logit distillation
    task = SpectralKD(student, teacher, student_layers=[0, 1], teacher_layers=[1, 3], mode="soft", alpha=0.5)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    task.train()
    step, first, last = 0, None, None
    while step < steps:
        for images, labels in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = task(images, labels)
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()
            first = first if first is not None else out["loss"].item()
            last, step = out["loss"].item(), step + 1
            if step % 10 == 0:
                print(f"step {step}: loss {last:.3f} (ce {out['loss_ce']:.3f}, kd {out['loss_kd']:.3f}, "
                      f"spectral {out['loss_fft']:.4f})")
            if step == steps:
                break
    print(f"loss {first:.3f} → {last:.3f} after {steps} steps")
    return last


if __name__ == "__main__":
    main()
