"""``tvbench weights convert``: turn OpenAI's TorchScript CLIP archive (e.g. `ViT-B-32.pt`) into a `.safetensors` file.

This is the only place tvbench executes code stored in a file: ``torch.jit.load`` runs the archive's scripted
methods (``__setstate__``), and a crafted archive can create or overwrite any file the user can write. So the command
refuses to run without ``--trust-code``, says what it is about to do, and writes the result once (atomically, never
over an existing file). Every other command loads only the `.safetensors` file, which holds nothing but tensors.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import warnings
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from benchmark.engine import weights_file
from benchmark.io import atomic_path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def openai_release(path: Path) -> str | None:
    """The backbone whose OpenAI release is byte-identical to `path` (OpenAI's download URLs carry the file's
    sha256 as their second-to-last part), or None."""
    digest = sha256_file(path)
    for name, tag in open_clip.list_pretrained():
        url = (open_clip.get_pretrained_cfg(name, tag) or {}).get("url", "") if tag == "openai" else ""
        if url.rstrip("/").split("/")[-2:-1] == [digest]:
            return name
    return None


def convert_torchscript(source: Path, out: Path) -> dict[str, torch.Tensor]:
    """Load the TorchScript archive `source` with ``torch.jit.load`` -- which EXECUTES code stored in it -- and write
    its tensors to `out` as safetensors, recording OpenAI's QuickGELU activation. Returns the tensors written."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": the format is still OpenAI's
        module = torch.jit.load(str(source), map_location="cpu")
    state = {name: tensor.detach().cpu().clone().contiguous() for name, tensor in module.state_dict().items()}
    if not state:
        raise weights_file.WeightsFileError(f"`{source}` holds no tensors; nothing was written.")
    metadata = {"format": "pt", weights_file.ACTIVATION_KEY: "quick_gelu", "tvbench.converted_from": source.name}
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="weights_command", required=True)
    convert = sub.add_parser(
        "convert",
        help="convert OpenAI's TorchScript CLIP archive to .safetensors; EXECUTES the archive's code",
        description="Load a TorchScript archive (OpenAI's CLIP .pt) with torch.jit.load, which executes code stored "
        "in the file, and write its weights once as .safetensors, which every command loads without running code. "
        "Use it only on a file from a source you trust.",
    )
    convert.add_argument("file", type=Path, help="the TorchScript archive, e.g. ViT-B-32.pt")
    convert.add_argument("--out", type=Path, help="the .safetensors file to write (default: FILE with that suffix)")
    convert.add_argument("--trust-code", action="store_true",
                         help="required: allow executing the archive's code (only for a file you trust)")


def run(args: argparse.Namespace) -> int:
    source: Path = args.file
    out: Path = args.out or source.with_suffix(".safetensors")
    if weights_file.weights_format(source) != weights_file.TORCHSCRIPT:
        raise weights_file.WeightsFileError(f"`{source}` is not a TorchScript archive; no conversion is needed, "
                                            "pass it to --clip-weights as it is.")  # fmt: skip
    if out.suffix != ".safetensors" or out.exists():
        raise weights_file.WeightsFileError(f"`{out}` exists or does not end in .safetensors; the conversion never "
                                            "replaces a file. Pass --out NEW.safetensors.")  # fmt: skip
    release = openai_release(source)
    origin = (f"its sha256 matches OpenAI's release of {release}" if release
              else "its sha256 matches no OpenAI release known to open_clip")  # fmt: skip
    if not args.trust_code:
        raise weights_file.WeightsFileError(
            f"Converting `{source}` means loading it with torch.jit.load, which executes code stored in the file "
            f"(a crafted archive can overwrite any file you can write); {origin}. Add --trust-code only if you trust "
            "where the file came from, or download safetensors weights instead (README, 'CLIP weights')."
        )
    print(f"Executing the TorchScript archive `{source}` to read its weights ({origin}).", file=sys.stderr)
    state = convert_torchscript(source, out)
    print(f"wrote {out} ({len(state)} tensors); pass it to --clip-weights (the .pt file is no longer needed)")
    return 0
