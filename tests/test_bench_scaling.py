"""bench/scaling.py: sizes, per-item arithmetic, targets and the COCO table, on made-up timings
(the benchmark itself takes minutes: `python -m bench.scaling --quick`)."""

from bench import scaling


def _stage(fixed_s, marginal_s, items, peak_mib):
    return {"fixed_s": fixed_s, "marginal_s": marginal_s, "items": items, "seconds": fixed_s + marginal_s,
            "peak_kib": peak_mib * 1024, "steps": {"all": fixed_s + marginal_s}}


def test_full_scales_are_sixteenths_of_the_sample_and_the_issue_album():
    sizes = scaling.scale_sizes(quick=False)
    assert sizes[16] == scaling.Sizes(2000, 320, 1600)          # the whole sample, album of 1,600
    assert sizes[1] == scaling.Sizes(125, 20, 100)
    assert scaling.items_of("train", sizes[4]) == 2500           # 5 captions per training image
    assert scaling.items_of("sample", sizes[1]) == 245


def test_marginal_time_per_item_removes_the_fixed_cost():
    # 10 s fixed + 0.1 s per item: raw per-item time falls with scale, marginal stays 0.1 s.
    measured = {"train": {factor: _stage(10, 0.1 * items, items, 100 + factor)
                          for factor, items in ((1, 100), (4, 400), (16, 1600))}}
    summary = scaling.summarize(measured, {"train": 90 * 1024})["train"]
    assert abs(summary["1x"]["s_per_item_marginal"] - 0.1) < 1e-9
    assert abs(summary["marginal_ratio"]["16x_vs_1x"] - 1.0) < 1e-9
    assert summary["raw_ratio"]["16x_vs_1x"] < 0.6         # 0.106 s against 0.2 s
    assert summary["memory_growth_mb"] == 15.0                   # (116 - 90) - (101 - 90)
    assert summary["pass"] == {"time_flat": True, "memory_bounded": True}
    assert "PASS" in scaling.format_summary({"train": summary})


def test_growing_time_and_memory_fail():
    measured = {"album": {factor: _stage(1, items * (1 + factor / 4), items, 100 + 20 * factor)
                          for factor, items in ((1, 100), (4, 400), (16, 1600))}}
    summary = scaling.summarize(measured, {"album": 50 * 1024})["album"]
    assert summary["pass"] == {"time_flat": False, "memory_bounded": False}


def test_coco_table_marks_the_gpu_column_as_estimated():
    table = scaling.coco_table({"feature_images_per_s": 20.0, "decode_images_per_s": 100.0,
                                "feature_photos": 96, "lstm_tokens_per_s": 2500.0,
                                "attention_tokens_per_s": 1000.0, "beam_images_per_s": 10.0})
    assert "one GPU (estimate)" in table and "estimated, not measured" in table
    # 123,287 images at 20 images/s: 1.7 h on the CPU; on the GPU decoding bounds it (20.5 min).
    assert "| 1.7 h | ~21 min |" in table
