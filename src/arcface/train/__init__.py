"""Training: data (ImageFolder, InsightFace RecordIO without mxnet), typed configs with published presets,
the trainer (DDP backbone + Partial FC head, exact resume), verification callback and sub-center cleaning.

Modules (import what you need; everything but :mod:`~arcface.train.config`, :mod:`~arcface.train.recordio`
and :mod:`~arcface.train.schedule` needs the ``train`` extra, i.e. torch):

* :mod:`~arcface.train.recordio` - ``.rec``/``.idx`` reader and writer.
* :mod:`~arcface.train.data` - datasets, augmentation, resumable sampler, ``pack_folder``, ``dataset_info``.
* :mod:`~arcface.train.config` - :class:`TrainConfig`, presets, overrides.
* :mod:`~arcface.train.trainer` - :class:`Trainer`.
* :mod:`~arcface.train.clean` - the dominant-sub-center cleaning rule.
* :mod:`~arcface.train.synthetic` - synthetic identities for tests and benchmarks.
"""
