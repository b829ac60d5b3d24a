"""Reference baselines and GLCCL; importing the package registers them: clip-zeroshot, clip4clip-meanp,
clip4clip-seqtransf, xpool, xclip, glccl (and its ablations glccl-no-csc, glccl-video-only).

Layer: methods. May import the model contract (`benchmark.registry`, `benchmark.retrieval_model`) and the engine's
building blocks (`benchmark.engine.backbone`, `clip_model`, `temporal`, `text_guided`, `losses`); never the training or
evaluation runs, `benchmark.study` or `leaderboard`.
"""

from baselines import clip4clip, clip_zeroshot, glccl, xclip, xpool

__all__ = ["clip4clip", "clip_zeroshot", "glccl", "xclip", "xpool"]
