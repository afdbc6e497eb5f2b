"""Draw the salient instances of a ConnNet model on an image (coloured masks,
simplified polygons with holes, boxes, scores) and optionally write them as
COCO JSON.

Example::

    python tools/analysis_tools/connnet_draw_instances.py \
        configs/connnet/connnet_vits14-frozen_pennfudan-inst-336.py \
        WORK_DIR/iter_400.pth \
        ../shared/data/pennfudanped/PNGImages/PennPed00011.png \
        --gt-mask ../shared/data/pennfudanped/PedMasks/PennPed00011_mask.png \
        --out docs/images/connnet_pennfudan_example.png --max-side 480
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import vtseg  # noqa: E402,F401
from vtseg.utils.coco_export import (data_samples_to_coco,  # noqa: E402
                                     dump_coco_json)

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('image')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--json', help='also write COCO results JSON here')
    parser.add_argument('--gt-mask',
                        help='instance-id mask (0 = background): draw the '
                        'ground truth beside the prediction')
    parser.add_argument('--max-side', type=int, default=0,
                        help='downscale the drawing to this longest side')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    from mmseg.structures import SegDataSample

    from vtseg.apis import inference_model, init_model
    from vtseg.visualization import VTSegVisualizer
    model = init_model(args.config, args.checkpoint, device=args.device)
    vis = VTSegVisualizer()
    vis.dataset_meta = model.dataset_meta

    def draw_instances(img_bgr, inst):
        sample = SegDataSample()
        sample.pred_instances = inst
        return vis.draw_prediction(img_bgr[..., ::-1].copy(),
                                   sample)[..., ::-1].copy()

    result = inference_model(model, args.image)
    if 'pred_instances' not in result:
        raise SystemExit(f'{args.config}: the model predicts no instances '
                         '(use ConnNetSegmentor with test_cfg.instances)')
    img = cv2.imread(args.image)
    drawn = draw_instances(img, result.pred_instances)
    if args.gt_mask:
        import torch
        from mmengine.structures import InstanceData
        from PIL import Image

        from vtseg.evaluation.metrics.instance_ap_metric import (
            boxes_from_instance_masks, instance_masks_from_ids)
        gt = instance_masks_from_ids(np.array(Image.open(args.gt_mask)))
        gt_inst = InstanceData(
            masks=torch.from_numpy(gt),
            bboxes=torch.from_numpy(boxes_from_instance_masks(gt)).float(),
            scores=torch.ones(len(gt)))
        right = draw_instances(img, gt_inst)
        for im, text in ((drawn, 'prediction'), (right, 'ground truth')):
            cv2.putText(im, text, (8, im.shape[0] - 10),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2,
                        cv2.LINE_AA)
        drawn = np.concatenate([drawn, np.full_like(drawn[:, :6], 255),
                                right], axis=1)
    if args.max_side and max(drawn.shape[:2]) > args.max_side:
        s = args.max_side / max(drawn.shape[:2])
        drawn = cv2.resize(drawn, None, fx=s, fy=s,
                           interpolation=cv2.INTER_AREA)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, drawn)
    print(f'{len(result.pred_instances)} instances -> {args.out}')
    if args.json:
        dump_coco_json(
            data_samples_to_coco([result], [dict(id=1, name='object')],
                                 results_only=True), args.json)
        print(f'COCO results -> {args.json}')


if __name__ == '__main__':
    main()
