"""Two gloo processes on CPU take one optimiser step that matches a single process on the same global batch, and
evaluation features gathered from two shards come back in split order."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from benchmark.data.text import TextTokenizer
from benchmark.engine.distributed import DistEnv, gather_in_order, shard_indices
from benchmark.engine.optimization import apply_schedule, make_optimizer, parameter_groups
from benchmark.engine.train import train_step
from benchmark.presets import TrainConfig
from benchmark.registry import build_model

CFG = TrainConfig(batch_size=8, lr=1e-3, coef_lr=0.5, grad_clip=1.0, warmup_proportion=0.0)
GLOBAL_BATCH = 8


def _model(init: Path):
    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    model.load_state_dict(load_file(str(init)))
    return model


def _step(model, batch: dict[str, torch.Tensor], env: DistEnv) -> None:
    optimizer = make_optimizer(parameter_groups(model, CFG.lr, CFG.coef_lr, CFG.weight_decay), CFG.betas, CFG.eps)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    apply_schedule(optimizer, 0, 10, CFG.warmup_proportion)
    train_step(model, optimizer, batch, env, params, CFG)


def _worker(rank: int, world: int, tmp: str) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        env = DistEnv(rank, world, torch.device("cpu"))
        batch = load_file(f"{tmp}/batch.safetensors")
        per = GLOBAL_BATCH // world
        local = {k: v[rank * per : (rank + 1) * per] for k, v in batch.items()}
        model = _model(Path(tmp) / "init.safetensors")
        _step(model, local, env)
        n = 7  # evaluation gather: 7 items over 2 ranks -> one padded duplicate, dropped again
        mine = torch.tensor(shard_indices(n, rank, world), dtype=torch.float32)[:, None].repeat(1, 3)
        gathered = gather_in_order({"x": mine}, n, env)["x"]
        if rank == 0:
            state = {k: v.contiguous() for k, v in model.state_dict().items()}
            save_file({**state, "__gathered__": gathered}, f"{tmp}/ddp.safetensors")
    finally:
        dist.destroy_process_group()


def test_two_process_step_matches_single_process(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "init.safetensors"))
    tokens, mask = TextTokenizer(32, "tvbench-tiny")([f"a {c} shape moves {d}" for c in ("red", "blue")
                                                      for d in ("left", "right", "up", "down")])
    batch = {
        "tokens": tokens, "mask": mask,
        "frames": torch.randn(GLOBAL_BATCH, 2, 3, 64, 64),
        "frame_mask": torch.ones(GLOBAL_BATCH, 2, dtype=torch.int64),
        "video_index": torch.arange(GLOBAL_BATCH),
    }
    save_file(batch, str(tmp_path / "batch.safetensors"))
    single = _model(tmp_path / "init.safetensors")
    _step(single, batch, DistEnv(0, 1, torch.device("cpu")))

    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)

    ddp = load_file(str(tmp_path / "ddp.safetensors"))
    assert torch.equal(ddp.pop("__gathered__"), torch.arange(7, dtype=torch.float32)[:, None].repeat(1, 3))
    reference = single.state_dict()
    initial = load_file(str(tmp_path / "init.safetensors"))
    moved = [k for k in reference if not torch.equal(reference[k], initial[k])]
    assert moved, "the step changed no parameter"
    for key, value in reference.items():
        torch.testing.assert_close(ddp[key], value, atol=1e-5, rtol=0, msg=f"parameter {key} differs")
