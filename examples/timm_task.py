"""SpectralKD through timm's task interface: timm's optimizer and scheduler factories, the task's EMA and evaluator.

    python examples/timm_task.py       # no arguments; about half a minute on a CPU
"""
import timm
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch.utils.data import DataLoader

from spectralkd import SpectralKD
from spectralkd.data import ImageFiles, data_config, eval_transform, labelled_split, synthetic_imagefolder


def main(epochs: int = 2, steps_per_epoch: int = 10) -> dict:
    torch.manual_seed(0)
    student = timm.create_model("deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, depth=2,
                                embed_dim=32, num_heads=2, num_classes=10)  # a distillation-token student
    teacher = timm.create_model("cait_xxs24_224", img_size=32, patch_size=8, depth=4, embed_dim=64, num_heads=2,
                                depth_token_only=1, num_classes=10)
    root = synthetic_imagefolder(train_per_class=20, val_per_class=5)
    transform = eval_transform(data_config(student, input_size=32, crop_pct=1.0))
    train = DataLoader(ImageFiles(labelled_split(root, "train")[0], transform), batch_size=32, shuffle=True)
    val = DataLoader(ImageFiles(labelled_split(root, "val")[0], transform), batch_size=50)

    # DeiT's hard distillation on the distillation head, plus the spectral term; a TrainingTask like timm's own
    task = SpectralKD(student, teacher, [0, 1], [1, 3], mode="hard", alpha=0.5, w_fft=0.2)
    optimizer = create_optimizer_v2(task.get_trainable_module(), opt="adamw", lr=1e-3, weight_decay=0.05)
    scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=epochs, warmup_epochs=0,
                                       updates_per_epoch=steps_per_epoch)
    task.setup_ema(decay=0.9)
    updates = 0
    for epoch in range(epochs):
        task.train()
        for step, (images, targets) in zip(range(steps_per_epoch), train):
            out = task(images, targets)
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()
            updates += 1
            scheduler.step_update(num_updates=updates)
            task.update_ema(step=updates)
        scheduler.step(epoch + 1)
        evaluator, model = task.create_evaluator(), task.get_eval_model()  # the bare student: heads averaged
        model.eval()
        with torch.no_grad():
            for images, targets in val:
                evaluator.update(model(images), targets)
        metrics = evaluator.summary()
        print(f"epoch {epoch + 1}: loss {out['loss'].item():.3f} | val top1 {metrics['top1']:.1f} "
              f"loss {metrics['loss']:.3f}")
    return dict(metrics)


if __name__ == "__main__":
    main()
