"""Evaluation: verification and identification metrics and the standard face-recognition benchmarks.

* :mod:`~arcface.eval.metrics` - exact ROC, TAR@FAR, EER, k-fold accuracy, CMC, TPIR@FPIR (cosine).
* :mod:`~arcface.eval.bin_sets` - insightface ``.bin`` sets (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW), safe loader.
* :mod:`~arcface.eval.lfw` - LFW from folders + ``pairs.txt`` through detection and alignment.
* :mod:`~arcface.eval.ijb` - IJB-B/C 1:1 (template pooling) and 1:N.
* :mod:`~arcface.eval.megaface`, :mod:`~arcface.eval.ytf` - distractor identification, video verification.
* :mod:`~arcface.eval.multi_pose` - multi-pose sets in CMU Face Images' layout, frontal-versus-turned pairs.
* :mod:`~arcface.eval.calibration`, :mod:`~arcface.eval.report` - thresholds for a FAR target; JSON,
  Markdown and ROC plots.

Every function takes an *embedder* (``embed(crops_uint8_rgb_nhwc, flip=bool) -> (N, D)`` unit float32);
model files are resolved by :func:`arcface.eval.models.resolve_embedder`.
"""
