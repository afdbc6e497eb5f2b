"""Compare TokenCut's foreground rules (which side of the cut is the object)
on tuning and report datasets, and pick a rule on the tuning ones only.

    python tools/analysis_tools/tokencut_foreground_sweep.py \
        checkpoints/imgfocus_vits14.pth \
        --tune configs/tokencut/tokencut_imgfocus-vits14_sod-bsds.py \
               configs/tokencut/tokencut_imgfocus-vits14_davis-frames-tune.py \
        --report configs/tokencut/tokencut_imgfocus-vits14_davis-frames-report.py \
                 configs/tokencut/tokencut_imgfocus-vits14_pennfudanped.py \
        --rules reference,border,smaller --out work_dirs/fg_image.json

Every config is a TokenCut (image) or TokenCutVideo config with its test
dataset; all configs of one run must be of the same kind. The eigenvectors
are computed once per image / clip (the config's features, tau, eps,
solver, edge sampling) and every rule is applied to the same cut, so the
columns differ only by the rule. Scores: image configs CorLoc (first box vs
``gt_bboxes``, as ``CorLocMetric``) and the mean mask IoU of the object's
component (when the dataset has masks); video configs the mean over
sequences of the per-sequence mean frame IoU (as ``VideoIoUMetric``), per
sequence too. The centred box is the baseline row.

Choice (docs/protocol.md): the rule with the highest mean
score over the ``--tune`` columns (ties: the earlier rule in ``--rules``);
the ``--report`` columns are printed beside it and never used to choose.
"""
import argparse
import json
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint')
    p.add_argument('--tune', nargs='+', required=True,
                   help='configs whose datasets choose the rule')
    p.add_argument('--report', nargs='*', default=[],
                   help='configs reported beside them, never used to choose')
    p.add_argument('--rules', default=None,
                   help='comma-separated rules (default: all rules of the '
                   'model kind)')
    p.add_argument('--max-items', type=int, default=0,
                   help='first images / clips of each dataset only (smoke '
                   'runs)')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', help='write the results as json')
    return p.parse_args()


def main():
    args = parse_args()
    for var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS',
                'MKL_NUM_THREADS'):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    import vtseg  # noqa: F401  (compat layer)
    from vtseg.evaluation.metrics.video_iou_metric import frame_iou
    from vtseg.functional import ncut_foreground as nf
    from vtseg.functional import normalized_cut as nc
    from vtseg.models.segmentors.tokencut import upsample_token_map
    from vtseg.registry import DATASETS, MODELS
    from vtseg.setup_env import register_all_modules
    torch.set_num_threads(args.threads)
    register_all_modules()

    configs = [(c, 'tune') for c in args.tune] + [(c, 'report')
                                                  for c in args.report]
    kinds = {Config.fromfile(c).model.type for c, _ in configs}
    if len(kinds) != 1 or not kinds <= {'TokenCut', 'TokenCutVideo'}:
        raise SystemExit(f'all configs must be TokenCut or all '
                         f'TokenCutVideo configs, got {sorted(kinds)}')
    video = kinds == {'TokenCutVideo'}
    valid = nf.VIDEO_FOREGROUND_RULES if video else \
        nf.IMAGE_FOREGROUND_RULES
    rules = args.rules.split(',') if args.rules else list(valid)
    for r in rules:
        nf.check_foreground_rule(r, video=video, where='--rules')

    def centred_mask(shape):
        h, w = shape
        m = np.zeros((h, w), bool)
        m[int(round(h / 4)):int(round(3 * h / 4)),
          int(round(w / 4)):int(round(3 * w / 4))] = True
        return m

    def run_image(model, dataset, n_items):
        p = model.patch_size
        hits = {r: 0 for r in rules + ['centred']}
        ious = {r: [] for r in rules + ['centred']}
        per_seq = {}
        for i in range(n_items):
            data = dataset[i]
            batch = model.data_preprocessor(
                dict(inputs=[data['inputs']],
                     data_samples=[data['data_samples']]), False)
            sample = batch['data_samples'][0]
            meta = sample.metainfo
            hs, ws = meta['img_shape'][:2]
            ori = tuple(meta['ori_shape'][:2])
            sf = meta.get('scale_factor', (1.0, 1.0))
            gt_boxes = np.asarray(meta['gt_bboxes']).reshape(-1, 4)
            gt_mask = None
            if 'gt_sem_seg' in sample:
                g = sample.gt_sem_seg.data[0].numpy()[:ori[0], :ori[1]]
                gt_mask = (g > 0) & (g != 255)
            feats, hw = model.extract_feat(batch['inputs'][:1, :, :hs, :ws])
            w = nc.ncut_affinity(feats[0], model.tau, model.eps,
                                 model.binary_graph)
            x = None if nc.is_uniform_graph(w) else nc.fiedler_vector(
                w, model.solver)[1]
            border = nf.border_tokens(hw)
            seq = meta.get('seq_name')
            row = {}
            for r in rules:
                if x is None:
                    part, seed = np.ones(w.shape[0], bool), 0
                else:
                    part, _, seed, _ = nf.orient_cut(x, r, border)
                _, comp = nc.ncut_box(part.reshape(hw), seed, p)
                box = nc.component_box(comp, p, (hs, ws))
                box = box / np.array([sf[0], sf[1], sf[0], sf[1]])
                box[0::2] = box[0::2].clip(0, ori[1])
                box[1::2] = box[1::2].clip(0, ori[0])
                row[r] = bool(len(gt_boxes) and (
                    nc.corloc_iou(box, gt_boxes) >= 0.5).any())
                if gt_mask is not None:
                    m = upsample_token_map(comp, p, (hs, ws), ori) > 0.5
                    ious[r].append(frame_iou(m, gt_mask))
            cb = nc.centered_box(ori)
            row['centred'] = bool(len(gt_boxes) and (
                nc.corloc_iou(cb, gt_boxes) >= 0.5).any())
            if gt_mask is not None:
                ious['centred'].append(frame_iou(centred_mask(ori), gt_mask))
            for r, hit in row.items():
                hits[r] += hit
                if seq is not None:
                    per_seq.setdefault(seq, {}).setdefault(r, []).append(hit)
            if (i + 1) % 25 == 0 or i + 1 == n_items:
                print(f'  {i + 1}/{n_items} images, '
                      f'{time.time() - t_cfg:.0f}s', flush=True)
        return {r: dict(score=hits[r] / n_items,
                        mask_iou=float(np.mean(ious[r])) if ious[r] else None,
                        per_seq={s: float(np.mean(v[r]))
                                 for s, v in per_seq.items()})
                for r in rules + ['centred']}

    def run_video(model, dataset, n_items):
        p = model.patch_size
        per_seq = {r: {} for r in rules + ['centred']}
        for i in range(n_items):
            data = dataset[i]
            clip = data['inputs']
            sample = data['data_samples']
            seq = sample.metainfo['seq_name']
            gt = sample.gt_sem_seg.data.numpy() > 0
            feats, hw = model.clip_features(clip)
            chunks = list(nc.video_cut_chunks(
                feats, hw, None, model.alpha, model.tau, model.eps,
                model.fusion, model.max_frames, model.edges_per_token,
                model.block_rows, model.solver, model.faithful))
            img_shape = tuple(clip.shape[-2:])
            ori = tuple(sample.metainfo['ori_shape'][:2])
            for r in rules:
                fg, _ = nc.orient_video_chunks(chunks, hw, r)
                fg = fg.reshape(len(gt), *hw)
                vals = [frame_iou(upsample_token_map(
                    m, p, img_shape, ori) > 0.5, g) for m, g in zip(fg, gt)]
                per_seq[r].setdefault(seq, []).extend(vals)
            per_seq['centred'].setdefault(seq, []).extend(
                frame_iou(centred_mask(g.shape), g) for g in gt)
            print(f'  {seq}: {len(gt)} frames, ' + ', '.join(
                f'{r} {np.mean(per_seq[r][seq]):.4f}'
                for r in rules + ['centred']) +
                f' ({time.time() - t_cfg:.0f}s)', flush=True)
        return {r: dict(score=float(np.mean([np.mean(v) for v in
                                             per_seq[r].values()])),
                        per_seq={s: float(np.mean(v))
                                 for s, v in per_seq[r].items()})
                for r in rules + ['centred']}

    results = []
    model = None
    for cfg_path, role in configs:
        cfg = Config.fromfile(cfg_path)
        if model is None or cfg.model != model_cfg:
            model_cfg = cfg.model
            model = MODELS.build(cfg.model).eval()
            load_checkpoint(model, args.checkpoint, map_location='cpu',
                            logger='silent')
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        n_items = len(dataset) if not args.max_items else min(
            args.max_items, len(dataset))
        name = os.path.splitext(os.path.basename(cfg_path))[0]
        print(f'{role} {name}: {n_items} {"clips" if video else "images"}',
              flush=True)
        t_cfg = time.time()
        with torch.no_grad():
            res = (run_video if video else run_image)(model, dataset,
                                                      n_items)
        results.append(dict(config=cfg_path, name=name, role=role,
                            items=n_items, seconds=time.time() - t_cfg,
                            rules=res))

    prefix = os.path.commonprefix([c['name'] for c in results])
    prefix = prefix[:prefix.rfind('_') + 1] if len(results) > 1 else ''
    for c in results:
        c['short'] = c['name'][len(prefix):]
    tune = [r for r in results if r['role'] == 'tune']
    mean_tune = {r: float(np.mean([c['rules'][r]['score'] for c in tune]))
                 for r in rules}
    chosen = max(rules, key=lambda r: (mean_tune[r], -rules.index(r)))
    metric = 'IoU' if video else 'CorLoc'
    print(f'\n{metric} per rule ({"video" if video else "image"} mode); '
          'tuning columns choose, report columns only report')
    head = f'{"rule":<12}{"tune mean":>10}' + ''.join(
        f'{c["role"] + ":" + c["short"]:>28}' for c in results)
    print(head)
    for r in rules + ['centred']:
        tm = mean_tune[r] if r in mean_tune else float(
            np.mean([c['rules'][r]['score'] for c in tune]))
        tm = f'{tm:>10.4f}'
        print(f'{r:<12}{tm}' + ''.join(
            f'{c["rules"][r]["score"]:>28.4f}' for c in results))
    print(f'chosen on the tuning columns: {chosen}')
    for c in results:
        seqs = sorted(c['rules'][rules[0]]['per_seq'])
        if not seqs:
            continue
        print(f'\n{c["role"]} {c["name"]}: per sequence ({metric})')
        print(f'{"sequence":<14}' + ''.join(f'{r:>11}'
                                            for r in rules + ['centred']))
        for s in seqs:
            print(f'{s:<14}' + ''.join(
                f'{c["rules"][r]["per_seq"][s]:>11.4f}'
                for r in rules + ['centred']))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                    exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(checkpoint=args.checkpoint, metric=metric,
                           rules=rules, mean_tune=mean_tune, chosen=chosen,
                           results=results), f, indent=1)


if __name__ == '__main__':
    main()
