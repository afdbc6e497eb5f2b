"""vtseg's imports flow one way (docs/architecture.md, "Package layout and
import rules").

Every module of the ``vtseg`` package is parsed with :mod:`ast` (nothing is
imported). Every import statement counts, wherever it is (module level,
inside functions or ``if`` blocks): ``import a.b``, ``from a import b``,
``from . import x`` and ``from ..pkg import y`` (resolved against the
module's package), and imports by string, ``importlib.import_module(
'vtseg.x')`` / ``__import__('vtseg.x')``. From them the test builds the
graph of vtseg-internal edges (module -> imported module; ``from pkg import
name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``) and
fails, naming file, line and edge, on:

(a) a cycle among vtseg modules;
(b) a cycle among vtseg's top-level packages (``vtseg.models``,
    ``vtseg.datasets``, ...; every module of a package counts for it);
(c) an upward import: a module may import only modules of its own rank or a
    lower one (:data:`RANKS`); a module that is in no rank fails too, so a new
    package has to be placed in the table (and the docs);
(d) an import of another module's private name: ``from vtseg.x import _y``
    (also relative), or ``m._y`` where ``m`` names an imported vtseg module;
    checked in ``tools/`` and ``demo/`` as well;
(e) an import of a vtseg module by string (it hides an edge from readers and
    linters; import the module normally), or of a vtseg module that does not
    exist (a stale path after a move; an import inside a function would only
    fail when called). Also checked in ``tools/`` and ``demo/``.

Allowed on purpose: the ``locations=['vtseg.engine', ...]`` strings of the
registries in ``vtseg/registry.py``. They are not imports of vtseg but
mmengine's own lazy loading (a registry imports its location the first time
it builds or looks up a name), so they are plain string arguments to this test
and are not edges.
"""
import ast
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import pytest

from conftest import REPO_ROOT

PACKAGE = 'vtseg'

#: rank of each part of the package; a module imports only modules of its own
#: rank or a lower one. Keys match a module and everything below it (the
#: package key ``'vtseg'`` matches only ``vtseg/__init__.py``).
RANKS = {
    'vtseg': 0,
    'vtseg.version': 0,
    'vtseg.compat': 0,
    'vtseg.registry': 0,
    'vtseg.utils': 0,  # generic helpers only (config, coco_export)
    'vtseg.functional': 1,
    'vtseg.models': 2,
    'vtseg.datasets': 2,
    'vtseg.evaluation': 2,
    'vtseg.engine': 2,
    'vtseg.visualization': 2,
    'vtseg.setup_env': 3,
    'vtseg.analysis': 4,
    'vtseg.converters': 4,
    'vtseg.apis': 5,
}

#: folders outside the package checked for (d) and (e).
SCRIPT_DIRS = ('tools', 'demo')


class Edge(NamedTuple):
    src: str  # importing module
    dst: str  # imported vtseg module
    path: str  # file, relative to the repository
    line: int
    how: str  # the statement, for messages

    def __str__(self):
        return (f'{self.path}:{self.line}: {self.src} -> {self.dst} '
                f'({self.how})')


def _module_files(root: str) -> Dict[str, str]:
    """Dotted module name -> file for every ``.py`` of the package."""
    mods = {}
    base = osp.join(root, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
        for fn in sorted(filenames):
            if not fn.endswith('.py'):
                continue
            rel = osp.relpath(osp.join(dirpath, fn), root)[:-3]
            parts = rel.split(osp.sep)
            if parts[-1] == '__init__':
                parts = parts[:-1]
            mods['.'.join(parts)] = osp.join(dirpath, fn)
    return mods


MODULES = _module_files(REPO_ROOT)


def _is_private(name: str) -> bool:
    return name.startswith('_') and not (name.startswith('__')
                                         and name.endswith('__'))


def _is_vtseg(name: Optional[str]) -> bool:
    return bool(name) and (name == PACKAGE or name.startswith(PACKAGE + '.'))


def _rank(module: str) -> Optional[int]:
    best = None
    for key, rank in RANKS.items():
        if module == key or (key != PACKAGE and module.startswith(key + '.')):
            if best is None or len(key) > len(best[0]):
                best = (key, rank)
    return None if best is None else best[1]


def _top_package(module: str) -> str:
    """``vtseg.models.backbones.vit`` -> ``vtseg.models``."""
    return '.'.join(module.split('.')[:2])


def _string_import(node: ast.Call) -> Optional[str]:
    """The literal module name of ``importlib.import_module('x')``,
    ``import_module('x')`` or ``__import__('x')``, else None."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(
        func, 'id', None)
    if name not in ('import_module', '__import__') or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


class _FileScan:
    """Imports, module aliases and problems of one file.

    Args:
        path: the file.
        module: its dotted name inside vtseg, or None for a script
            (``tools/``, ``demo/``), whose relative imports are not resolved.
    """

    def __init__(self, path: str, module: Optional[str]):
        self.path = path
        self.rel = osp.relpath(path, REPO_ROOT)
        self.module = module
        self.edges: List[Edge] = []
        self.problems: List[str] = []
        # local name -> vtseg module it is bound to (for ``m._private``)
        self.aliases: Dict[str, str] = {}
        with open(path, encoding='utf-8') as f:
            self.tree = ast.parse(f.read(), filename=path)
        self._scan()

    # --------------------------------------------------------- resolving
    def _package(self) -> str:
        if self.module in MODULES and MODULES[self.module].endswith(
                '__init__.py'):
            return self.module
        return self.module.rpartition('.')[0]

    def _from_base(self, node: ast.ImportFrom) -> Optional[str]:
        if not node.level:
            return node.module
        if self.module is None:
            return None  # a script's relative import: not vtseg
        parts = self._package().split('.')
        if node.level - 1 >= len(parts):
            self.problems.append(f'{self.rel}:{node.lineno}: relative import '
                                 'beyond the top-level package')
            return None
        base = '.'.join(parts[:len(parts) - (node.level - 1)])
        return f'{base}.{node.module}' if node.module else base

    def _edge(self, dst: str, node: ast.AST, how: str):
        if dst not in MODULES:
            self.problems.append(
                f'{self.rel}:{node.lineno}: (e) imports {dst}, which is not '
                f'a vtseg module ({how}); stale path after a move?')
            return
        edge = Edge(self.module, dst, self.rel, node.lineno, how)
        if self.module is not None and edge not in self.edges:
            self.edges.append(edge)

    # -------------------------------------------------------------- scan
    def _scan(self):
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if not _is_vtseg(alias.name):
                        continue
                    self._edge(alias.name, node, f'import {alias.name}')
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        self.aliases[alias.name.split('.')[0]] = PACKAGE
            elif isinstance(node, ast.ImportFrom):
                base = self._from_base(node)
                if not _is_vtseg(base):
                    continue
                stmt = ('from ' + '.' * node.level + (node.module or '') +
                        ' import ' + ', '.join(a.name for a in node.names))
                for alias in node.names:
                    sub = f'{base}.{alias.name}'
                    if alias.name != '*' and sub in MODULES:
                        self._edge(sub, node, stmt)
                        self.aliases[alias.asname or alias.name] = sub
                        continue
                    self._edge(base, node, stmt)
                    if _is_private(alias.name):
                        self.problems.append(
                            f'{self.rel}:{node.lineno}: (d) imports the '
                            f'private name {alias.name} of {base} ({stmt}); '
                            'make it public or keep it in its module')
            elif isinstance(node, ast.Call):
                name = _string_import(node)
                if _is_vtseg(name):
                    self.problems.append(
                        f'{self.rel}:{node.lineno}: (e) imports {name} by '
                        'string; use an import statement')
                    self._edge(name, node, f'import_module({name!r})')
        # ``m = importlib.import_module('vtseg.x')`` binds m to a module
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and isinstance(
                    node.value, ast.Call):
                name = _string_import(node.value)
                if _is_vtseg(name):
                    for t in node.targets:
                        if isinstance(t, ast.Name):
                            self.aliases[t.id] = name
        self._scan_private_attributes()

    def _scan_private_attributes(self):
        """``m._y`` / ``vtseg.x.m._y`` where the prefix is a vtseg module."""
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Attribute):
                continue
            chain = []
            cur = node
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if not isinstance(cur, ast.Name) or cur.id not in self.aliases:
                continue
            if not isinstance(node.ctx, ast.Load):
                continue
            mod = self.aliases[cur.id]
            for attr in reversed(chain):
                if f'{mod}.{attr}' in MODULES:
                    mod = f'{mod}.{attr}'
                    continue
                # the first non-module attribute decides; only the outermost
                # Attribute node reports, so a chain is reported once
                if _is_private(attr) and attr == chain[0]:
                    self.problems.append(
                        f'{self.rel}:{node.lineno}: (d) uses the private '
                        f'name {attr} of module {mod} ({cur.id}.'
                        f'{".".join(reversed(chain))})')
                break


def _scan_package() -> List[_FileScan]:
    return [_FileScan(path, mod) for mod, path in sorted(MODULES.items())]


def _scan_scripts() -> List[_FileScan]:
    scans = []
    for d in SCRIPT_DIRS:
        for dirpath, dirnames, filenames in os.walk(osp.join(REPO_ROOT, d)):
            dirnames[:] = sorted(x for x in dirnames if x != '__pycache__')
            for fn in sorted(filenames):
                if fn.endswith('.py'):
                    scans.append(_FileScan(osp.join(dirpath, fn), None))
    return scans


PACKAGE_SCANS = _scan_package()
SCRIPT_SCANS = _scan_scripts()
EDGES = [e for s in PACKAGE_SCANS for e in s.edges]


def _cycles(nodes: Set[str], succ: Dict[str, Set[str]]
            ) -> Iterator[List[str]]:
    """Strongly connected components with more than one node, or with a
    self-loop (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work: List[Tuple[str, Iterator[str]]] = [(root, iter(()))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        work[-1] = (root, iter(sorted(succ.get(root, ()))))
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(succ.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in succ.get(v, ()):
                    yield sorted(comp)


def _cycle_report(key) -> List[str]:
    """Cycles of the graph whose nodes are ``key(module)``, each with the
    edges (file:line) that form it."""
    succ: Dict[str, Set[str]] = defaultdict(set)
    nodes: Set[str] = set()
    for e in EDGES:
        a, b = key(e.src), key(e.dst)
        nodes.update((a, b))
        if a != b or key is _module_key:
            succ[a].add(b)
    out = []
    for comp in _cycles(nodes, succ):
        members = set(comp)
        lines = [f'  {e}' for e in EDGES
                 if key(e.src) in members and key(e.dst) in members and (
                     key(e.src) != key(e.dst) or key is _module_key)]
        out.append(f'cycle among {", ".join(comp)}:\n' + '\n'.join(lines))
    return out


def _module_key(m: str) -> str:
    return m


def _fail(problems: List[str], what: str):
    if problems:
        pytest.fail(f'{len(problems)} {what}:\n' + '\n'.join(problems),
                    pytrace=False)


def test_package_found():
    assert PACKAGE in MODULES and len(MODULES) > 20, sorted(MODULES)


def test_no_module_cycles():
    """(a) no cycle among vtseg modules (function-level imports count)."""
    _fail(_cycle_report(_module_key), 'import cycle(s) among vtseg modules')


def test_no_package_cycles():
    """(b) no cycle among vtseg's top-level packages."""
    _fail(_cycle_report(_top_package),
          'import cycle(s) among vtseg packages')


def test_imports_flow_down():
    """(c) a module imports only modules of its own or a lower rank."""
    problems = []
    for m in sorted(MODULES):
        if _rank(m) is None:
            problems.append(f'{osp.relpath(MODULES[m], REPO_ROOT)}: {m} has '
                            'no rank; add it to RANKS (and docs/'
                            'architecture.md)')
    for e in EDGES:
        rs, rd = _rank(e.src), _rank(e.dst)
        if rs is not None and rd is not None and rd > rs:
            problems.append(f'{e} imports rank {rd} from rank {rs}')
    _fail(problems, 'upward or unranked import(s)')


@pytest.mark.parametrize('where', ['vtseg', 'scripts'])
def test_no_private_or_string_imports(where):
    """(d) no import of another module's private names; (e) no import of a
    vtseg module by string or of a module that does not exist."""
    scans = PACKAGE_SCANS if where == 'vtseg' else SCRIPT_SCANS
    _fail([p for s in scans for p in s.problems],
          'private-name, string or stale import(s)')


# ------------------------------------------------------- the checker itself
def _scan_source(tmp_path, module: str, source: str) -> _FileScan:
    path = tmp_path / (module.rpartition('.')[2] + '.py')
    path.write_text(source)
    scan = _FileScan(str(path), module)
    return scan


def test_checker_resolves_relative_and_string_imports(tmp_path):
    scan = _scan_source(
        tmp_path, 'vtseg.models.segmentors.fake',
        'import importlib\n'
        'from ..utils import checkpoint as ck\n'
        'from . import tokencut\n'
        'from vtseg.registry import MODELS\n'
        'def f():\n'
        '    from vtseg.apis import init_model\n'
        "    nc = importlib.import_module('vtseg.functional')\n"
        '    return nc._hidden, ck._private, tokencut._upsample\n')
    dsts = sorted((e.dst, e.line) for e in scan.edges)
    assert dsts == [('vtseg.apis', 6), ('vtseg.functional', 7),
                    ('vtseg.models.segmentors.tokencut', 3),
                    ('vtseg.models.utils.checkpoint', 2),
                    ('vtseg.registry', 4)]
    text = '\n'.join(scan.problems)
    assert 'by string' in text
    for name in ('_hidden', '_private', '_upsample'):
        assert f'private name {name}' in text
    assert _rank('vtseg.apis') > _rank('vtseg.models.segmentors.fake')


def test_checker_flags_private_from_import_and_stale_path(tmp_path):
    scan = _scan_source(
        tmp_path, 'vtseg.analysis.fake',
        'from vtseg.functional.connectivity import _x, y\n'
        'from vtseg.utils.nothing_here import z\n'
        'import vtseg.functional.connectivity\n'
        'v = vtseg.functional.connectivity._w\n')
    text = '\n'.join(scan.problems)
    assert 'private name _x' in text and 'private name y' not in text
    assert 'vtseg.utils.nothing_here, which is not a vtseg module' in text
    assert 'private name _w of module vtseg.functional.connectivity' in text


def test_checker_finds_cycles():
    succ = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'d'}, 'e': {'a'}}
    assert sorted(_cycles(set(succ), succ)) == [['a', 'b', 'c'], ['d']]
