"""The words every floor shares, spelled once: the scenarios a representation belongs to
(a column of every table) and the checkpoint formats an imported backbone may have.

Torch-free and import-free, so the config, the models and the report all take them from here.
"""

from __future__ import annotations

# how a representation was made
SL = "SL"  # a supervised method, trained on a study subset
SSL_IN_DOMAIN = "SSL-in-domain"  # a self-supervised method, trained on a study subset
SSL_IMAGENET = "SSL-ImageNet"  # an imported SSL checkpoint (pretrained elsewhere)
RANDOM_INIT = "random-init"  # the untrained backbone: the floor
SCENARIOS = (SL, SSL_IN_DOMAIN, SSL_IMAGENET, RANDOM_INIT)
SSL_SCENARIOS = (SSL_IN_DOMAIN, SSL_IMAGENET)
TRAINED_SCENARIOS = (SL, SSL_IN_DOMAIN)  # their subset column is the pretraining subset

# the key layouts models/checkpoints.py reads (each with its prefix there); "auto" detects one
RESNET_FORMATS = ("torchvision", "timm", "moco", "simsiam", "lightning", "mmselfsup", "vissl")
# the vision-transformer layouts models/vit_checkpoints.py reads (timm's too)
VIT_FORMATS = ("dino", "dinov2", "mae", "mocov3", "ibot")
CHECKPOINT_FORMATS = (*RESNET_FORMATS, *VIT_FORMATS)

# published ImageNet SSL checkpoints an `imported` entry may name as `weights:` (their URLs,
# formats and checksums are in models/hub.py)
PUBLISHED_WEIGHTS = (
    "mocov2_800ep",
    "simsiam_100ep_256bs",
    "byol_200ep",
    "swav_800ep",
    "dino_resnet50",
    "barlowtwins_resnet50",
    "dino_vits16",
    "dino_vitb16",
    "dinov2_vits14",
    "dinov2_vitb14",
    "dinov2_vits14_reg",
    "dinov2_vitb14_reg",
    "mae_vitb16",
    "mocov3_vits",
    "mocov3_vitb",
    "ibot_vits16",
    "ibot_vitb16",
)
