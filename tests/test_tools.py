"""tools/train.py, tools/test.py and the torchrun scripts on real CamVid
frames (CPU)."""
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO_ROOT, shared_path

CONFIG = osp.join(REPO_ROOT, 'configs', 'fcn',
                  'fcn_vit-t16_1xb4-400_camvid-240x320.py')
DET_CONFIG = CONFIG.replace('.py', '-det.py')


def run_tool(args, timeout=900, check=True, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    env.update(env_extra or {})
    res = subprocess.run(args, cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f'{args} failed ({res.returncode}):\n'
                             f'{res.stdout[-3000:]}\n{res.stderr[-5000:]}')
    return res


def data_root_opts():
    root = shared_path('camvid_segnet')
    return [f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}']


def quick_opts(iters, val_interval=None, ckpt_interval=None):
    return ['--cfg-options', f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={val_interval or iters}',
            f'default_hooks.checkpoint.interval={ckpt_interval or iters}',
            'default_hooks.logger.interval=2',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False'] + data_root_opts()


def read_metrics(stdout):
    """The last 'mIoU: x' figure printed by the runner."""
    found = re.findall(r'mIoU: ([0-9.]+)', stdout)
    assert found, stdout[-2000:]
    return float(found[-1])


def test_unknown_cfg_key_is_named(tmp_path):
    res = run_tool([sys.executable, 'tools/train.py', CONFIG, '--work-dir',
                    str(tmp_path), '--cfg-options', 'trian_cfg.max_iters=5'],
                   check=False)
    assert res.returncode != 0
    assert "'trian_cfg'" in res.stderr
    res = run_tool([sys.executable, 'tools/train.py', CONFIG, '--work-dir',
                    str(tmp_path), '--cfg-options',
                    'model.backbone.num_layerz=2'], check=False)
    assert res.returncode != 0 and 'num_layerz' in res.stderr


def test_missing_checkpoint_and_config(tmp_path):
    res = run_tool([sys.executable, 'tools/test.py', CONFIG,
                    str(tmp_path / 'missing.pth')], check=False)
    assert res.returncode != 0 and 'missing.pth' in res.stderr
    res = run_tool([sys.executable, 'tools/train.py',
                    str(tmp_path / 'nope.py')], check=False)
    assert res.returncode != 0 and 'nope.py' in res.stderr


@pytest.mark.slow
def test_train_then_test_camvid(tmp_path):
    """Short training run, then held-out evaluation clearly above chance;
    a second run into the same work dir is refused (nothing overwritten)."""
    wd = str(tmp_path / 'wd')
    res = run_tool([sys.executable, 'tools/train.py', CONFIG, '--work-dir',
                    wd] + quick_opts(80))
    ckpt = osp.join(wd, 'iter_80.pth')
    assert osp.isfile(ckpt)
    res = run_tool([sys.executable, 'tools/test.py', CONFIG, ckpt,
                    '--work-dir', wd, '--cfg-options'] +
                   quick_opts(80)[2:])
    miou = read_metrics(res.stdout)
    # chance: one class everywhere scores ~1/11 of one class's IoU (< 6)
    assert miou > 15.0, res.stdout[-2000:]
    assert 'images/s' in res.stdout
    res = run_tool([sys.executable, 'tools/train.py', CONFIG, '--work-dir',
                    wd] + quick_opts(80), check=False)
    assert res.returncode != 0 and 'already holds checkpoints' in res.stderr


def final_weights(path):
    from vtseg.compat import safe_torch_load
    return safe_torch_load(path)['state_dict']


@pytest.mark.slow
def test_killed_run_resumes_to_same_weights(tmp_path):
    """Deterministic config: kill after the iteration-6 checkpoint, resume
    with --resume, and reach exactly the weights of an uninterrupted run."""
    opts = quick_opts(12, val_interval=100, ckpt_interval=6)
    full = str(tmp_path / 'full')
    run_tool([sys.executable, 'tools/train.py', DET_CONFIG, '--work-dir',
              full] + opts)
    killed = str(tmp_path / 'killed')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', DET_CONFIG, '--work-dir', killed]
        + opts, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    marker = osp.join(killed, 'last_checkpoint')
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if osp.isfile(marker) and open(marker).read().strip().endswith(
                'iter_6.pth'):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not osp.isfile(osp.join(killed, 'iter_12.pth')), \
        'run finished before it could be killed'
    run_tool([sys.executable, 'tools/train.py', DET_CONFIG, '--work-dir',
              killed, '--resume'] + opts)
    a = final_weights(osp.join(full, 'iter_12.pth'))
    b = final_weights(osp.join(killed, 'iter_12.pth'))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_dist_train_and_test_two_processes_gloo(tmp_path):
    """torchrun with 2 CPU processes (gloo): training runs; the 2-process
    test gives the same metrics as 1 process."""
    wd = str(tmp_path / 'dist')
    # PYTHON: the scripts must use this interpreter (a venv not on PATH).
    env = {'PORT': str(29500 + os.getpid() % 1000), 'PYTHON': sys.executable}
    run_tool(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', wd] +
             quick_opts(10), env_extra=env)
    ckpt = osp.join(wd, 'iter_10.pth')
    assert osp.isfile(ckpt)
    opts = ['--cfg-options'] + quick_opts(10)[2:]
    single = run_tool([sys.executable, 'tools/test.py', CONFIG, ckpt,
                       '--work-dir', str(tmp_path / 't1')] + opts)
    double = run_tool(['bash', 'tools/dist_test.sh', CONFIG, ckpt, '2',
                       '--work-dir', str(tmp_path / 't2')] + opts,
                      env_extra=env)
    m1 = re.findall(r'aAcc: ([0-9.]+)\s+mIoU: ([0-9.]+)\s+mAcc: ([0-9.]+)',
                    single.stdout)
    m2 = re.findall(r'aAcc: ([0-9.]+)\s+mIoU: ([0-9.]+)\s+mAcc: ([0-9.]+)',
                    double.stdout + double.stderr)
    assert m1 and m2 and m1[-1] == m2[-1], (m1, m2)


def test_corrupt_image_is_named(tmp_path):
    root = shared_path('camvid_segnet')
    data = tmp_path / 'camvid'
    shutil.copytree(root, data)
    victim = sorted(os.listdir(data / 'test'))[-1]  # a 'val' frame
    (data / 'test' / victim).write_bytes(b'\x89PNG broken')
    # a checkpoint that fits the config (test.py loads strictly)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from vtseg.registry import MODELS
    init_default_scope('vtseg')
    model = MODELS.build(Config.fromfile(CONFIG).model)
    ckpt = tmp_path / 'fits.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    res = run_tool([sys.executable, 'tools/test.py', CONFIG, str(ckpt),
                    '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                    f'test_dataloader.dataset.data_root={data}',
                    'test_dataloader.num_workers=0',
                    'test_dataloader.persistent_workers=False'], check=False)
    assert res.returncode != 0
    assert victim in res.stderr, res.stderr[-3000:]
