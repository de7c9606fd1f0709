"""helpers.evaluate: a trained run scored on its validation split (the `evaluate` command)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path


def test_evaluate_cli_writes_results_and_metrics(trained_run, tmp_path):
    from helpers.__main__ import main

    out = tmp_path / "metrics.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["evaluate", "--run", str(trained_run), "--split", "val", "--max-images", "40",
                       "--beam-width", "2", "--out", str(out)])
    assert status == 0
    written = json.loads(out.read_text())
    assert written["num_images"] == 40 and written["failed"] == {}
    assert set(written["captions"]) >= {"BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
    assert all(0.0 <= value <= 10.0 for value in written["captions"].values())
    tags = written["tags"]
    assert 0.0 < tags["mAP"] <= 1.0 and 0.0 <= tags["micro_f1"] <= 1.0 and 0.0 <= tags["P@1"] <= 1.0
    results = json.loads(Path(written["results_file"]).read_text())
    assert len(results) == 40 and all(r["caption"] for r in results)
    assert "CIDEr" in buffer.getvalue() and "tags mAP" in buffer.getvalue()
