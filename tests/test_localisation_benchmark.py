"""benchmarks.localisation without training: statistics, the table, the README markers
and the flags of each row."""

import argparse

import pytest

from benchmarks import localisation


def test_mean_and_sample_sd_over_seeds():
    runs = [{k: v for k in localisation.KEYS} for v in (10.0, 20.0, 30.0)]
    summary = localisation.summarise(runs)
    assert summary["R1@0.5"] == 20.0 and summary["R1@0.5_sd"] == pytest.approx(10.0)
    assert localisation.summarise(runs[:1])["R1@0.5_sd"] is None


def _result():
    cell = lambda m, sd: {  # noqa: E731
        **{k: m for k in localisation.KEYS}, **{f"{k}_sd": sd for k in localisation.KEYS}
    }
    rows = ["random", "tga", "oracle"]
    return {
        "difficulties": ["easy", "hard"],
        "rows": rows,
        "levels": {
            "easy": {"random": cell(20.0, 1.5), "tga": cell(30.0, None), "oracle": cell(90.0, None)},
            "hard": {"random": cell(15.0, 2.0), "tga": cell(12.345, 0.5), "oracle": cell(60.0, None)},
        },
    }


def test_table_has_a_row_per_method_and_mean_sd_cells():
    lines = localisation.table(_result()).splitlines()
    assert lines[0].startswith("| method | easy R1@0.5 | hard R1@0.5 |")
    assert len(lines) == 2 + 3
    assert lines[3].split(" | ")[:3] == ["| TGA (Mithun et al. 2019)", "30.00", "12.35 ± 0.50"]


def test_markdown_rewrites_only_between_the_markers(tmp_path):
    page = tmp_path / "README.md"
    head, tail = "# Title\n\ntext before\n", "\ntext after\n"
    page.write_text(
        head + "<!-- table:localisation -->\nold\n<!-- /table:localisation -->" + tail
    )
    localisation.rewrite_markdown(str(page), "| new |")
    text = page.read_text()
    assert text.startswith(head) and text.endswith(tail)
    assert "<!-- table:localisation -->\n| new |\n<!-- /table:localisation -->" in text
    assert "old" not in text
    page.write_text("no markers")
    with pytest.raises(ValueError, match="README.md"):
        localisation.rewrite_markdown(str(page), "| new |")


def test_rows_get_their_architecture_and_the_best_options():
    options = argparse.Namespace(
        hidden_dim=64, epochs=None, best_flagfile=None, best_flags=["--cross_steps=2"]
    )
    assert "--architecture=tga" in localisation.model_flags("tga", options)
    assert "--architecture=tga" not in localisation.model_flags("vlanet", options)
    assert localisation.model_flags("vlanet_best", options)[-1] == "--cross_steps=2"
    assert "--cross_steps=2" not in localisation.model_flags("vlanet", options)


def test_quick_mode_is_one_seed_on_two_levels(tmp_path):
    args = localisation.parse_args(["--quick", f"--stats_dir={tmp_path}"])
    assert args.seeds == [1] and args.difficulties == ["easy", "hard"]
    args = localisation.parse_args([f"--stats_dir={tmp_path}"])
    assert args.seeds == [1, 2, 3] and len(args.difficulties) == 3
    with pytest.raises(SystemExit):
        localisation.parse_args([f"--stats_dir={tmp_path / 'missing'}"])


def _earlier(tmp_path, **changes):
    """This run's options, with `changes`, and an earlier result at their --output made
    with the unchanged ones."""
    from vlanet_tf import files

    output = str(tmp_path / "localisation.json")
    options = localisation.parse_args(
        [f"--output={output}", "--difficulties=easy,hard", "--seeds=1,2",
         "--keep_rows=random,tga", f"--stats_dir={tmp_path}"]
    )
    made_with = {key: getattr(options, key) for key in localisation.SAME_OPTIONS}
    files.write_json(output, {**_result(), "options": made_with})
    vars(options).update(changes)
    return options


def test_kept_rows_come_from_the_earlier_result(tmp_path):
    kept = localisation.kept_rows(_earlier(tmp_path))
    assert set(kept) == {"easy", "hard"} and set(kept["hard"]) == {"random", "tga"}
    assert kept["hard"]["tga"]["R1@0.5"] == 12.345


def test_kept_rows_are_refused_from_a_run_on_other_data(tmp_path):
    with pytest.raises(ValueError, match="made with num_videos=300, this run has num_videos=1200"):
        localisation.kept_rows(_earlier(tmp_path, num_videos=1200))
    with pytest.raises(ValueError, match="no vlanet row on easy"):
        localisation.kept_rows(_earlier(tmp_path, keep_rows=["vlanet"]))


def test_the_row_being_measured_cannot_be_kept(tmp_path, capsys):
    with pytest.raises(SystemExit):
        localisation.parse_args([f"--stats_dir={tmp_path}", "--keep_rows=vlanet_best"])
    assert "cannot be kept" in capsys.readouterr().err
