"""Every shipped config parses and its model builds."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT

CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in p.split(osp.sep))


@pytest.mark.parametrize(
    'path', CONFIGS,
    ids=[osp.relpath(p, osp.join(REPO_ROOT, 'configs')) for p in CONFIGS])
def test_config_builds(path):
    from mmengine.registry import init_default_scope

    from vtseg.registry import MODELS
    cfg = Config.fromfile(path)
    assert cfg.get('default_scope') == 'vtseg', path
    init_default_scope('vtseg')
    model_cfg = cfg.model.copy()
    MODELS.build(model_cfg)
    assert 'test_dataloader' in cfg and 'test_evaluator' in cfg
