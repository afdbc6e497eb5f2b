"""Prepare the quickstart inputs from photos that ship inside scikit-image's
wheel (no download): a few photos and a short video panning across one.

    python tools/misc/quickstart_assets.py OUT_DIR

Writes ``OUT_DIR/photos/*.png`` and ``OUT_DIR/pan.mp4``.
"""
import argparse
import os
import os.path as osp

import cv2

# Real photographs bundled in the scikit-image wheel (skimage/data).
PHOTOS = ('astronaut.png', 'coffee.png', 'chelsea.png', 'rocket.jpg',
          'motorcycle_left.png')


def skimage_data_dir() -> str:
    import skimage
    return osp.join(osp.dirname(skimage.__file__), 'data')


def write_photos(out_dir: str):
    src = skimage_data_dir()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name in PHOTOS:
        img = cv2.imread(osp.join(src, name), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f'{name} not found in {src}')
        path = osp.join(out_dir, osp.splitext(name)[0] + '.png')
        cv2.imwrite(path, img)
        paths.append(path)
    return paths


def write_pan_video(photo: str, out: str, frames: int = 36,
                    size=(320, 240), fps: float = 12.0):
    """A slow zoom-and-pan across ``photo``: ``frames`` crops of a shrinking
    window sliding left to right, resized to ``size`` (W, H)."""
    img = cv2.imread(photo, cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f'cannot write {out}')
    for i in range(frames):
        t = i / max(frames - 1, 1)
        scale = 1.0 - 0.35 * t
        cw, ch = int(w * scale), int(h * scale)
        x0 = int((w - cw) * t)
        y0 = int((h - ch) * 0.5)
        crop = img[y0:y0 + ch, x0:x0 + cw]
        writer.write(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))
    writer.release()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('out_dir')
    args = p.parse_args(argv)
    photos = write_photos(osp.join(args.out_dir, 'photos'))
    video = write_pan_video(photos[0], osp.join(args.out_dir, 'pan.mp4'))
    print(f'{len(photos)} photos and {video}')


if __name__ == '__main__':
    main()
