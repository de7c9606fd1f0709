"""helpers.predict.prediction: what a model says about one photo."""

from __future__ import annotations

from helpers.predict import prediction


def test_format_caption_is_im2txt_style():
    assert prediction.format_caption(0, "a man sitting on a bench", 0.000005) == \
        "0) a man sitting on a bench (p=0.000005)"


# --- Captioner and command line on a trained bundle ---------------------------------------------
