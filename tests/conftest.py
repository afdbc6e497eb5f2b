"""Shared fixtures: real data from ../shared/data, tiny configs."""
import os
import os.path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DATA = os.environ.get(
    'VTSEG_SHARED_DATA', osp.join(osp.dirname(REPO_ROOT), 'shared', 'data'))


def shared_path(*parts):
    """Path under ../shared/data, or skip the test with a clear reason."""
    path = osp.join(SHARED_DATA, *parts)
    if not osp.exists(path):
        pytest.skip(f'real test data not found at {path} (set '
                    'VTSEG_SHARED_DATA to the shared data folder)')
    return path


@pytest.fixture
def shared_data():
    return shared_path


@pytest.fixture(scope='session', autouse=True)
def _vtseg_registered():
    import vtseg  # noqa: F401  (applies the compat layer)
    from vtseg.setup_env import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture(autouse=True)
def _vtseg_scope_after_each_test():
    """A test that switches mmengine's default scope (e.g. to mmdet for a
    detector) does not leak it into the tests after it."""
    yield
    from mmengine.registry import DefaultScope, init_default_scope
    current = DefaultScope.get_current_instance()
    if current is None or current.scope_name != 'vtseg':
        init_default_scope('vtseg')
