"""Measure TokenCut's feature choices (which tensor, which block, centring)
on a dataset, to pick a backbone's default by measurement.

    python tools/analysis_tools/tokencut_feature_sweep.py \
        configs/tokencut/tokencut_imgfocus-vits14_sod-bsds.py \
        checkpoints/imgfocus_vits14.pth \
        --features k,k_nobias,q,v,tokens,tokens_norm --layers -1,-2,-4 \
        --center 0,1 --out work_dirs/sweep_sod.json

One backbone forward per image (all requested blocks at once), then one cut
per variant with the config's tau / eps / solver. Reported per variant:
CorLoc (first box vs the config dataset's ``gt_bboxes``), and when the
dataset has masks, the per-image saliency IoU / maxF / Acc of the seed's
component (docs/methods/metrics.md#saliency-per-image-protocol), plus the
fraction of token pairs above tau (1.0 = complete graph, no usable cut).
Baselines: a centred box covering half of each side (box and mask).
"""
import argparse
import json
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--features', default='k,k_nobias,q,v,tokens,tokens_norm')
    p.add_argument('--layers', default='-1')
    p.add_argument('--center', default='0,1', help='0, 1 or 0,1')
    p.add_argument('--max-images', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', help='write the table as json')
    return p.parse_args()


def main():
    args = parse_args()
    for var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS',
                'MKL_NUM_THREADS'):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    import time

    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    import vtseg  # noqa: F401  (compat layer)
    from vtseg.functional.saliency import (saliency_image_stats,
                                           saliency_scores_from_stats)
    from vtseg.functional import normalized_cut as nc
    from vtseg.models.segmentors.tokencut import (select_token_features,
                                                  upsample_token_map)
    from vtseg.registry import DATASETS, MODELS
    from vtseg.setup_env import register_all_modules
    torch.set_num_threads(args.threads)
    register_all_modules()

    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, args.checkpoint, map_location='cpu',
                    logger='silent')
    bb = model.backbone
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    n_img = len(dataset) if not args.max_images else min(
        args.max_images, len(dataset))
    feats_names = args.features.split(',')
    layers = [int(x) for x in args.layers.split(',')]
    centers = [bool(int(c)) for c in args.center.split(',')]
    variants = [(f, layer, c) for layer in layers for f in feats_names
                for c in centers]
    depth = len(bb.blocks)
    blocks = sorted({layer % depth for layer in layers})
    stats = {v: dict(hits=0, sal=[], dense=[]) for v in variants}
    base = dict(hits=0, sal=[])
    p = model.patch_size
    t_start = time.time()
    for i in range(n_img):
        data = dataset[i]
        batch = model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
            False)
        sample = batch['data_samples'][0]
        meta = sample.metainfo
        hs, ws = meta['img_shape'][:2]
        ori = tuple(meta['ori_shape'][:2])
        gt_boxes = np.asarray(meta['gt_bboxes']).reshape(-1, 4)
        gt_mask = None
        if 'gt_sem_seg' in sample:
            gt_mask = sample.gt_sem_seg.data[0].numpy()
            gt_mask = gt_mask[:ori[0], :ori[1]] == 1
        with torch.no_grad():
            out = bb.forward_features(batch['inputs'][:, :, :hs, :ws],
                                      qkv_layers=blocks, token_layers=blocks,
                                      out_indices=[])
            hw = tuple(out['hw'])
            cb = nc.centered_box(ori)
            base['hits'] += bool((nc.corloc_iou(cb, gt_boxes) >= 0.5).any())
            if gt_mask is not None:
                cm = np.zeros(ori, np.float64)
                x1, y1, x2, y2 = (int(round(v)) for v in cb)
                cm[y1:y2, x1:x2] = 1
                base['sal'].append(saliency_image_stats(cm, gt_mask))
            for v in variants:
                f = select_token_features(bb, out, v[0], v[1], v[2])[0]
                w = nc.ncut_affinity(f, model.tau, model.eps,
                                     model.binary_graph)
                stats[v]['dense'].append(float((w == 1).mean()))
                part, vec, seed, _ = nc.ncut_from_affinity(w, model.solver)
                box, comp = nc.ncut_box(part.reshape(hw), seed, p, (hs, ws))
                stats[v]['hits'] += bool(
                    (nc.corloc_iou(box, gt_boxes) >= 0.5).any())
                if gt_mask is not None:
                    m = upsample_token_map(comp, p, (hs, ws), ori)
                    stats[v]['sal'].append(
                        saliency_image_stats(m.astype(np.float64), gt_mask))
        print(f'{i + 1}/{n_img} images, {time.time() - t_start:.0f}s',
              flush=True)

    def sal(s):
        if not s:
            return {}
        return saliency_scores_from_stats(s, protocol='per_image')

    rows = []
    print(f'\n{args.config}: {n_img} images, tau={model.tau}')
    print(f'{"feature":<12}{"layer":>6}{"center":>7}{"CorLoc":>8}'
          f'{"IoU":>7}{"maxF":>7}{"Acc":>7}{"edges>tau":>10}')
    b = sal(base['sal'])
    print(f'{"centred box":<25}{base["hits"] / n_img:>8.3f}'
          f'{b.get("iou", float("nan")):>7.3f}'
          f'{b.get("max_f", float("nan")):>7.3f}'
          f'{b.get("acc", float("nan")):>7.3f}')
    rows.append(dict(feature='centred_box', corloc=base['hits'] / n_img,
                     **b))
    for v in variants:
        s = sal(stats[v]['sal'])
        r = dict(feature=v[0], layer=v[1], center=v[2],
                 corloc=stats[v]['hits'] / n_img,
                 edge_fraction=float(np.mean(stats[v]['dense'])), **s)
        rows.append(r)
        print(f'{v[0]:<12}{v[1]:>6}{str(v[2]):>7}{r["corloc"]:>8.3f}'
              f'{s.get("iou", float("nan")):>7.3f}'
              f'{s.get("max_f", float("nan")):>7.3f}'
              f'{s.get("acc", float("nan")):>7.3f}'
              f'{r["edge_fraction"]:>10.3f}')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                    exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, images=n_img, rows=rows), f,
                      indent=1)


if __name__ == '__main__':
    main()
