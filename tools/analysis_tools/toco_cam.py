"""Generate and score ToCo's CAMs, PAR pseudo labels and segmentation on a
split (docs/toco.md): CAM mIoU, auxiliary-CAM mIoU, pseudo-label mIoU
(after PAR; uncertain pixels removed, their share reported) and the
segmentation head's mIoU, multi-scale + flip, in one pass per image.

    python tools/analysis_tools/toco_cam.py CONFIG CHECKPOINT \
        [--outputs cam,aux_cam,par,seg] [--split val|train] \
        [--cam-scales 1.0 0.5 1.5] [--seg-scales 1.0] [--no-flip] \
        [--crf] [--save-labels] [--skip-missing] [--max-items N] \
        [--token-sim N] \
        [--cfg-options ...] [--work-dir DIR | --out FILE.json] [--force]

The split's dataset is the config's ``test_dataloader`` (``--split train``
takes the training dataset with the test pipeline, e.g. to make pseudo
labels for a fully supervised second stage: ``--outputs par
--save-labels``). Results go to ``--out`` (json) or
``<work-dir>/toco_eval.json``; existing results are not overwritten without
``--force``. ``--crf`` adds the dense-CRF refined segmentation
(``seg_crf``) when ``pydensecrf`` is installed (``pip install
pydensecrf2``), and is skipped with a message otherwise.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help="trained checkpoint, or 'pretrained' "
                   "for the config's initial weights (backbone from its "
                   'init_cfg; e.g. for --token-sim before training)')
    p.add_argument('--outputs', default='cam,aux_cam,par,seg',
                   help="comma-separated: cam, aux_cam, par, seg ('' for "
                   'none, e.g. with --token-sim)')
    p.add_argument('--split', default='val', choices=['val', 'train'])
    p.add_argument('--cam-scales', type=float, nargs='+',
                   default=[1.0, 0.5, 1.5])
    p.add_argument('--seg-scales', type=float, nargs='+', default=[1.0])
    p.add_argument('--no-flip', action='store_true')
    p.add_argument('--crf', action='store_true',
                   help='also score the dense-CRF refined segmentation')
    p.add_argument('--save-labels', action='store_true',
                   help='write the label maps as PNG under the work dir')
    p.add_argument('--skip-missing', action='store_true',
                   help='leave out images without a mask (default: error)')
    p.add_argument('--max-items', type=int, default=0,
                   help='first N images only (smoke runs)')
    p.add_argument('--token-sim', type=int, default=0, metavar='N',
                   help='also report the mean |cosine| between patch '
                   'tokens after every block on the first N images '
                   '(over-smoothing)')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--work-dir', help='output folder (default work_dirs/'
                   '<config name>/toco_eval)')
    p.add_argument('--out', help='results json (default <work-dir>/'
                   'toco_eval.json)')
    p.add_argument('--force', action='store_true',
                   help='overwrite existing results')
    p.add_argument('--cfg-options', nargs='+', default=None,
                   help='override config settings, xxx=yyy')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS',
                'MKL_NUM_THREADS'):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import torch
    from mmengine.config import DictAction
    from vtseg.analysis import (build_model, check_masks, evaluate_wsss,
                                layer_token_similarity)
    from vtseg.registry import DATASETS
    from vtseg.utils.config import default_work_dir
    torch.set_num_threads(args.threads)

    cfg_options = None
    if args.cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg_options = parser.parse_args(['--o'] + args.cfg_options).o
    work_dir = args.work_dir or osp.join(default_work_dir(args.config),
                                         'toco_eval')
    out = args.out or osp.join(work_dir, 'toco_eval.json')
    if osp.exists(out) and not args.force:
        raise SystemExit(f'{out} exists; use --force to overwrite')
    if args.save_labels and not args.force and osp.isdir(work_dir) and any(
            osp.isdir(osp.join(work_dir, d))
            for d in ('cam', 'aux_cam', 'par', 'seg')):
        raise SystemExit(f'{work_dir} already holds label maps; use '
                         '--force to overwrite')
    outputs = [o.strip() for o in args.outputs.split(',') if o.strip()]
    pretrained = args.checkpoint == 'pretrained'
    model = build_model(args.config, None if pretrained else args.checkpoint,
                        cfg_options)
    if pretrained:
        model.init_weights()
    model.test_cfg.update(cam_scales=tuple(args.cam_scales),
                          seg_scales=tuple(args.seg_scales),
                          flip=not args.no_flip)
    cfg = model.cfg
    ds_cfg = cfg.test_dataloader.dataset.copy()
    if args.split == 'train':
        train = cfg.train_dataloader.dataset
        ds_cfg.update(data_prefix=train.data_prefix,
                      ann_file=train.ann_file)
    dataset = DATASETS.build(ds_cfg)
    indices = check_masks(dataset, 'skip' if args.skip_missing else 'error')
    if args.max_items:
        indices = indices[:args.max_items]
    crf = args.crf
    if crf:
        try:  # optional dependency, only probed here
            import pydensecrf.densecrf  # noqa: F401
        except ImportError:
            print('--crf skipped: pydensecrf is not installed (pip install '
                  'pydensecrf2)')
            crf = False
    t0 = time.time()
    res = evaluate_wsss(model, dataset, outputs, indices,
                        save_dir=work_dir if args.save_labels else None,
                        crf=crf) if outputs else {}
    if args.token_sim:
        res['token_similarity'] = layer_token_similarity(
            model, dataset, indices[:args.token_sim])
    res['_meta'] = dict(config=args.config, checkpoint=args.checkpoint,
                        split=args.split, images=len(indices),
                        cam_scales=args.cam_scales,
                        seg_scales=args.seg_scales, flip=not args.no_flip,
                        seconds=round(time.time() - t0, 1))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(res, f, indent=1)
    for o, r in res.items():
        if o == 'token_similarity':
            print('token |cos| per block: ' + ' '.join(f'{v:.3f}'
                                                       for v in r))
        elif o == 'classification':
            print('classification: ' + ', '.join(f'{k} {v}'
                                                  for k, v in r.items()))
        elif o != '_meta':
            print(f'{o:8s} mIoU {r["mIoU"]:6.2f}  ignored {r["ignored"]:.3f}')
    print(f'written {out}')


if __name__ == '__main__':
    main()
