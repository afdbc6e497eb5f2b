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
    from mmengine.registry import MODELS as ROOT_MODELS
    from mmengine.registry import DefaultScope, init_default_scope

    from vtseg.registry import MODELS
    cfg = Config.fromfile(path)
    model_cfg = cfg.model.copy()
    if 'vitdet' in path.split(osp.sep):
        # mmdet detectors: mmdet's scope, vtseg parts by `_scope_='vtseg'`
        # or full import paths (docs/detection.md)
        assert cfg.get('default_scope') == 'mmdet', path
        # only for this build: later tests run in vtseg's scope
        with DefaultScope.overwrite_default_scope('mmdet'):
            ROOT_MODELS.build(model_cfg)
    else:
        assert cfg.get('default_scope') == 'vtseg', path
        init_default_scope('vtseg')
        MODELS.build(model_cfg)
    assert 'test_dataloader' in cfg and 'test_evaluator' in cfg
