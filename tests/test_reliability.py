"""Issue 15: no silent wrong numbers, nothing of the user's lost, every bad
input named (docs/reliability.md). One test (or a few) per fault, each
through the entry point where the fault showed (tools/train.py,
tools/test.py, the demos, vtseg.apis), plus the kill test of the resume
guarantee (slow)."""
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO_ROOT, shared_path

SAL_CONFIG = osp.join(REPO_ROOT, 'configs', 'saliency',
                      'imgfocus_vits14_sod-224.py')
CAMVID_CONFIG = osp.join(REPO_ROOT, 'configs', 'fcn',
                         'fcn_vit-t16_1xb4-400_camvid-240x320.py')
DET_CONFIG = CAMVID_CONFIG.replace('.py', '-det.py')
TOKENCUT_CONFIG = osp.join(REPO_ROOT, 'configs', 'tokencut',
                           'tokencut_imgfocus-vits14_sod-bsds.py')
CKPT = osp.join(REPO_ROOT, 'checkpoints', 'imgfocus_vits14.pth')
NO_WORKERS = ['test_dataloader.num_workers=0',
              'test_dataloader.persistent_workers=False']


def sod_test_opts(indices):
    """--cfg-options for a short sod_bsds test run: the shared data wherever
    VTSEG_SHARED_DATA puts it (the configs' relative path holds only for a
    checkout next to ../shared), no workers."""
    return [f'test_dataloader.dataset.indices={indices}',
            f'test_dataloader.dataset.data_root={shared_path("sod_bsds")}'
            ] + NO_WORKERS


def run(args, check=False, timeout=900, **popen):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    res = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    if check and res.returncode:
        raise AssertionError(f'{args} failed ({res.returncode}):\n'
                             f'{res.stdout[-3000:]}\n{res.stderr[-5000:]}')
    return res


@pytest.fixture(scope='module')
def ckpt():
    if not osp.isfile(CKPT):
        pytest.fail(f'{CKPT} missing: run `make weights` first')
    return CKPT


def camvid_train_opts(iters=1, root=None, ckpt_interval=None,
                      max_keep=None):
    root = root or shared_path('camvid_segnet')
    opts = [f'train_cfg.max_iters={iters}', 'train_cfg.val_interval=1000',
            f'default_hooks.checkpoint.interval={ckpt_interval or iters}',
            'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=1',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}']
    if max_keep is not None:
        opts.append(f'default_hooks.checkpoint.max_keep_ckpts={max_keep}')
    return opts


def model_state_dict(config):
    """A freshly initialised model of ``config`` (fits it exactly)."""
    from mmengine.registry import init_default_scope

    from vtseg.registry import MODELS
    init_default_scope('vtseg')
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    return model.state_dict()


def linked_copy(src, dst):
    """A folder tree of symlinks to ``src``'s files (cheap copy whose files
    can be replaced one by one)."""
    for d, _, files in os.walk(src):
        rel = osp.relpath(d, src)
        os.makedirs(osp.join(dst, rel), exist_ok=True)
        for f in files:
            os.symlink(osp.join(d, f), osp.join(dst, rel, f))


# --------------------------------------------------------------- fault 1
@pytest.fixture(scope='module')
def bad_checkpoints(ckpt, tmp_path_factory):
    """Checkpoints that do not fit the saliency config."""
    from vtseg.compat import safe_torch_load
    d = tmp_path_factory.mktemp('bad_ckpts')
    sd = safe_torch_load(ckpt)['state_dict']
    out = {}
    out['random'] = {'layer1.weight': torch.randn(4, 4),
                     'head.bias': torch.randn(4)}
    out['no_decode_head'] = {k: v for k, v in sd.items()
                             if not k.startswith('decode_head.')}
    shaped = dict(sd)
    shaped['backbone.pos_embed'] = torch.zeros(1, 197, 384)
    out['pos_embed'] = shaped
    out['fcn'] = model_state_dict(CAMVID_CONFIG)
    paths = {}
    for name, state in out.items():
        paths[name] = str(d / f'{name}.pth')
        torch.save({'state_dict': state}, paths[name])
    return paths


@pytest.mark.parametrize('kind,named', [
    ('random', ['layer1.weight', 'backbone.pos_embed']),
    ('no_decode_head', ['decode_head.conv_seg.weight']),
    ('pos_embed', ['backbone.pos_embed', '(1, 197, 384)', '(1, 1370, 384)']),
    ('fcn', ['backbone.layers.0.ln1.weight', 'backbone.blocks.0']),
])
def test_test_py_refuses_checkpoint_that_does_not_fit(bad_checkpoints, kind,
                                                       named, tmp_path):
    """Fault 1: tools/test.py scored such checkpoints and exited 0."""
    res = run(['tools/test.py', SAL_CONFIG, bad_checkpoints[kind],
               '--work-dir', str(tmp_path), '--cfg-options'] +
              sod_test_opts(1))
    assert res.returncode != 0, res.stdout[-2000:]
    assert 'does not fit EncoderDecoder' in res.stderr, res.stderr[-3000:]
    for key in named:
        assert key in res.stderr, (key, res.stderr[-3000:])
    assert 'speed:' not in res.stdout


def test_train_py_load_from_is_strict_and_partial_is_explicit(ckpt,
                                                              tmp_path):
    """Fault 1: train.py with a load_from that does not fit trained from
    scratch; --partial-load is the documented opt-out (backbone only)."""
    res = run(['tools/train.py', DET_CONFIG, '--work-dir',
               str(tmp_path / 'a'), '--cfg-options', f'load_from={ckpt}'] +
              camvid_train_opts(1))
    assert res.returncode != 0
    assert 'does not fit EncoderDecoder' in res.stderr, res.stderr[-3000:]
    assert '--partial-load' in res.stderr
    assert not osp.isfile(tmp_path / 'a' / 'iter_1.pth')
    # a backbone-only checkpoint of this model, loaded partially
    sd = model_state_dict(DET_CONFIG)
    bb = str(tmp_path / 'backbone.pth')
    torch.save({'state_dict': {k: v for k, v in sd.items()
                               if k.startswith('backbone.')}}, bb)
    res = run(['tools/train.py', DET_CONFIG, '--work-dir',
               str(tmp_path / 'b'), '--partial-load', '--cfg-options',
               f'load_from={bb}'] + camvid_train_opts(1))
    assert res.returncode == 0, res.stderr[-3000:]
    n_bb = len([k for k in sd if k.startswith('backbone.')])
    assert f'{n_bb} of {len(sd)} tensors loaded' in res.stdout
    assert 'missing keys: decode_head.' in res.stdout
    # nothing fits: refused even with --partial-load
    res = run(['tools/train.py', DET_CONFIG, '--work-dir',
               str(tmp_path / 'c'), '--partial-load', '--cfg-options',
               f'load_from={ckpt}'] + camvid_train_opts(1))
    assert res.returncode != 0 and 'no tensor fits' in res.stderr


def test_tokencut_full_checkpoint_loads_under_the_declared_rule(ckpt,
                                                                tmp_path):
    """TokenCut has no decode head: it declares decode_head.* unused, which
    strict loading names in the log (tools/test.py, init_model)."""
    res = run(['tools/test.py', TOKENCUT_CONFIG, ckpt, '--work-dir',
               str(tmp_path), '--cfg-options'] + sod_test_opts(1))
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r'ignored 23 tensors under decode_head\. \(TokenCut '
                     'declares them unused\)', res.stdout), res.stdout[-3000:]
    assert 'corloc' in res.stdout
    from vtseg.apis import init_model
    model = init_model(TOKENCUT_CONFIG, ckpt)
    assert type(model).__name__ == 'TokenCut'


def test_init_model_strict_and_partial(bad_checkpoints):
    from vtseg.apis import init_model
    from vtseg.models.utils.checkpoint import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError, match='backbone.pos_embed'):
        init_model(SAL_CONFIG, bad_checkpoints['pos_embed'])
    model = init_model(SAL_CONFIG, bad_checkpoints['pos_embed'],
                       strict=False)  # loads all but pos_embed
    ref = torch.load(bad_checkpoints['no_decode_head'])['state_dict']
    torch.testing.assert_close(model.backbone.blocks[0].attn.qkv.weight,
                               ref['backbone.blocks.0.attn.qkv.weight'])
    with pytest.raises(CheckpointMismatchError, match='no tensor fits'):
        init_model(SAL_CONFIG, bad_checkpoints['random'], strict=False)


# --------------------------------------------------------------- fault 2
def _photos(folder, names):
    src = shared_path('sod_bsds', 'images')
    imgs = sorted(os.listdir(src))
    for i, name in enumerate(names):
        img = cv2.imread(osp.join(src, imgs[i]))
        cv2.imwrite(str(folder / name), img)


def test_image_demo_never_overwrites_inputs(ckpt, tmp_path):
    """Fault 2: --out-dir equal to the input folder listed the photos as
    existing outputs and --force overwrote them."""
    src = tmp_path / 'photos'
    src.mkdir()
    _photos(src, ['a.jpg', 'b.jpg'])
    before = {f: (src / f).read_bytes() for f in os.listdir(src)}
    for extra in ([], ['--force'], ['--force', '--save-mask']):
        res = run(['demo/image_demo.py', str(src), SAL_CONFIG, ckpt,
                   '--out-dir', str(src)] + extra)
        assert res.returncode != 0
        assert 'holds input images' in res.stderr, res.stderr[-2000:]
    # an output file that is an input (another folder, same name)
    res = run(['demo/image_demo.py', str(src / 'a.jpg'), SAL_CONFIG, ckpt,
               '--out-dir', str(tmp_path / 'o'), '--coco-json',
               str(src / 'a.jpg'), '--force'])
    assert res.returncode != 0 and 'would overwrite the input' in res.stderr
    assert {f: (src / f).read_bytes() for f in os.listdir(src)} == before


def test_image_demo_distinct_inputs_give_distinct_outputs(ckpt, tmp_path):
    """Fault 2: a.jpg and a.png wrote the same output names."""
    src = tmp_path / 'photos'
    src.mkdir()
    _photos(src, ['a.jpg', 'a.png', 'b.png'])
    out = tmp_path / 'out'
    res = run(['demo/image_demo.py', str(src), SAL_CONFIG, ckpt, '--out-dir',
               str(out), '--save-mask'])
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(os.listdir(out)) == ['a_jpg.jpg', 'a_png.jpg', 'b.jpg',
                                       'masks']
    assert sorted(os.listdir(out / 'masks')) == ['a_jpg.png', 'a_png.png',
                                                 'b.png']
    # each output belongs to its input (the two photos differ)
    for stem, name in (('a_jpg', 'a.jpg'), ('a_png', 'a.png')):
        assert cv2.imread(str(out / f'{stem}.jpg')).shape == \
            cv2.imread(str(src / name)).shape
    m1 = cv2.imread(str(out / 'masks' / 'a_jpg.png'), cv2.IMREAD_UNCHANGED)
    m2 = cv2.imread(str(out / 'masks' / 'a_png.png'), cv2.IMREAD_UNCHANGED)
    assert m1.shape != m2.shape or not np.array_equal(m1, m2)


def test_demo_without_checkpoint_refuses_random_weights(ckpt, tmp_path):
    """Same class as fault 1 (the list is silent on it): a demo run without
    CHECKPOINT on a config whose init_cfg loads no weights for the head
    drew random predictions without a word."""
    src = tmp_path / 'photos'
    src.mkdir()
    _photos(src, ['a.jpg'])
    res = run(['demo/image_demo.py', str(src), SAL_CONFIG, '--out-dir',
               str(tmp_path / 'out')])
    assert res.returncode != 0
    assert 'randomly initialised' in res.stderr, res.stderr[-2000:]
    assert not osp.isfile(tmp_path / 'out' / 'a.jpg')
    from vtseg.apis import init_model
    assert init_model(TOKENCUT_CONFIG).untrained_keys == []  # backbone only


# --------------------------------------------------------------- fault 3
class _Killed(BaseException):
    """Stands for SIGKILL in the middle of writing a checkpoint file."""


def _load_train_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'vtseg_train_tool', osp.join(REPO_ROOT, 'tools', 'train.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_interrupted_save_keeps_a_resumable_checkpoint(tmp_path,
                                                       monkeypatch):
    """Fault 3: with max_keep_ckpts=1 an interrupted save left no
    checkpoint while last_checkpoint named a deleted file."""
    import mmengine.runner.runner as runner_mod

    from vtseg.compat import safe_torch_load
    real_save = runner_mod.save_checkpoint
    calls = []

    def save_then_die(checkpoint, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 3:  # third save: half a file, then the "kill"
            with open(filename, 'wb') as f:
                f.write(b'PK\x03\x04 half a checkpoint')
            raise _Killed()
        return real_save(checkpoint, filename, *args, **kwargs)

    monkeypatch.setattr(runner_mod, 'save_checkpoint', save_then_die)
    wd = tmp_path / 'wd'
    train = _load_train_tool()
    with pytest.raises(_Killed):
        train.main([DET_CONFIG, '--work-dir', str(wd), '--cfg-options'] +
                   camvid_train_opts(4, ckpt_interval=1, max_keep=1))
    monkeypatch.setattr(runner_mod, 'save_checkpoint', real_save)
    pointer = (wd / 'last_checkpoint').read_text().strip()
    assert osp.isfile(pointer), f'last_checkpoint names a missing {pointer}'
    ckpt = safe_torch_load(pointer)
    assert ckpt['meta']['iter'] == 2 and osp.basename(pointer) == \
        'iter_2.pth'
    assert sorted(f for f in os.listdir(wd) if f.endswith('.pth')) == \
        ['iter_2.pth']
    # --resume continues from it and finishes
    res = run(['tools/train.py', DET_CONFIG, '--work-dir', str(wd),
               '--resume', '--cfg-options'] +
              camvid_train_opts(4, ckpt_interval=1, max_keep=1))
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in res.stdout
    assert 'incomplete checkpoint file(s) of an interrupted save' in \
        res.stdout
    assert [f for f in os.listdir(wd) if f.endswith(('.pth', '.tmp'))] == \
        ['iter_4.pth']


def test_resume_without_checkpoint_says_so(tmp_path):
    """Fault 3: --resume on a work dir without checkpoints started from
    scratch without a word."""
    res = run(['tools/train.py', DET_CONFIG, '--work-dir',
               str(tmp_path / 'empty'), '--resume', '--cfg-options'] +
              camvid_train_opts(1))
    assert res.returncode != 0
    assert 'no checkpoint to resume from' in res.stderr, res.stderr[-2000:]
    assert not osp.isfile(tmp_path / 'empty' / 'iter_1.pth')


# --------------------------------------------------------------- fault 4
def _sod_folder(root, mask, img_shape=None):
    os.makedirs(root / 'images', exist_ok=True)
    os.makedirs(root / 'masks', exist_ok=True)
    h, w = img_shape or mask.shape
    cv2.imwrite(str(root / 'images' / 'x.jpg'),
                np.full((h, w, 3), 120, np.uint8))
    cv2.imwrite(str(root / 'masks' / 'x.png'), mask)


def _gt(config, root):
    from vtseg.registry import DATASETS
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_',
                                   'datasets', config))
    ds = cfg.test_dataloader.dataset
    ds.data_root = str(root)
    ds.pop('split', None)
    ds.layout = 'folder' if config == 'sod_bsds.py' else 'ecssd'
    return DATASETS.build(ds)[0]['data_samples'].gt_sem_seg.data[0].numpy()


def test_soft_mask_one_rule_and_warning(tmp_path, monkeypatch):
    """Fault 4: sod_bsds-style configs binarised at > 0, saliency_folder.py
    at > 127: an 8-bit soft mask scored against a mostly-foreground
    truth."""
    import vtseg.datasets.transforms.loading as loading
    logged = []
    monkeypatch.setattr(loading, 'print_log',
                        lambda msg, **kw: logged.append(msg), raising=False)
    soft = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    _sod_folder(tmp_path / 'folder', soft)
    # one folder for both layouts: masks/ (sod_bsds) = ground_truth_mask/
    os.rename(tmp_path / 'folder' / 'masks',
              tmp_path / 'folder' / 'ground_truth_mask')
    os.symlink(tmp_path / 'folder' / 'ground_truth_mask',
               tmp_path / 'folder' / 'masks')
    a = _gt('sod_bsds.py', tmp_path / 'folder')
    b = _gt('saliency_folder.py', tmp_path / 'folder')
    np.testing.assert_array_equal(a, soft > 127)
    np.testing.assert_array_equal(b, soft > 127)
    assert any('x.png is not binary' in m and '> 127' in m for m in logged)
    # a binary mask is unchanged by the rule (nonzero), without warning
    logged.clear()
    binary = (soft > 200).astype(np.uint8) * 255
    cv2.imwrite(str(tmp_path / 'folder' / 'masks' / 'x.png'), binary)
    np.testing.assert_array_equal(_gt('sod_bsds.py', tmp_path / 'folder'),
                                  binary > 0)
    assert not logged


@pytest.mark.parametrize('img_shape', [(64, 48), (40, 50)])
def test_mask_of_another_size_is_refused(tmp_path, img_shape):
    """Fault 4: a mask whose size or orientation differs from its image was
    stretched onto the prediction without a word."""
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 10:40] = 255
    _sod_folder(tmp_path, mask, img_shape)
    with pytest.raises(RuntimeError) as err:
        _gt('sod_bsds.py', tmp_path)
    msg = str(err.value)
    assert 'x.png is 48x64' in msg and 'x.jpg' in msg, msg
    if img_shape == (64, 48):
        assert 'rotated by 90 degrees' in msg and 'EXIF' in msg


# --------------------------------------------------------------- fault 5
def _typo_config(tmp_path, line):
    path = tmp_path / 'typo.py'
    path.write_text(f"_base_ = ['{DET_CONFIG}']\n{line}\n")
    return str(path)


def test_top_level_typo_is_an_error_in_train_py(tmp_path):
    """Fault 5: `trian_cfg = ...` at the top level of a config was ignored
    and the default schedule ran."""
    cfg = _typo_config(tmp_path, 'trian_cfg = dict(max_iters=1)')
    res = run(['tools/train.py', cfg, '--work-dir', str(tmp_path / 'w'),
               '--cfg-options'] + camvid_train_opts(1))
    assert res.returncode != 0
    assert "'trian_cfg' (did you mean 'train_cfg'?)" in res.stderr, \
        res.stderr[-2000:]
    assert '--allow-unknown-keys' in res.stderr
    assert not osp.isdir(tmp_path / 'w') or not os.listdir(tmp_path / 'w')
    res = run(['tools/train.py', cfg, '--work-dir', str(tmp_path / 'w'),
               '--allow-unknown-keys', '--cfg-options'] +
              camvid_train_opts(1))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "did you mean 'train_cfg'" in res.stdout + res.stderr


def test_top_level_typo_warns_in_load_config_and_init_model(tmp_path,
                                                            monkeypatch):
    import vtseg.utils.config as config_mod
    from vtseg.utils.config import load_config
    logged = []
    monkeypatch.setattr(config_mod, 'print_log',
                        lambda msg, **kw: logged.append(msg), raising=False)
    cfg = _typo_config(tmp_path, "modle = dict(type='EncoderDecoder')")
    load_config(cfg)
    assert any("'modle' (did you mean 'model'?)" in m for m in logged)
    logged.clear()
    # every shipped config is clean
    import glob
    for path in glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py')):
        load_config(path)
    assert not logged, logged


# --------------------------------------------------------------- fault 6
def test_zero_byte_image_in_datasets_is_named(tmp_path):
    """Fault 6: a zero-byte image in a training or test dataset died in an
    OpenCV assertion that never named the file."""
    data = tmp_path / 'camvid'
    linked_copy(shared_path('camvid_segnet'), data)
    frames = sorted(os.listdir(data / 'test'))
    for victim in (frames[0], frames[-1]):  # a 'train' and a 'val' frame
        os.remove(data / 'test' / victim)
        (data / 'test' / victim).write_bytes(b'')
    ckpt = tmp_path / 'fits.pth'
    torch.save({'state_dict': model_state_dict(CAMVID_CONFIG)}, ckpt)
    res = run(['tools/test.py', CAMVID_CONFIG, str(ckpt), '--work-dir',
               str(tmp_path / 'wd'), '--cfg-options',
               f'test_dataloader.dataset.data_root={data}'] + NO_WORKERS)
    assert res.returncode != 0
    assert frames[-1] in res.stderr and 'empty file (0 bytes)' in \
        res.stderr, res.stderr[-3000:]
    res = run(['tools/train.py', DET_CONFIG, '--work-dir',
               str(tmp_path / 'tr'), '--cfg-options'] +
              camvid_train_opts(40, root=str(data)))
    assert res.returncode != 0
    assert frames[0] in res.stderr and 'empty file (0 bytes)' in \
        res.stderr, res.stderr[-3000:]


def test_image_demo_skips_bad_files_and_keeps_going(ckpt, tmp_path):
    """Fault 6: the demo stopped at the first unreadable file, read a video
    matched by a glob as an image and segmented a truncated JPEG with a
    grey fill."""
    src = tmp_path / 'mixed'
    src.mkdir()
    _photos(src, ['a.jpg', 'e.png'])
    (src / 'b.jpg').write_bytes(b'not an image')
    (src / 'c.png').write_bytes(b'')
    good = (src / 'a.jpg').read_bytes()
    (src / 'd.jpg').write_bytes(good[:len(good) // 2])
    os.symlink(shared_path('video_clips', 'sam2_bedroom.mp4'),
               src / 'clip.mp4')
    out = tmp_path / 'out'
    res = run(['demo/image_demo.py', str(src / '*'), SAL_CONFIG, ckpt,
               '--out-dir', str(out)])
    assert res.returncode == 1, res.stderr[-3000:]
    assert sorted(os.listdir(out)) == ['a.jpg', 'e.jpg']
    assert '2 images' in res.stdout
    summary = res.stderr[res.stderr.index('skipped 4 of 6 input file(s)'):]
    for name, why in (('b.jpg', 'corrupt, or truncated'),
                      ('c.png', 'empty file (0 bytes)'),
                      ('d.jpg', 'corrupt, or truncated'),
                      ('clip.mp4', 'not an image file')):
        assert re.search(re.escape(name) + r': .*' + re.escape(why),
                         summary), (name, summary)


def test_truncated_image_is_refused_by_the_api(ckpt, tmp_path):
    """Fault 6: the API segmented a truncated JPEG (grey fill)."""
    from vtseg.apis import inference_model, init_model
    src = shared_path('sod_bsds', 'images',
                      sorted(os.listdir(shared_path('sod_bsds', 'images')))[0])
    data = open(src, 'rb').read()
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(data[:len(data) - 2000])
    model = init_model(SAL_CONFIG, ckpt)
    with pytest.raises(ValueError, match='cut.jpg'):
        inference_model(model, str(cut))
    with pytest.raises(ValueError, match='cut.jpg'):  # batch inference
        inference_model(model, [src, str(cut)])


def test_video_demo_skips_bad_frames(ckpt, tmp_path):
    """Fault 6 in the video demo: a frame folder with a corrupt frame
    stopped at it."""
    frames = shared_path('davis2016_video', 'blackswan', 'JPEGImages')
    src = tmp_path / 'frames'
    src.mkdir()
    for f in sorted(os.listdir(frames))[:4]:
        os.symlink(osp.join(frames, f), src / f)
    bad = sorted(os.listdir(src))[1]
    os.remove(src / bad)
    (src / bad).write_bytes(b'')
    out = tmp_path / 'v.mp4'
    res = run(['demo/video_demo.py', str(src), SAL_CONFIG, ckpt, '--out',
               str(out)])
    assert res.returncode == 1, res.stderr[-3000:]
    assert '3 frames' in res.stdout and out.stat().st_size > 0
    assert bad in res.stderr and 'empty file' in res.stderr
    # the output is never the input
    res = run(['demo/video_demo.py', str(src), SAL_CONFIG, ckpt, '--out',
               str(src / sorted(os.listdir(src))[0]), '--force'])
    assert res.returncode != 0 and 'would overwrite the input' in res.stderr


# --------------------------------------------------------------- fault 7
def test_show_dir_on_saliency_config(ckpt, tmp_path):
    """Fault 7: --show-dir crashed on configs without default_hooks and
    replaced an earlier run's pictures."""
    show = tmp_path / 'show'
    args = ['tools/test.py', SAL_CONFIG, ckpt, '--work-dir',
            str(tmp_path / 'wd'), '--show-dir', str(show), '--cfg-options'
            ] + sod_test_opts(2)
    res = run(args)
    assert res.returncode == 0, res.stderr[-3000:]
    pictures = [f for _, _, fs in os.walk(show) for f in fs
                if f.endswith('.png')]
    assert len(pictures) == 2, pictures
    res = run(args)
    assert res.returncode != 0
    assert 'exists and is not empty' in res.stderr


# ---------------------------------------------------------- kill test (slow)
def _complete_checkpoints(wd):
    """{step: path} of the iter_N.pth files of ``wd``."""
    out = {}
    for f in os.listdir(wd):
        m = re.fullmatch(r'iter_(\d+)\.pth', f)
        if m:
            out[int(m.group(1))] = osp.join(wd, f)
    return out


def _where(wd, step):
    """Where a kill during the save of ``step`` landed, from the disk."""
    ckpts = _complete_checkpoints(wd)
    pointer = ''
    if osp.isfile(osp.join(wd, 'last_checkpoint')):
        pointer = open(osp.join(wd, 'last_checkpoint')).read().strip()
    if osp.isfile(osp.join(wd, f'.iter_{step}.pth.tmp')):
        return 'writing the temporary file'
    if step not in ckpts:
        return 'serialising (nothing on disk yet)'
    if not pointer.endswith(f'iter_{step}.pth'):
        return 'after the rename, before last_checkpoint'
    if len(ckpts) > 1:
        return 'after last_checkpoint, before pruning'
    return 'after the save (next iteration)'


def _check_resumable(wd):
    """After a kill: every ``iter_N.pth`` on disk is a complete checkpoint
    of iteration N, and ``last_checkpoint`` names one of them (it is absent
    only after a kill between the rename and the pointer update of the
    first save). Returns the newest step (where ``--resume`` must
    continue)."""
    from vtseg.compat import safe_torch_load
    ckpts = _complete_checkpoints(wd)
    for step, path in ckpts.items():
        ckpt = safe_torch_load(path)
        assert ckpt['meta']['iter'] == step and 'optimizer' in ckpt, path
    pointer_file = osp.join(wd, 'last_checkpoint')
    if osp.isfile(pointer_file):
        pointer = open(pointer_file).read().strip()
        assert osp.basename(pointer) in {osp.basename(p)
                                         for p in ckpts.values()}, pointer
    else:
        assert list(ckpts) == [1], ckpts
    return max(ckpts)


@pytest.mark.slow
def test_kill_during_save_then_resume(tmp_path):
    """Kill tools/train.py (SIGKILL to its PID) at random moments during
    checkpoint saves (a checkpoint every iteration, max_keep_ckpts=1), at
    least 20 times, resuming each time: every resume starts from a complete
    checkpoint, and the final weights equal an uninterrupted run's
    (deterministic config)."""
    iters = 24
    opts = ['--cfg-options'] + camvid_train_opts(iters, ckpt_interval=1,
                                                 max_keep=1)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore',
               PYTHONUNBUFFERED='1')

    def start(wd, resume):
        return subprocess.Popen(
            [sys.executable, 'tools/train.py', DET_CONFIG, '--work-dir', wd]
            + (['--resume'] if resume else []) + opts, cwd=REPO_ROOT,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1)

    # uninterrupted run; measure how long a save takes (from mmengine's
    # "Saving checkpoint" line to the file under its final name)
    full = str(tmp_path / 'full')
    proc = start(full, False)
    durations = []
    for line in proc.stdout:
        m = re.search(r'Saving checkpoint at (\d+) iterations', line)
        if m:
            t0, path = time.time(), osp.join(full, f'iter_{m.group(1)}.pth')
            while not osp.isfile(path) and proc.poll() is None:
                time.sleep(0.002)
            durations.append(time.time() - t0)
    assert proc.wait() == 0
    save_time = float(np.median(durations))
    # kill anywhere from the start of a save to a little after its end
    window = 1.3 * save_time

    rng = random.Random(15)
    wd = str(tmp_path / 'killed')
    kills, landed, resumed_at = [], [], []
    while len(kills) < 20:
        assert len(kills) < 40, 'runs keep finishing before the kill'
        expected = None
        if osp.isdir(wd) and _complete_checkpoints(wd):
            expected = _check_resumable(wd)
        proc = start(wd, expected is not None)
        step, lines = None, []
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r'resumed epoch: \d+, iter: (\d+)', line)
            if m:
                resumed_at.append(int(m.group(1)))
                assert int(m.group(1)) == expected, (line, expected)
            m = re.search(r'Saving checkpoint at (\d+) iterations', line)
            if m:
                step = int(m.group(1))
                delay = rng.uniform(0, window)
                time.sleep(delay)
                os.kill(proc.pid, signal.SIGKILL)  # by its own PID
                break
        proc.stdout.close()
        proc.wait()
        assert step is not None and step < iters, ''.join(lines)[-3000:]
        kills.append((step, delay))
        landed.append(_where(wd, step))
    # finish
    expected = _check_resumable(wd)
    proc = start(wd, True)
    out = proc.stdout.read()
    assert proc.wait() == 0, out[-3000:]
    assert f'resumed epoch: 0, iter: {expected}' in out
    resumed_at.append(expected)
    assert [f for f in os.listdir(wd) if f.endswith(('.pth', '.tmp'))] == \
        [f'iter_{iters}.pth']

    from vtseg.compat import safe_torch_load
    a = safe_torch_load(osp.join(full, f'iter_{iters}.pth'))['state_dict']
    b = safe_torch_load(osp.join(wd, f'iter_{iters}.pth'))['state_dict']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    counts = {w: landed.count(w) for w in sorted(set(landed))}
    report = (f'kill test: {len(kills)} kills, save {1000 * save_time:.0f} '
              f'ms (median), kill delays 0-{1000 * window:.0f} ms after '
              f'"Saving checkpoint"; landed: {counts}; resumed at '
              f'{resumed_at}; final weights equal ({len(a)} tensors)')
    print(report)
    with open(osp.join(str(tmp_path), 'kill_report.txt'), 'w') as f:
        f.write(report + '\n')
    assert sum(w != 'after the save (next iteration)' for w in landed) >= \
        len(landed) // 2, counts
