"""The cost counter on known cases (ViT-B-32 tower, CLIP4Clip, X-Pool, X-CLIP, GLSCL heads) and the CLI's output."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from benchmark.cli import main
from benchmark.engine import efficiency, latency
from benchmark.registry import build_model

D, T, L, K = 512, 12, 32, 8
TINY = ["--backbone", "tvbench-tiny", "--frames", "4", "--words", "8", "--gallery", "10,100", "--min-run-time", "0.01",
        "--query-blocks", "1,4"]


def _random(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def test_vit_b32_image_tower_counts_4_41_gmacs_and_4_36_without_attention_products() -> None:
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    count = efficiency.count_flops(lambda: model.visual(torch.zeros(1, 3, 224, 224)))
    assert count.macs / 1e9 == pytest.approx(4.41, rel=0.01)  # open_clip model_profile: 8.82 GFLOPs
    assert (count.flops - count.by_op["bmm"]) / 2e9 == pytest.approx(4.36, rel=0.01)  # the often-quoted figure
    assert count.by_op["bmm"] / 2 == 12 * 2 * 50 * 50 * 768  # QK^T and AV in 12 layers of 50 tokens, width 768
    assert torch.backends.mha.get_fastpath_enabled()  # the counting mode restores the fast path


def test_clip4clip_meanp_head_costs_d_macs_per_pair() -> None:
    model = build_model("clip4clip-meanp", backbone="ViT-B-32", clip_weights="random")
    with efficiency.measuring(model):
        probe = efficiency.make_probe(model, frames=1, words=8)
        costs = efficiency.pair_costs(model.score, probe.text_feats, probe.video_feats)
    assert costs["per_pair"] / 2 == D
    assert costs["score_per_text"] == costs["score_per_video"] == 0
    assert efficiency.head_gmacs_1k(costs["per_pair"]) == pytest.approx(0.512)
    assert all(p.requires_grad for p in model.parameters()) and model.training  # state restored


def test_xpool_head_matches_folded_formula() -> None:
    from baselines.xpool import XPoolHead

    head = XPoolHead(D).eval()
    with efficiency.measuring(head):
        costs = efficiency.pair_costs(
            head.score, head.prepare_text(_random(1, D)), head.prepare_video(_random(1, T, D), torch.ones(1, T))
        )
    # Evaluation folds LN2, W_l and LN3 into per-video forms: 2TD + 3T^2 + 3T, not 2TD + D^2 + D (Table I's 275 G).
    assert costs["per_pair"] / 2 == 2 * T * D + 3 * T * T + 3 * T


def xclip_pair_cost() -> float:
    """MACs per pair of the X-CLIP head at D=512, L=32, T=12 (head only, no backbone)."""
    from baselines.xclip import XClipHead

    head = XClipHead(D, max_words=L, max_frames=T).eval()
    with efficiency.measuring(head):
        text = head.prepare_text(_random(1, D), _random(1, L, D), torch.ones(1, L, dtype=torch.int64))
        video = head.prepare_video(_random(1, T, D), _random(1, T, D), torch.ones(1, T, dtype=torch.int64))
        return efficiency.pair_costs(head.score, text, video)["per_pair"] / 2


def test_xclip_head_matches_formula() -> None:
    dots = D * (1 + L + T + L * T)  # 219,648: Table I's 220 G
    mixing = 2 * L**2 + 2 * T**2 + T * L**2 + L * T**2  # softmax weights x U in the six AOSMs
    assert xclip_pair_cost() == pytest.approx(dots + mixing, rel=0.05)  # baselines.md §2: ~239k


def test_glscl_pair_cost_with_precomputed_concepts_is_reported_and_bounded(capsys: pytest.CaptureFixture) -> None:
    model = build_model("glscl", backbone="ViT-B-32", clip_weights="random")
    block = efficiency.efficiency_block(model, frames=T, words=L)
    per_pair = block["per_pair_macs"]
    json.dumps(block)  # it joins the run record as is
    # At least the frame dots and the K concept cosines; at most the clean formula 2TD + D + KD plus the T x T Gram.
    assert T * D + K * D <= per_pair <= 2 * T * D + D + K * D + T * T
    assert block["params_added"] > 12_000_000  # seqTransf + the concept decoder
    assert block["per_video_gflops"] > T * 8.8  # twelve ViT-B-32 frames plus the offline heads
    ratio = xclip_pair_cost() / per_pair
    with capsys.disabled():
        gmacs = block["head_gmacs_1k"]
        print(f"\nGLSCL {per_pair:,.0f} MACs/pair ({gmacs:.2f} GMAC @1k x 1k); X-CLIP/GLSCL {ratio:.1f}x")
    assert 5 < ratio < 50  # Table I claims ~220x; one consistent count gives about an order of magnitude


def _json_report(capsys: pytest.CaptureFixture, *extra: str) -> dict:
    assert main(["efficiency", "--model", "clip4clip-meanp", *TINY, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def tiny_report() -> dict:
    """`tvbench efficiency --json` of clip4clip-meanp on the tiny backbone, run once for the module."""
    with pytest.MonkeyPatch.context() as patch:
        lines: list[str] = []
        patch.setattr("builtins.print", lambda *args, **kwargs: lines.append(" ".join(map(str, args))))
        assert main(["efficiency", "--model", "clip4clip-meanp", *TINY, "--json"]) == 0
    assert len(lines) == 1  # exactly one JSON object on stdout
    return json.loads(lines[0])


def test_json_output_schema(tiny_report: dict) -> None:
    report = tiny_report
    for key in ("model", "backbone", "device", "device_name", "params_total", "params_added", "convention"):
        assert key in report
    assert report["model"] == "clip4clip-meanp" and report["backbone"] == "tvbench-tiny" and report["device"] == "cpu"
    for unit in ("flops", "macs"):
        for part in ("per_video", "per_text", "per_pair", "backbone_image_per_frame"):
            assert report[unit][part] > 0
    assert report["macs"]["per_pair"] == 128  # D of tvbench-tiny
    assert report["flops"]["per_video"] == 2 * report["macs"]["per_video"]
    assert report["head_gmacs_1k"] == pytest.approx(128e6 / 1e9)
    assert report["published_head_flops"] is None or isinstance(report["published_head_flops"], str)
    assert [row["gallery"] for row in report["latency"]] == [10, 100]
    for row in report["latency"]:  # every size measured on a real gallery of that size, scoring apart from encoding
        assert row["gallery_bytes"] == row["gallery"] * report["video_bytes"]
        assert 0 < row["score_ms"] < row["e2e_ms"] and row["floor_ms"] > 0 and row["read_gbps"] > 0
        assert row["score_to_floor"] == pytest.approx(row["score_ms"] / row["floor_ms"])
        assert row["floor_kernel"] in latency.READ_KERNELS
    assert [row["queries"] for row in report["query_throughput"]] == [1, 4]
    assert all(row["queries_per_s"] > 0 and row["gallery"] == 100 for row in report["query_throughput"])
    assert report["throughput"]["videos_per_s"] > 0 and report["throughput"]["texts_per_s"] > 0
    assert len(report["load_average"]["start"]) == 3
    assert report["params_total"] > report["params_added"] == 0


def test_table_output_names_units_and_device(tiny_report: dict) -> None:
    table = efficiency.format_report(tiny_report)
    assert "MAC" in table and "FLOP" in table and "cpu" in table and "score/floor" in table and "queries/s" in table


def test_a_gallery_beyond_memory_is_refused_not_extrapolated(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    with efficiency.measuring(model):
        probe = efficiency.make_probe(model, frames=2, words=8)
        per_video = efficiency.features_nbytes(probe.video_feats)
        monkeypatch.setattr(latency, "available_memory_bytes", lambda: 10 * per_video)
        assert len(latency.random_gallery(probe.video_feats, 8)["video"]) == 8
        with pytest.raises(ValueError, match=r"100-video gallery .* \(nothing is extrapolated\)"):
            latency.random_gallery(probe.video_feats, 100)


def test_run_record_latency_block_passes_the_leaderboard_schema() -> None:
    from leaderboard.schema import check_efficiency

    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    block = efficiency.efficiency_block(model, frames=2, words=8, latency=True, galleries=(20,))
    check_efficiency(block)
    assert block["latency"][0]["gallery"] == 20 and block["latency"][0]["score_to_floor"] > 0


def test_slow_query_blocks_are_skipped_and_say_so() -> None:
    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    with efficiency.measuring(model):
        probe = efficiency.make_probe(model, frames=2, words=8)
        gallery = latency.random_gallery(probe.video_feats, 50)
        rows = latency.batched_throughput(model, probe.text_feats, gallery, [1, 1000], max_block_s=1e-9)
    assert rows[0]["queries_per_s"] > 0 and "queries_per_s" not in rows[1]
    assert "over the 0 s budget" in rows[1]["skipped"]


def test_published_head_flops_lookup(tmp_path) -> None:
    csv = tmp_path / "published.csv"
    csv.write_text(
        "benchmark,method,backbone,head_flops_reported,reported_in\n"
        "msrvtt,X-CLIP,ViT-B/16,,ma2022\nmsrvtt,X-CLIP,ViT-B/32,220.9G,zhang2024\n"
    )
    assert efficiency.published_head_flops("xclip", "ViT-B-32", csv)["value"] == "220.9G"
    assert efficiency.published_head_flops("xclip", "ViT-B-16", csv) is None  # no figure for that backbone
    assert efficiency.published_head_flops("clip-zeroshot", "ViT-B-32", csv) is None
    assert efficiency.published_head_flops("xclip", "ViT-B-32", tmp_path / "missing.csv") is None
    assert efficiency.published_method("clip4clip-seqtransf") == "CLIP4Clip"


def test_user_errors_exit_2_with_a_message(capsys: pytest.CaptureFixture) -> None:
    assert main(["efficiency", "--model", "no-such-model", *TINY]) == 2
    assert "Unknown model" in capsys.readouterr().err
    assert main(["efficiency", "--model", "clip4clip-meanp", *TINY[:4], "--words", "99"]) == 2
    assert "--words" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # refused while parsing, before any work
        main(["efficiency", "--model", "clip4clip-meanp", *TINY, "--threads", "0"])
    assert refused.value.code == 2 and "argument --threads" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["efficiency", "--model", "clip4clip-meanp", *TINY, "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_same_command_runs_on_cuda(capsys: pytest.CaptureFixture) -> None:
    cpu = _json_report(capsys)
    gpu = _json_report(capsys, "--device", "cuda")
    assert gpu["device"].startswith("cuda") and gpu["device_name"] != cpu["device_name"]
    for part in ("per_video", "per_text", "per_pair", "backbone_image_per_frame"):
        assert gpu["macs"][part] == pytest.approx(cpu["macs"][part], rel=1e-6)  # counts do not depend on the device
