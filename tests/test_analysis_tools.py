"""FLOP counting and benchmarking helpers (vtseg.utils.flops / benchmark)
on a tiny ViT, against hand-computed counts."""
import torch
import torch.nn as nn

from vtseg.models.reducers import (TokenClustering, TokenReconstruction,
                                   expedit_token_stages)
from vtseg.registry import MODELS
from vtseg.utils.benchmark import (benchmark_models, compare_speed,
                                   speedups, stage_time_fraction)
from vtseg.utils.flops import count_flops

C, P, DEPTH = 32, 8, 4


def tiny_vit(stages=None):
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='ViT', img_size=64, patch_size=P, embed_dims=C,
             depth=DEPTH, num_heads=2, token_stages=stages or [])).eval()


def block_linear(T):
    """qkv 3C^2 + proj C^2 + MLP 2 * 4C^2 per token."""
    return T * 12 * C * C


def test_plain_vit_counts():
    x = torch.randn(1, 3, 48, 64)  # 6 x 8 tokens + cls
    T = 6 * 8 + 1
    res = count_flops(tiny_vit(), x)
    attention = DEPTH * 2 * T * T * C  # Q K^T and A V
    assert res.attention == attention
    assert res.by_operator['scaled_dot_product_attention'] == attention
    assert res.by_operator['linear'] == DEPTH * block_linear(T)
    assert res.by_operator['conv'] == 48 * C * 3 * P * P
    assert res.reducers == {}
    assert res.total == sum(v for v in res.by_operator.values())


def test_batch_scales_counts():
    one = count_flops(tiny_vit(), torch.randn(1, 3, 32, 32)).total
    three = count_flops(tiny_vit(), torch.randn(3, 3, 32, 32)).total
    assert three == 3 * one


def test_expedit_counts_live_tokens_and_reducers():
    stages = expedit_token_stages(cluster_layer=1, grid=(4, 4), k=3)
    vit = tiny_vit(stages)
    x = torch.randn(2, 3, 64, 64)
    N, M, T1, T2 = 64, 16, 65, 17
    res = count_flops(vit, x)
    assert res.attention == 2 * (2 * (2 * T1 * T1 * C) +
                                 2 * (2 * T2 * T2 * C))
    assert res.by_operator['linear'] == 2 * (2 * block_linear(T1) +
                                             2 * block_linear(T2))
    # window 5 on a 4 x 4 grid of 2 x 2-token cells: per axis the cells see
    # 3, 4, 4, 3 cluster rows -> 64 * (14 / 4)^2 = 784 allowed pairs
    pairs = 784
    cluster = N * C + 5 * (2 * pairs * C + pairs)  # labels left to use
    recon = N * M * C + N * M + N * 3 * C
    assert res.reducers == {'token_stages.0': 2 * cluster,
                            'token_stages.1': 2 * recon}
    assert res.total == sum(v for v in res.by_operator.values())
    spec = count_flops(vit, x, 'spec')
    cluster_spec = N * C + 5 * (2 * N * M * C + N * M) + N * M * C
    recon_spec = 2 * N * M * C + N * M
    assert spec.reducers == {'token_stages.0': 2 * cluster_spec,
                             'token_stages.1': 2 * recon_spec}
    assert spec.total - res.total == 2 * (cluster_spec - cluster +
                                          recon_spec - recon)
    # the counting hooks are gone afterwards
    restorer = vit.output_restorer
    assert 'restore' not in restorer.__dict__
    assert not hasattr(restorer, '_flops_restore')
    with torch.no_grad():
        assert vit(x)[0].shape == (2, C, 8, 8)


def test_reconstruction_between_blocks_counted():
    stages = expedit_token_stages(cluster_layer=0, grid=(4, 4), k=2,
                                  reconstruct_layer=2)
    res = count_flops(tiny_vit(stages), torch.randn(1, 3, 64, 64))
    T1, T2 = 65, 17
    assert res.attention == 2 * (2 * T1 * T1 * C) + 2 * T2 * T2 * C * 2
    assert res.reducers['token_stages.1'] == 64 * 16 * C + 64 * 16 + \
        64 * 2 * C


class Sleeper(nn.Module):
    """Forward records its name (to check the interleaving)."""

    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x):
        self.log.append(self.name)
        return x * 2


def test_benchmark_interleaves_and_reports():
    log = []
    models = {'base': Sleeper('base', log), 'fast': Sleeper('fast', log)}
    stats = benchmark_models(models, torch.randn(2, 3, 4, 4), warmup=1,
                             rounds=3, iters_per_round=2, threads=1)
    timed = log[2:]  # after one warm-up forward each
    assert timed == ['base'] * 2 + ['fast'] * 2 + ['fast'] * 2 + \
        ['base'] * 2 + ['base'] * 2 + ['fast'] * 2
    assert len(stats['base'].times) == 6
    assert len(stats['fast'].round_medians) == 3
    assert stats['base'].batch_size == 2
    sp = speedups(stats)
    assert set(sp) == {'fast'} and sp['fast']['ratio'] > 0
    res = compare_speed(Sleeper('a', []), Sleeper('b', []),
                        torch.randn(1, 3, 4, 4), 1, 2, 1)
    assert set(res) == {'baseline_ms', 'variant_ms', 'speedup', 'round_min',
                        'round_max'}


def test_stage_time_fraction():
    vit = tiny_vit(expedit_token_stages(cluster_layer=1, grid=(4, 4), k=3))
    frac = stage_time_fraction(vit, torch.randn(1, 3, 64, 64),
                               [TokenClustering, TokenReconstruction],
                               repeats=2)
    assert 0 < frac['fraction'] < 1
    for stage in vit.token_stages:
        assert 'forward' not in stage.__dict__
        assert 'restore' not in stage.__dict__


def test_speedup_vs_plain_builds_the_plain_counterpart():
    from mmengine.config import Config

    from vtseg.utils.benchmark import plain_model_like, speedup_vs_plain
    cfg = Config(dict(model=dict(
        type='ViT', img_size=64, patch_size=P, embed_dims=C, depth=DEPTH,
        num_heads=2, token_stages=expedit_token_stages(
            cluster_layer=1, grid=(4, 4), k=3))))
    fast = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        plain = plain_model_like(fast, cfg)
        x = torch.randn(1, 3, 64, 64)
        assert len(plain.token_stages) == 0
        torch.testing.assert_close(plain(x)[0], tiny_vit_like(fast)(x)[0])
    res = speedup_vs_plain(fast, x, cfg, threads=1, rounds=2,
                           iters_per_round=1, warmup=1)
    assert res['speedup'] > 0


def tiny_vit_like(model):
    plain = tiny_vit()
    plain.load_state_dict(model.state_dict())
    return plain


def test_compare_maps(tmp_path):
    import importlib.util
    import os.path as osp

    import cv2
    import numpy as np
    spec = importlib.util.spec_from_file_location(
        'compare_maps', osp.join(osp.dirname(osp.dirname(__file__)), 'tools',
                                 'analysis_tools', 'compare_maps.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    m1 = np.zeros((4, 4), np.uint8)
    m1[:2] = 200          # 8 foreground pixels
    m2 = np.zeros((4, 4), np.uint8)
    m2[:1] = 255          # 4 of them
    m2[3, 3] = 128        # p = 0.502 > 0.5: one more, outside m1
    cv2.imwrite(str(a / 'x.png'), m1)
    cv2.imwrite(str(b / 'x.png'), m2)
    empty = np.zeros((4, 4), np.uint8)
    cv2.imwrite(str(a / 'y.png'), empty)
    cv2.imwrite(str(b / 'y.png'), empty)
    res = mod.compare(str(a), str(b))
    assert res['n'] == 2
    assert abs(res['mean_iou'] - (4 / 9 + 1.0) / 2) < 1e-9
    assert abs(res['min_iou'] - 4 / 9) < 1e-9


def test_reconstruction_in_the_head_counted():
    """restore='head': the weights stay a reducer formula; the head's
    products on the clusters (matmul) and their rebuilding (weighted
    embedding_bag, one multiply-add per index and channel) are traced."""
    class Seg(nn.Module):
        def __init__(self, vit):
            super().__init__()
            self.backbone = vit
            torch.manual_seed(3)
            self.decode_head = MODELS.build(dict(
                type='UpConvHead', in_channels=C, channels=8,
                up_channels=(16, 8), num_classes=2, out_channels=1,
                threshold=0.5, loss_decode=dict(type='mmseg.CrossEntropyLoss',
                                                use_sigmoid=True)))

        def forward(self, x):
            return self.decode_head(self.backbone(x))

    kw = dict(cluster_layer=1, grid=(4, 4), k=3)
    x = torch.randn(2, 3, 64, 64)
    models = {r: Seg(tiny_vit(expedit_token_stages(restore=r, **kw))).eval()
              for r in ('backbone', 'head')}
    counts = {r: count_flops(m, x) for r, m in models.items()}
    with torch.no_grad():
        lazy, = models['head'].backbone(x)
    # entries kept per token: k, more where ties at the k-th value are kept
    # (this random model has exactly equal distances)
    K = lazy.levels[0][0].shape[2]
    N, M, k = 64, 16, 3
    convt = N * C * 16 * 16            # first layer on the 8 x 8 grid
    gemm = M * C * 16 * 16             # the same products on 16 clusters
    rebuild = 4 * N * K * (4 * 16)     # per kernel row: N * K * (kw * O)
    head = counts['head']
    assert head.by_operator['embedding_bag'] == 2 * rebuild
    assert head.reducers['backbone.token_stages.1'] == 2 * (N * M * C +
                                                             N * M)
    assert counts['backbone'].total - head.total == 2 * (
        convt + N * k * C - gemm - rebuild)
