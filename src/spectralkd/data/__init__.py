"""Image folders / tarballs, transforms, the generated fallback set."""
from spectralkd.data.datasets import ImageFiles, collate_skip_bad, open_rgb
from spectralkd.data.defaults import default_data, shared_cifar10
from spectralkd.data.folders import (
    analysis_images, class_folders, holdout_split, image_files, labelled_split, resolve_data, split_dir,
)
from spectralkd.data.identity import data_identity
from spectralkd.data.synthetic import synthetic_imagefolder
from spectralkd.data.transforms import data_config, eval_transform

__all__ = [
    "ImageFiles", "collate_skip_bad", "open_rgb", "default_data", "shared_cifar10", "analysis_images",
    "class_folders", "image_files", "labelled_split", "resolve_data", "split_dir", "synthetic_imagefolder",
    "data_config", "eval_transform", "holdout_split", "data_identity",
]
