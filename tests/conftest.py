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
