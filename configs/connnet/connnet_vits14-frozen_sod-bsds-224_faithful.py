# Faithful variant of connnet_vits14-frozen_sod-bsds-224.py: the BiconNet
# reference loss quirk (Dice summed over (channel, rows), i.e. one Dice per
# image column, docs/methods/connectivity.md#losses). Everything else is
# identical.
#   python tools/train.py configs/connnet/connnet_vits14-frozen_sod-bsds-224_faithful.py
_base_ = ['./connnet_vits14-frozen_sod-bsds-224.py']
model = dict(
    decode_head=dict(
        loss_decode=dict(type='ConnectivityLoss', variant='bicon',
                         faithful=True)))
