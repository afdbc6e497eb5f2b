"""vtseg: dense prediction with plain Vision Transformers on mmengine / mmseg / mmdet."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    with open(osp.join(HERE, 'vtseg', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(name):
    """Read ``requirements/<name>.txt`` (comments and ``-r`` lines dropped)."""
    reqs = []
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


setup(
    name='vtseg',
    version=read_version(),
    description='Dense prediction with plain Vision Transformers: token '
    'clustering, pruning, contrast, normalized cut and connectivity heads',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests')),
    include_package_data=True,
    # torch is installed separately (CPU or CUDA build), see README.
    install_requires=parse_requirements('runtime'),
    extras_require={
        'tests': parse_requirements('tests'),
        'demo': parse_requirements('demo'),
        'cpu': parse_requirements('torch-cpu'),
        'wsss': parse_requirements('wsss'),
    },
    zip_safe=False,
)
