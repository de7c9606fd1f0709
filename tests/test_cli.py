"""helpers.cli: the `python -m helpers` command line."""

from __future__ import annotations

from helpers import cli


def test_command_line_prints_summary(tmp_path, capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["make-sample", "--out", str(tmp_path), "--train", "3", "--val", "2",
                              "--album", "1", "--seed", "5"])
    assert args.func(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("sample: 3 train + 2 val images, 25 captions,") and str(tmp_path) in line
    assert len(list((tmp_path / "train2017").glob("*.jpg"))) == 3
