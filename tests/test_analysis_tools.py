"""FLOP counting and benchmarking helpers (vtseg.analysis: flops,
benchmark, stage_time) on a tiny ViT, against hand-computed counts."""
import dataclasses
import os.path as osp

import torch
import torch.nn as nn

from conftest import REPO_ROOT
from vtseg.analysis.benchmark import (benchmark_models, build_model,
                                      compare_speed, plain_model_like,
                                      speedup_vs_plain, speedups)
from vtseg.analysis.flops import count_flops
from vtseg.analysis.stage_time import stage_time_fraction
from vtseg.models.reducers import (BaseTokenStage, TokenClustering,
                                   TokenReconstruction, expedit_token_stages)
from vtseg.models.utils import ClusteredFeatureMap
from vtseg.registry import MODELS

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
    for stage in vit.token_stages:
        assert 'restore' not in stage.__dict__
        assert not hasattr(stage, '_flops_restore')
        assert not stage._forward_hooks
    with torch.no_grad():
        assert vit(x)[0].shape == (2, C, 8, 8)


def test_kept_outliers_counted():
    """Blocks after the clustering run on M clusters + K kept tokens; the
    clustering also counts the hard labels and residuals it now needs."""
    kw = dict(cluster_layer=1, grid=(4, 4), k=3)
    plain_stages = tiny_vit(expedit_token_stages(**kw))
    vit = tiny_vit(expedit_token_stages(keep_outliers=0.125, **kw))
    x = torch.randn(2, 3, 64, 64)
    N, M, K, T1 = 64, 16, 8, 65
    T2 = 1 + M + K
    res = count_flops(vit, x)
    assert res.attention == 2 * (2 * (2 * T1 * T1 * C) +
                                 2 * (2 * T2 * T2 * C))
    base = count_flops(plain_stages, x).reducers['token_stages.0']
    labels = 784 * C  # one distance pass over the window pairs
    assert res.reducers['token_stages.0'] == base + 2 * (labels + N * C)
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


class _MatmulStage(BaseTokenStage):
    """Multiplies the tokens by a (C, C) identity after block 1 (a traced
    matmul of T * C * C multiply-adds); ``flops`` returns ``count``."""

    def __init__(self, count=None):
        super().__init__(after_block=1)
        self.count = count
        self.register_buffer('w', torch.eye(C), persistent=False)

    def forward(self, grid, *args, **kwargs):
        return dataclasses.replace(grid, x=grid.x @ self.w)

    def flops(self, call, args, output, mode):
        return self.count


def test_stage_flops_none_keeps_traced_ops():
    """``flops() -> None``: no formula, the stage's traced ops are counted;
    a number replaces them."""
    x = torch.randn(2, 3, 48, 64)
    T = 6 * 8 + 1
    plain = count_flops(tiny_vit(), x)
    for count, expect in ((None, 2 * T * C * C), (7, 7)):
        vit = tiny_vit()
        vit.set_token_stages([_MatmulStage(count)])
        res = count_flops(vit, x)
        assert res.total == plain.total + expect
        assert res.total == sum(res.by_operator.values())
        assert sum(res.by_module.values()) == res.total
        assert res.reducers == ({} if count is None else
                                {'token_stages.0': 7})


def test_stage_time_fraction_patches_instances_only():
    """restore='head': the ClusteredFeatureMap returned by the timed restore
    gets an instance-level restore_tokens; the class is never patched."""
    class_fn = ClusteredFeatureMap.__dict__['restore_tokens']
    seen = []

    class Seg(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = tiny_vit(expedit_token_stages(
                cluster_layer=1, grid=(4, 4), k=3, restore='head'))

        def forward(self, x):
            out = self.backbone(x)[0]
            assert isinstance(out, ClusteredFeatureMap)
            seen.append(('restore_tokens' in vars(out),
                         ClusteredFeatureMap.__dict__['restore_tokens']))
            return out.restore_tokens(out.tokens)

    frac = stage_time_fraction(Seg().eval(), torch.randn(1, 3, 64, 64),
                               [TokenClustering, TokenReconstruction],
                               repeats=2)
    assert 0 < frac['fraction'] < 1
    assert len(seen) == 3
    assert all(inst and fn is class_fn for inst, fn in seen)
    assert ClusteredFeatureMap.__dict__['restore_tokens'] is class_fn


def _check_plain_copy(model, plain, n_stages):
    """Stages dropped on the copy only; equal weights, none shared."""
    assert len(plain.backbone.token_stages) == 0
    assert len(model.backbone.token_stages) == n_stages
    sd, psd = model.state_dict(), plain.state_dict()
    assert sd.keys() == psd.keys()
    assert all(torch.equal(sd[k], psd[k]) and
               sd[k].data_ptr() != psd[k].data_ptr() for k in sd)


def test_plain_model_like_on_a_token_reduction_config():
    """A shipped Expedit config (a segmentor built from its config file)."""
    path = osp.join(REPO_ROOT, 'configs', 'expedit',
                    'expedit_imgfocus_vits14_sod-448_l3-g0.6.py')
    model = build_model(path)
    plain = plain_model_like(model)
    _check_plain_copy(model, plain, 2)
    assert plain.cfg is model.cfg
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert plain(x, mode='tensor').shape == model(x, mode='tensor').shape


def test_plain_model_like_hourglass_vit():
    """HourglassViT rejects ``token_stages=[]`` in its constructor, so the
    baseline cannot be rebuilt from the config (the former bug): the copy
    drops its stages instead, and runs like a plain ViT."""
    cfg = dict(type='HourglassViT', cluster_layer=1, grid=(4, 4), k=3,
               img_size=64, patch_size=P, embed_dims=C, depth=DEPTH,
               num_heads=2)
    seg = MODELS.build(dict(
        type='EncoderDecoder', backbone=cfg,
        decode_head=dict(type='UpConvHead', in_channels=C, channels=8,
                         up_channels=(16, 8), num_classes=2, out_channels=1,
                         threshold=0.5),
        data_preprocessor=dict(type='SegDataPreProcessor'))).eval()
    plain = plain_model_like(seg)
    _check_plain_copy(seg, plain, 2)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(plain.backbone(x)[0],
                                   tiny_vit_like(seg.backbone)(x)[0])


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


def test_fused_multihead_attention_is_counted():
    """nn.MultiheadAttention takes a fused kernel in eval mode without
    gradients; the counter gives it the cost of the unfused ops."""
    from vtseg.analysis.flops import count_flops

    class SelfAttention(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    m = SelfAttention().eval()
    x = torch.randn(2, 7, 16)
    L, E = 7, 16
    expected = 2 * (3 * L * E * E + 2 * L * L * E + L * E * E)
    assert count_flops(m, x).total == expected


def test_benchmark_tool_sweeps_a_config_key():
    """benchmark.py --sweep: one model per value of a key of one config,
    timed in one interleaved run."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', osp.join(REPO_ROOT, 'tools', 'analysis_tools',
                                   'benchmark.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = osp.join(REPO_ROOT, 'configs', 'fcn',
                   'fcn_vit-t16_1xb4-400_camvid-240x320.py')
    res = tool.main([cfg, '--shape', '32', '--warmup', '0', '--rounds', '1',
                     '--iters', '1', '--sweep', 'model.backbone.out_indices',
                     '-1', '[1, -1]'])
    assert list(res['models']) == ['model.backbone.out_indices=-1',
                                   'model.backbone.out_indices=[1, -1]']
    assert 'model.backbone.out_indices=[1, -1]' in res['speedups']
