# Control for connnet_vits14-frozen_sod-bsds-224.py: the same backbone,
# body (cascade + non-local relation block), data, schedule and seed, but a
# one-channel output trained with BCE + Dice on the map (the `bce` and `dice`
# terms of the connectivity loss) and decoded by a sigmoid.
#   python tools/train.py configs/connnet/binary_vits14-frozen_sod-bsds-224.py
_base_ = ['./connnet_vits14-frozen_sod-bsds-224.py']
model = dict(
    decode_head=dict(
        _delete_=True,
        type='CascadeRelationHead',
        in_channels=[384, 384, 384],
        in_index=[0, 1, 2],
        cascade_channels=(128, 64, 32),
        channels=32,
        relation='nonlocal',
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        dropout_ratio=0.0,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='BinaryMaskLoss')))
