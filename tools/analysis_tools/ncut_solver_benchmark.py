"""Benchmark TokenCut's eigen solvers: dense generalised ``eigh`` (the
reference / faithful path) against the default fast solver, on real ViT
features at a large token count, checking that the bipartitions agree.

    python tools/analysis_tools/ncut_solver_benchmark.py \
        configs/tokencut/tokencut_imgfocus-vits14_sod-bsds.py \
        checkpoints/imgfocus_vits14.pth --size 784 --num-images 5

    # no weights: planted features on a 56 x 56 grid
    python tools/analysis_tools/ncut_solver_benchmark.py --synthetic 56

Images are resized to ``--size`` x ``--size`` (784 px with a /14 backbone:
56 x 56 = 3,136 tokens). The time of one cut (affinity + eigenvector +
partition) is the median of ``--repeat`` runs per solver. BLAS threads are
fixed with ``--threads`` (default 1) *before* numpy loads: multi-threaded
OpenBLAS on a shared, oversubscribed CPU can make the dense solver 100x
slower, which would flatter the fast solver.
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', nargs='?', help='TokenCut config')
    p.add_argument('checkpoint', nargs='?', help='weights (backbone.*)')
    p.add_argument('--size', type=int, default=784,
                   help='square input side in pixels')
    p.add_argument('--num-images', type=int, default=5)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--solvers', default='auto,lobpcg',
                   help='fast solvers to compare with dense')
    p.add_argument('--threads', type=int, default=1,
                   help='BLAS / torch threads (set before numpy loads)')
    p.add_argument('--synthetic', type=int, default=0, metavar='SIDE',
                   help='planted features on a SIDE x SIDE grid instead of '
                   'a model')
    return p.parse_args()


def main():
    args = parse_args()
    for var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS',
                'MKL_NUM_THREADS'):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    import time

    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    from vtseg.functional import normalized_cut as nc

    samples = []
    if args.synthetic:
        s = args.synthetic
        rng = np.random.default_rng(0)
        for i in range(args.num_images):
            yy, xx = np.mgrid[:s, :s]
            lab = ((yy - rng.uniform(0, s))**2 + (xx - rng.uniform(0, s))**2
                   < (rng.uniform(0.15, 0.35) * s)**2).astype(int)
            protos = rng.standard_normal((2, 384))
            f = protos[lab.ravel()] + 1.5 * rng.standard_normal((s * s, 384))
            samples.append((f'synthetic{i}', f.astype(np.float32), (s, s)))
    else:
        if not (args.config and args.checkpoint):
            raise SystemExit('give CONFIG and CHECKPOINT, or --synthetic')
        import vtseg  # noqa: F401  (compat layer)
        from mmengine.config import Config
        from mmengine.runner import load_checkpoint
        from PIL import Image

        from vtseg.registry import MODELS
        from vtseg.setup_env import register_all_modules
        register_all_modules()
        cfg = Config.fromfile(args.config)
        model = MODELS.build(cfg.model).eval()
        load_checkpoint(model, args.checkpoint, map_location='cpu',
                        logger='silent')
        ds = cfg.test_dataloader.dataset
        from vtseg.registry import DATASETS
        dataset = DATASETS.build({**ds, 'pipeline': []})
        mean = model.data_preprocessor.mean
        std = model.data_preprocessor.std
        for i in range(min(args.num_images, len(dataset))):
            path = dataset.get_data_info(i)['img_path']
            img = Image.open(path).convert('RGB').resize(
                (args.size, args.size), Image.BICUBIC)
            x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
            x = ((x.float() - mean) / std)[None]
            feats, hw = model.extract_feat(x)
            samples.append((os.path.basename(path), feats[0].numpy(), hw))
        print(f'model: {args.config} feature={model.feature} '
              f'layer={model.layer} center={model.center} tau={model.tau}')

    fast = [s for s in args.solvers.split(',') if s]
    print(f'threads={args.threads}, size={args.size}, solvers dense vs '
          f'{fast}, median of {args.repeat}')
    rows = []
    for name, f, hw in samples:
        res = {}
        for solver in ['dense'] + fast:
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out = nc.ncut(f, hw, solver=solver)
                times.append(time.perf_counter() - t0)
            res[solver] = (float(np.median(times)), out)
        dense_t, (dp, dv, ds) = res['dense']
        line = [f'{name}: {hw[0]}x{hw[1]}={hw[0] * hw[1]} tokens, dense '
                f'{dense_t:.3f}s']
        row = dict(n=hw[0] * hw[1], dense=dense_t)
        for solver in fast:
            t, (p, v, s) = res[solver]
            diff = int((p != dp).sum())
            err = float(min(np.abs(v - dv).max(), np.abs(v + dv).max()))
            line.append(f'{solver} {t:.3f}s (x{dense_t / t:.1f}, '
                        f'{diff} tokens differ, max|dx| {err:.1e})')
            row[solver] = t
            row[solver + '_diff'] = diff
        rows.append(row)
        print('; '.join(line), flush=True)
    print('--- summary')
    for solver in fast:
        d = sum(r['dense'] for r in rows)
        t = sum(r[solver] for r in rows)
        mism = sum(r[solver + '_diff'] for r in rows)
        print(f'{solver}: total {t:.2f}s vs dense {d:.2f}s -> {d / t:.1f}x '
              f'faster; bipartition differs in {mism} tokens over '
              f'{len(rows)} images (mean {np.mean([r["n"] for r in rows]):.0f}'
              ' tokens)')


if __name__ == '__main__':
    main()
