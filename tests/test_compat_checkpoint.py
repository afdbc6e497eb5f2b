"""Weights-only checkpoint loading with vtseg's allow-list."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import vtseg  # noqa: F401
from vtseg.compat import UnsafeCheckpointError, safe_torch_load


def runner_like_checkpoint():
    hub = MessageHub('ckpt-test')
    for i in range(3):
        hub.update_scalar('train/loss', 1.0 / (i + 1))
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('iter', 3)
    return dict(
        meta=dict(epoch=0, iter=3, seed=0, arr=np.arange(4),
                  dtype=np.dtype('float32')),
        state_dict=dict(w=torch.ones(2, 2)),
        message_hub=hub.state_dict())


def test_runner_checkpoint_roundtrip(tmp_path):
    path = str(tmp_path / 'iter_3.pth')
    torch.save(runner_like_checkpoint(), path)
    ckpt = safe_torch_load(path)
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx((1 + 0.5 + 1 / 3) / 3)
    assert buf.max() == 1.0
    assert ckpt['message_hub']['runtime_info']['eta'] == 12.5
    np.testing.assert_array_equal(ckpt['meta']['arr'], np.arange(4))


def test_mmengine_loader_uses_safe_path(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader
    path = str(tmp_path / 'c.pth')
    torch.save(runner_like_checkpoint(), path)
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert 'message_hub' in ckpt


class _RunsCode:

    def __reduce__(self):
        return (os.system, ('echo vtseg-test-should-not-run',))


class _GetattrEscape:
    """getattr on an allowed class, but not a statistics method."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


class _GetattrNumpy:

    def __reduce__(self):
        return (getattr, (np.ndarray, 'tofile'))


@pytest.mark.parametrize('payload', [_RunsCode, _GetattrEscape,
                                     _GetattrNumpy])
def test_malicious_checkpoint_refused(tmp_path, payload):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': payload()}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_torch_load(path)
    assert path in str(err.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_torch_load(str(tmp_path / 'nope.pth'))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='bad.pth'):
        safe_torch_load(str(bad))


def test_allowlist_is_not_global(tmp_path):
    """The allow-list applies inside vtseg's loader only."""
    path = str(tmp_path / 'c.pth')
    torch.save(runner_like_checkpoint(), path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    assert osp.isfile(path)
