"""Sweep Expedit settings on a model config: accuracy on the first N test
images and agreement with the plain model, one line per setting.

    python tools/analysis_tools/expedit_sweep.py CONFIG CHECKPOINT \
        --settings '[{"cluster_layer": 3, "grid": 0.6, ...}, ...]' \
        [--num-images 60] [--data-root DIR] [--json OUT]

Each setting is a dict of :func:`vtseg.models.reducers.expedit_token_stages`
arguments (``cluster_layer``, ``grid``, ``reconstruct_layer``, ``k``,
``cluster_temperature``, ``reconstruct_temperature``, ``window_size``,
``n_iters``, ``restore``, ``distance``, ``temperature_mode`` ...); it replaces
the config's ``model.backbone.token_stages``. Scores come from the config's
``test_evaluator``; "agree" is the mean over images of the IoU between the
foreground of the setting's and the plain model's ``pred_sem_seg`` (two-class
models) or the fraction of equal pixels (more classes).
"""
import argparse
import copy
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

import vtseg  # noqa: E402,F401  (compat layer)
from vtseg.analysis.benchmark import build_model  # noqa: E402
from vtseg.models.reducers import expedit_token_stages  # noqa: E402
from vtseg.registry import DATASETS, METRICS  # noqa: E402
from vtseg.setup_env import register_all_modules  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Sweep Expedit settings')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--settings', required=True,
                   help='JSON list of expedit_token_stages kwargs')
    p.add_argument('--num-images', type=int, default=60)
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument('--json', help='write all results here')
    return p.parse_args(argv)


def load_items(cfg, n, data_root=None):
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    if data_root:
        ds_cfg['data_root'] = data_root
    dataset = DATASETS.build(ds_cfg)
    return [dataset[i] for i in range(min(n, len(dataset)))]


def evaluate(model, cfg, items):
    metric = METRICS.build(copy.deepcopy(cfg.test_evaluator))
    preds = []
    with torch.no_grad():
        for it in items:
            data = model.data_preprocessor(
                dict(inputs=[it['inputs']],
                     data_samples=[copy.deepcopy(it['data_samples'])]),
                False)
            out = model.predict(data['inputs'], data['data_samples'])
            metric.process({}, [o.to_dict() for o in out])
            preds.append(out[0].pred_sem_seg.data[0].clone())
    return metric.compute_metrics(metric.results), preds


def agreement(a, b):
    vals = []
    for p, q in zip(a, b):
        if int(max(p.max(), q.max())) <= 1:
            union = ((p == 1) | (q == 1)).sum().item()
            inter = ((p == 1) & (q == 1)).sum().item()
            vals.append(1.0 if union == 0 else inter / union)
        else:
            vals.append((p == q).float().mean().item())
    return sum(vals) / len(vals)


def main(argv=None):
    args = parse_args(argv)
    settings = json.loads(args.settings)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    items = load_items(cfg, args.num_images, args.data_root)
    plain_cfg = copy.deepcopy(cfg)
    plain_cfg.model.backbone['token_stages'] = []
    plain = build_model(plain_cfg, args.checkpoint)
    t0 = time.perf_counter()
    base, base_preds = evaluate(plain, cfg, items)
    print(f'plain: {json.dumps(base)} ({time.perf_counter() - t0:.0f} s)',
          flush=True)
    results = [dict(setting=None, metrics=base, agree=1.0)]
    for s in settings:
        c = copy.deepcopy(cfg)
        c.model.backbone['token_stages'] = expedit_token_stages(**s)
        model = build_model(c, args.checkpoint)
        t0 = time.perf_counter()
        res, preds = evaluate(model, c, items)
        agree = agreement(base_preds, preds)
        results.append(dict(setting=s, metrics=res, agree=agree))
        print(f'{json.dumps(s)}: {json.dumps(res)} agree={agree:.4f} '
              f'({time.perf_counter() - t0:.0f} s)', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, num_images=len(items),
                           results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
