"""Generic helpers (rank 0 of the package layout, docs/architecture.md):
:mod:`.config` (``--cfg-options`` checks) and :mod:`.coco_export` (COCO
json export). They import nothing of vtseg above rank 0.

``register_all_modules`` lives in :mod:`vtseg.setup_env` (also exported by
:mod:`vtseg.apis`); FLOP counting and benchmarks in :mod:`vtseg.analysis`.
"""
