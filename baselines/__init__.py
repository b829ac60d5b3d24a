"""Reference baselines; importing the package registers them: clip-zeroshot, clip4clip-meanp, clip4clip-seqtransf,
xpool, xclip."""

from baselines import clip4clip, clip_zeroshot, xclip, xpool

__all__ = ["clip4clip", "clip_zeroshot", "xclip", "xpool"]
