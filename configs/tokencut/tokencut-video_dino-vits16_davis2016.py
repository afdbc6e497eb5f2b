# TokenCut video, official DINO ViT-S/16 keys on DAVIS 2016 val (graph over
# up to 90 frames, tau 0.3, flow fused with alpha 0.5 when flow_dir is set).
# Published IoU without refinement: 64.3% (RAFT flow), 62.0% (ARFlow).
# Default: unbiased edge sampling (500 edges per token) bounds memory.
#   python tools/test.py configs/tokencut/tokencut-video_dino-vits16_davis2016.py \
#       checkpoints/dino_vits16_tokencut.pth \
#       --cfg-options test_dataloader.dataset.flow_dir='RAFT_FlowImages_gap1/480p/{seq}'
_base_ = [
    '../_base_/datasets/tokencut_davis2016.py', '../_base_/default_runtime.py'
]
model = dict(
    type='TokenCutVideo',
    data_preprocessor=dict(
        type='VideoDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='ViT', img_size=224, patch_size=16, embed_dims=384, depth=12,
        num_heads=6, mlp_ratio=4, qkv_bias=True, norm_eps=1e-6,
        final_norm=True, out_indices=-1),
    feature='k',
    layer=-1,
    tau=0.3,
    eps=1e-5,
    alpha=0.5,
    max_frames=90,
    edges_per_token=500,
    solver='arpack',
    foreground='reference')  # the paper's rule (published numbers)
