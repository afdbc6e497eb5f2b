"""Class-agnostic COCO / VOC scores of object discovery with mmdet's metrics.

Runs a discovery model (TokenCut; single- or multi-object config) over the
images of a COCO instances file (read by mmdet's CocoDataset, full
resolution), turns its outputs into class-agnostic DetDataSamples and scores
them with mmdet's CocoMetric (box AP, mask AP) and VOCMetric (box AP50),
next to the centred-box baseline; writes the predictions as COCO JSON
(docs/detection.md, "Discovery scored by mmdet").

Example (coco128, all 128 images; about 5 minutes on one CPU thread):
    python tools/analysis_tools/discovery_coco_ap.py \
        configs/tokencut/tokencut_imgfocus-vits14_pennfudanped-multi.py \
        --max-objects 3 --work-dir work_dirs/discovery_coco128
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

import torch  # noqa: E402

import vtseg  # noqa: E402,F401  (compat layer)
from vtseg.analysis import coco_discovery_samples, num_threads  # noqa: E402
from vtseg.apis import init_model  # noqa: E402
from vtseg.evaluation import (centred_box_sample, class_agnostic_coco,  # noqa
                              score_coco, score_voc, to_det_sample)
from vtseg.utils.coco_export import (data_samples_to_coco,  # noqa: E402
                                     dump_coco_json)

COCO128 = '../shared/data/coco128'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='discovery model config (TokenCut)')
    p.add_argument('--checkpoint', help='model checkpoint (default: the '
                   "config's init_cfg)")
    p.add_argument('--ann-file',
                   default=f'{COCO128}/annotations/instances_train2017.json')
    p.add_argument('--img-dir', default=f'{COCO128}/train2017')
    p.add_argument('--num-images', type=int, default=None,
                   help='first N images of the file (default: all)')
    p.add_argument('--max-objects', type=int, default=None,
                   help="model.max_objects (default: the config's)")
    p.add_argument('--centred-fraction', type=float, default=0.5)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--work-dir', default='work_dirs/discovery_coco')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    opts = {}
    if args.max_objects is not None:
        opts['model.max_objects'] = args.max_objects
    model = init_model(args.config, args.checkpoint, cfg_options=opts)
    with open(args.ann_file) as f:
        ids = [im['id'] for im in json.load(f)['images']]
    if args.num_images is not None:
        ids = ids[:args.num_images]
    agn_file = osp.join(args.work_dir, 'gt_class_agnostic.json')
    agn = class_agnostic_coco(args.ann_file, agn_file, ids)
    with num_threads(args.threads):
        samples = coco_discovery_samples(model, args.ann_file, args.img_dir,
                                         ids, log=print)
    single = [to_det_sample(s, s.img_id, max_objects=1) for s in samples]
    shapes = {im['id']: (im['height'], im['width']) for im in agn['images']}
    centred = [centred_box_sample(i, shapes[i], args.centred_fraction)
               for i in ids]
    rows = {}
    for name, ss in (('discovery', samples), ('discovery_first_object',
                                               single),
                     ('centred_box', centred)):
        res = score_coco(ss, agn_file)
        res.update(score_voc(ss, agn))
        res['objects_per_image'] = sum(len(s.pred_instances)
                                       for s in ss) / len(ss)
        rows[name] = res
        print(name, json.dumps(res))
    dump_coco_json(data_samples_to_coco(samples, classes=('object', ),
                                        results_only=True),
                   osp.join(args.work_dir, 'discovery_results.json'))
    out = dict(config=args.config, ann_file=args.ann_file,
               num_images=len(ids), max_objects=model.max_objects,
               torch=torch.__version__, scores=rows)
    with open(osp.join(args.work_dir, 'scores.json'), 'w') as f:
        json.dump(out, f, indent=1)
    print(f'written {args.work_dir}/scores.json')


if __name__ == '__main__':
    main()
