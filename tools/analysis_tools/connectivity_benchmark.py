"""Benchmark: bilateral voting by slicing shifts (``vtseg.functional``) vs the
shift-matrix formulation of BiconNet / DconnNet (dense 0/1 translation
matrices multiplied on both sides of every direction map).

Checks that both give identical outputs, then times them (median of
``--repeat`` runs after one warm-up).

Example::

    python tools/analysis_tools/connectivity_benchmark.py \
        --size 512 512 --batch 8 --threads 1
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import vtseg  # noqa: E402,F401
from vtseg.functional import (CONNECTIVITY_OFFSETS,  # noqa: E402
                              bilateral_voting)


def translation_matrices(H: int, W: int, device=None, dtype=torch.float32):
    """(hori, vert): ``x @ hori`` moves content one column right
    (out[:, c] = x[:, c - 1]) and ``vert @ x`` one row up
    (out[r] = x[r + 1]); transposes move the other way. Fixed to one
    (H, W), like the references."""
    hori = torch.zeros(W, W, device=device, dtype=dtype)
    hori[torch.arange(W - 1), torch.arange(1, W)] = 1
    vert = torch.zeros(H, H, device=device, dtype=dtype)
    vert[torch.arange(H - 1), torch.arange(1, H)] = 1
    return hori, vert


def shift_matrix_voting(conn: torch.Tensor, hori: torch.Tensor,
                        vert: torch.Tensor) -> torch.Tensor:
    """(B, K*8, H, W) -> (B, K, H, W): for direction d the opposite map
    ``C_{7-d}`` is moved by ``o_d`` with matrix products
    (``vert``/``vert.T`` on the left for rows, ``hori``/``hori.T`` on the
    right for columns), multiplied with ``C_d``, then max over d."""
    B, C, H, W = conn.shape
    c = conn.reshape(B, C // 8, 8, H, W)
    votes = []
    for d, (dy, dx) in enumerate(CONNECTIVITY_OFFSETS):
        x = c[:, :, 7 - d]
        if dy == 1:
            x = torch.matmul(vert, x)  # x(p + (1, 0))
        elif dy == -1:
            x = torch.matmul(vert.t(), x)
        if dx == 1:
            x = torch.matmul(x, hori.t())  # x(p + (0, 1))
        elif dx == -1:
            x = torch.matmul(x, hori)
        votes.append(c[:, :, d] * x)
    return torch.stack(votes, 2).amax(2)


def timeit(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, nargs=2, default=(512, 512),
                        metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--classes', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch.set_num_threads (0: leave default)')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    H, W = args.size
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    conn = torch.rand(args.batch, 8 * args.classes, H, W,
                      generator=g).to(dev)
    hori, vert = translation_matrices(H, W, dev)

    def sync():
        if dev.type == 'cuda':
            torch.cuda.synchronize()

    with torch.no_grad():
        a = bilateral_voting(conn)
        b = shift_matrix_voting(conn, hori, vert)
        identical = torch.equal(a, b)

        def run_slice():
            bilateral_voting(conn)
            sync()

        def run_matrix():
            shift_matrix_voting(conn, hori, vert)
            sync()

        t_slice, all_slice = timeit(run_slice, args.repeat)
        t_matrix, all_matrix = timeit(run_matrix, args.repeat)
    print(f'torch {torch.__version__}, device {dev}, threads '
          f'{torch.get_num_threads()}, input ({args.batch}, '
          f'{8 * args.classes}, {H}, {W}) fp32')
    print(f'identical output: {identical}')
    print(f'slicing (vtseg):        median {t_slice * 1e3:9.1f} ms  '
          f'runs {[round(t * 1e3, 1) for t in all_slice]}')
    print(f'shift matrices (ref.):  median {t_matrix * 1e3:9.1f} ms  '
          f'runs {[round(t * 1e3, 1) for t in all_matrix]}')
    print(f'speed-up: {t_matrix / t_slice:.1f}x')
    if not identical:
        raise SystemExit('outputs differ')


if __name__ == '__main__':
    main()
