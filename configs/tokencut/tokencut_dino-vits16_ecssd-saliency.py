# TokenCut saliency (no refinement), official DINO ViT-S/16 on ECSSD.
# Published maxF / IoU / Acc (%): 80.3 / 71.2 / 91.8 (check against _faithful).
#   python tools/test.py configs/tokencut/tokencut_dino-vits16_ecssd-saliency.py \
#       checkpoints/dino_vits16_tokencut.pth
_base_ = [
    '../_base_/models/tokencut_dino_vits16.py',
    '../_base_/datasets/tokencut_saliency_ecssd.py',
    '../_base_/default_runtime.py'
]
model = dict(mode='saliency')
