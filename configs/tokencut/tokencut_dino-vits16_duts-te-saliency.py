# TokenCut saliency (no refinement), official DINO ViT-S/16 on DUTS-TE.
# Published maxF / IoU / Acc (%): 67.2 / 57.6 / 90.3 (check against _faithful).
#   python tools/test.py configs/tokencut/tokencut_dino-vits16_duts-te-saliency.py \
#       checkpoints/dino_vits16_tokencut.pth
_base_ = [
    '../_base_/models/tokencut_dino_vits16.py',
    '../_base_/datasets/tokencut_saliency_duts-te.py',
    '../_base_/default_runtime.py'
]
model = dict(mode='saliency')
