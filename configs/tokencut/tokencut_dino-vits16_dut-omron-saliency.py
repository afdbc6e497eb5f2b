# TokenCut saliency (no refinement), official DINO ViT-S/16 on DUT-OMRON.
# Published maxF / IoU / Acc (%): 60.0 / 53.3 / 88.0 (check against _faithful).
#   python tools/test.py configs/tokencut/tokencut_dino-vits16_dut-omron-saliency.py \
#       checkpoints/dino_vits16_tokencut.pth
_base_ = [
    '../_base_/models/tokencut_dino_vits16.py',
    '../_base_/datasets/tokencut_saliency_dut-omron.py',
    '../_base_/default_runtime.py'
]
model = dict(mode='saliency')
