"""How class-separable a backbone's pooled tokens are at a given budget: a
linear multi-label probe (bias-free, as ToCo's classifier) on frozen,
cached features, trained with the same batch size, number of steps and
optimiser as a ToCo run, scored on held-out images (docs/toco.md uses it
to explain the CPU experiment).

    python tools/analysis_tools/toco_linear_probe.py CONFIG \
        [--train-images 120] [--val-images 60] [--size 224] [--steps 300] \
        [--batch 2] [--lrs 6e-4 6e-3] [--out FILE.json] [--force]

Features: the image resized to SIZE x SIZE, the model's final tokens (after
the final norm) and auxiliary tokens, pooled by global max (ToCo) and by
global average. Scores on the held-out images: multi-label soft-margin
loss, F1 of logit > 0, and top-1 precision (the top-scoring class is
present). The images are the first N of the config's train / val lists;
the labels come from the dataset (``img_labels``).
"""
import argparse
import json
import os
import os.path as osp
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('--train-images', type=int, default=120)
    p.add_argument('--val-images', type=int, default=60)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--steps', type=int, default=300)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--lrs', type=float, nargs='+', default=[6e-4, 6e-3])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out')
    p.add_argument('--force', action='store_true')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.out and osp.exists(args.out) and not args.force:
        raise SystemExit(f'{args.out} exists; use --force to overwrite')
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import numpy as np
    import torch
    import torch.nn.functional as F
    from vtseg.analysis import build_model
    from vtseg.registry import DATASETS
    from vtseg.utils.image_io import read_image
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    model = build_model(args.config)
    model.backbone.init_weights()
    cfg = model.cfg
    mean = torch.tensor([123.675, 116.28, 103.53])[:, None, None]
    std = torch.tensor([58.395, 57.12, 57.375])[:, None, None]

    def features(ds_cfg, n):
        ds_cfg = ds_cfg.copy()
        ds_cfg['pipeline'] = []
        ds = DATASETS.build(ds_cfg)
        pooled, labels = {}, []
        for i in range(min(n, len(ds))):
            info = ds.get_data_info(i)
            img = read_image(info['img_path'])[..., ::-1].astype(np.float32)
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
            x = F.interpolate(x[None], size=(args.size, args.size),
                              mode='bilinear', align_corners=False)
            with torch.no_grad():
                f = model.encode((x - mean) / std)
            for level in ('final', 'aux'):
                for name, pool in (('gmp', lambda t: t.amax((2, 3))),
                                   ('gap', lambda t: t.mean((2, 3)))):
                    pooled.setdefault(f'{name}_{level}', []).append(
                        pool(f[level])[0])
            labels.append(torch.as_tensor(info['img_labels']))
        return {k: torch.stack(v) for k, v in pooled.items()}, \
            torch.stack(labels)

    tr, ytr = features(cfg.train_dataloader.dataset, args.train_images)
    va, yva = features(cfg.test_dataloader.dataset, args.val_images)
    res = {}
    for key in tr:
        for lr in args.lrs:
            g = torch.Generator().manual_seed(args.seed)
            w = torch.nn.Conv2d(tr[key].shape[1], ytr.shape[1], 1,
                                bias=False).weight.detach().flatten(1)
            w.requires_grad_(True)
            opt = torch.optim.AdamW([w], lr=lr, weight_decay=0.01)
            for _ in range(args.steps):
                idx = torch.randint(0, len(ytr), (args.batch,), generator=g)
                loss = F.multilabel_soft_margin_loss(tr[key][idx] @ w.t(),
                                                     ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                lv = va[key] @ w.t()
                pred, truth = lv > 0, yva > 0
                tp = int((pred & truth).sum())
                f1 = 2 * tp / max(int(pred.sum()) + int(truth.sum()), 1)
                top1 = float(truth[torch.arange(len(yva)),
                                   lv.argmax(1)].float().mean())
                vloss = float(F.multilabel_soft_margin_loss(lv, yva))
            res[f'{key}_lr{lr:g}'] = dict(val_loss=round(vloss, 4),
                                          f1=round(f1, 3),
                                          top1=round(top1, 3))
            print(f'{key:10s} lr {lr:g}: val loss {vloss:.3f} F1 {f1:.2f} '
                  f'top-1 {top1:.2f}')
    prior = yva.mean(0).clamp(1e-4, 1 - 1e-4)
    res['constant_prior_val_loss'] = round(float(F.multilabel_soft_margin_loss(
        torch.log(prior / (1 - prior)).expand_as(yva), yva)), 4)
    print(f'constant prior (val frequencies): val loss '
          f'{res["constant_prior_val_loss"]:.3f}')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=1)


if __name__ == '__main__':
    main()
