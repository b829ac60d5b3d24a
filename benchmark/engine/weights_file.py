"""Reading weight files without running anything stored in them: `.safetensors`, or `torch.save` state dicts read
with ``torch.load(weights_only=True)``. TorchScript archives (OpenAI's CLIP `.pt` release) are refused: loading one
executes its scripted code, so only the explicit ``tvbench weights convert --trust-code`` ever does that.

The format is told from the file's bytes, not its name, and every error names the file and says what to do.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

SAFETENSORS, TORCH, TORCHSCRIPT = "safetensors", "torch", "torchscript"
# Metadata key of converted files: the activation the weights were trained with (OpenAI's CLIP: QuickGELU).
ACTIVATION_KEY = "tvbench.activation"


class WeightsFileError(ValueError):
    """A weights file that is missing, damaged, of an unknown format, or refused because loading it runs code."""


def convert_hint(path: str | Path) -> str:
    """How to turn a TorchScript archive into a file every command loads (shared by every refusal)."""
    return (
        f"If it is OpenAI's CLIP release and you trust where it came from, convert it once with "
        f"`tvbench weights convert {path} --trust-code` (that command runs the archive's code and writes a "
        ".safetensors file), then pass the .safetensors file; or download safetensors weights "
        "(README, 'CLIP weights')."
    )


def torchscript_message(path: str | Path) -> str:
    """The refusal of a TorchScript archive."""
    return (
        f"`{path}` is a TorchScript archive (the format of OpenAI's CLIP .pt files). Loading it would execute code "
        f"stored in the file, so tvbench does not load it. {convert_hint(path)}"
    )


def _is_torchscript_zip(path: Path) -> bool:
    """True for a zip holding TorchScript code (`<name>/code/...`) or constants (`<name>/constants.pkl`)."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) >= 2 and (parts[1] == "constants.pkl" or (parts[1] == "code" and len(parts) >= 3)):
                return True
    return False


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors = an 8-byte little-endian header length, then that many bytes of JSON starting with `{`."""
    return len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8


def weights_format(path: str | Path) -> str:
    """`safetensors`, `torch` (a torch.save file) or `torchscript`, from the file's first bytes; WeightsFileError for
    a missing, empty or unrecognised file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"Weights file `{path}` does not exist (or is not a file). Pass the path of a "
                               "downloaded file.")  # fmt: skip
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(16)
    if _is_safetensors(head, size):
        return SAFETENSORS
    if head[:4] == b"PK\x03\x04":
        try:
            return TORCHSCRIPT if _is_torchscript_zip(path) else TORCH
        except (zipfile.BadZipFile, OSError) as err:
            raise WeightsFileError(f"`{path}` is a damaged zip archive ({err}); download it again.") from err
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return TORCH  # torch.save's legacy (pre-1.6) format: a pickle stream
    what = "empty" if size == 0 else "neither a .safetensors file nor a file written by torch.save"
    raise WeightsFileError(
        f"`{path}` is not a weights file tvbench can read: its bytes show it is {what}. Expected a .safetensors "
        "file or a PyTorch state dict; was the download interrupted, or is it another kind of file?"
    )


def require_loadable(path: str | Path) -> str:
    """`weights_format(path)`, refusing TorchScript archives with the conversion hint."""
    kind = weights_format(path)
    if kind == TORCHSCRIPT:
        raise WeightsFileError(torchscript_message(path))
    return kind


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a .safetensors file; a damaged file is a WeightsFileError naming it."""
    if require_loadable(path) != SAFETENSORS:
        raise WeightsFileError(f"`{path}` is not a .safetensors file (it was written by torch.save).")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsFileError(f"`{path}` is a damaged .safetensors file ({err}); download or write it again.") from err


def _weights_only_reason(err: Exception) -> str:
    """The part of torch's weights-only error that says what was refused, without its advice to disable the check."""
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    reason = match.group(1) if match else str(err).splitlines()[0]
    return reason.split(". Please use")[0].strip().rstrip(".")


def read_torch_weights(path: str | Path) -> object:
    """The object of a torch.save file, unpickled with ``weights_only=True`` (tensors and plain containers only)."""
    if require_loadable(path) != TORCH:
        raise WeightsFileError(f"`{path}` is a .safetensors file, not a torch.save file.")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files; each becomes one message naming the file
        if "WeightsUnpickler" in str(err):
            raise WeightsFileError(
                f"`{path}` holds Python objects besides tensors ({_weights_only_reason(err)}). tvbench reads only "
                "tensors so that nothing stored in the file can run; save a plain state dict "
                "(torch.save(model.state_dict(), FILE)) or a .safetensors file."
            ) from err
        raise WeightsFileError(f"`{path}` is damaged or truncated ({str(err).splitlines()[0]}); download it "
                               "again.") from err  # fmt: skip
