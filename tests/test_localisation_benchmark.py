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


def _targets_result():
    """Two levels; the figures are chosen so that each target's verdict is known by hand."""
    r5 = lambda a, b, c: {"R5@0.3": a, "R5@0.5": b, "R5@0.7": c}  # noqa: E731
    easy = {
        "random": {"R1@0.5": 15.0, **r5(70.0, 50.0, 20.0)},
        "tga": {"R1@0.5": 44.0},
        "vlanet": {"R1@0.5": 40.0},
        "vlanet_best": {
            "R1@0.5": 50.0, **r5(95.0, 85.0, 40.0),
            "per_seed": [{"val_fall": 0.0}, {"val_fall": 1.0}],
        },
    }
    hard = {
        "random": {"R1@0.5": 17.0, **r5(70.0, 55.0, 30.0)},
        "tga": {"R1@0.5": 21.0},
        # No paper-recipe row on hard: that target cannot be decided there.
        "vlanet_best": {
            "R1@0.5": 25.0, **r5(90.0, 80.0, 30.0),  # R5@0.7 ties Random: not above it
            "per_seed": [{"val_fall": 0.5}, {"val_fall": 2.0}],
        },
    }
    return {"difficulties": ["easy", "hard"], "levels": {"easy": easy, "hard": hard}}


def test_targets_judge_every_level():
    found = {t["target"]: t for t in localisation.targets(_targets_result())}
    tga, recipe, r5, fall = (found[k] for k in found)
    # 50 - 44 = +6 meets the 5-point lead on easy; 25 - 21 = +4 misses it on hard.
    assert tga["met"] is False and tga["detail"] == "easy +6.00, hard +4.00"
    # Above the recipe on easy (+10); hard has no recipe row, so no verdict either way.
    assert recipe["met"] is None and recipe["detail"] == "easy +10.00, hard n/a"
    assert r5["met"] is False
    assert r5["detail"] == "easy +25.00 / +35.00 / +20.00, hard +20.00 / +25.00 / +0.00"
    # A fall of exactly 1 meets the target; 2.0 on hard misses it.
    assert fall["met"] is False and fall["detail"] == "easy 0.00 / 1.00, hard 0.50 / 2.00"


def test_targets_are_met_only_when_every_level_meets_them():
    result = _targets_result()
    hard = result["levels"]["hard"]
    hard["tga"]["R1@0.5"] = 20.0  # +5.00 exactly: at least 5
    hard["vlanet"] = {"R1@0.5": 24.0}
    hard["random"]["R5@0.7"] = 29.0
    hard["vlanet_best"]["per_seed"] = [{"val_fall": 0.5}, {"val_fall": 0.0}]
    assert [t["met"] for t in localisation.targets(result)] == [True, True, True, True]
    # A run kept from a JSON written before the falls were recorded: no verdict.
    hard["vlanet_best"]["per_seed"] = [{"seed": 1}]
    assert localisation.targets(result)[3]["met"] is None
    assert "hard n/a" in localisation.targets(result)[3]["detail"]


def test_a_run_records_its_val_fall_from_its_history(tmp_path):
    from vlanet_tf import files

    # A run already trained and tested: train_and_test reuses it and reads its history.
    model_dir = tmp_path / "hard" / "vlanet_best-seed3"
    model_dir.mkdir(parents=True)
    files.write_json(str(model_dir / "test_metrics.json"), {"R1@0.5": 26.0})
    files.write_json(str(model_dir / "seconds.json"), 12.5)
    (model_dir / "history.csv").write_text(
        "epoch,loss,val_R1@0.5\n0,1.0,20.0\n1,0.9,30.0\n2,0.8,25.0\n3,0.7,28.0\n"
    )
    options = argparse.Namespace(
        hidden_dim=64, epochs=None, best_flagfile=None, best_flags=[]
    )
    run = localisation.train_and_test("vlanet_best", 3, "unused", str(tmp_path / "hard"), options)
    assert run["seed"] == 3 and run["R1@0.5"] == 26.0 and run["seconds"] == 12.5
    assert (run["val_best"], run["val_last"], run["val_fall"]) == (30.0, 28.0, 2.0)


def test_report_prints_the_table_and_the_targets_of_a_result(tmp_path, capsys):
    from vlanet_tf import files

    output = tmp_path / "localisation.json"
    result = _targets_result()
    result["rows"] = ["random", "tga", "vlanet_best"]
    for level in result["levels"].values():
        for row in level.values():
            row.update({k: row.get(k, 0.0) for k in ("R1@0.7", "R5@0.5")})
    files.write_json(str(output), result)
    assert localisation.main(["--report", f"--output={output}"]) == 0
    printed = capsys.readouterr().out
    assert "| VLANet (best options) | 50.00 | 25.00 |" in printed
    assert "[missed] VLANet (best options) R1@0.5 at least 5 above TGA: easy +6.00, hard +4.00" in printed
    with pytest.raises(SystemExit):
        localisation.parse_args(["--report", f"--output={tmp_path / 'missing.json'}"])


def test_a_run_without_a_val_course_keeps_its_metrics_and_reads_na(tmp_path, capsys):
    # No history.csv: nothing to read the fall from, and the benchmark goes on.
    assert localisation.val_course(str(tmp_path)) == {}
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n")  # trained without val
    assert localisation.val_course(str(tmp_path)) == {}
    assert "its fall is not recorded" in capsys.readouterr().err


def test_report_refuses_a_json_that_is_not_a_result(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"R1@0.5": 3.0}')
    with pytest.raises(ValueError, match=r"other.json: not a result of this script"):
        localisation.main(["--report", f"--output={other}"])


def test_a_resumed_runs_rewritten_epochs_replace_the_old_rows(tmp_path):
    # Killed after epoch 2, resumed from epoch 0's backup: CSVLogger appends epochs 1
    # and 2 again, and only their new rows are the run's.
    (tmp_path / "history.csv").write_text(
        "epoch,val_R1@0.5\n0,20.0\n1,30.0\n2,25.0\n1,22.0\n2,24.0\n"
    )
    assert localisation.val_course(str(tmp_path)) == {
        "val_best": 24.0, "val_last": 24.0, "val_fall": 0.0
    }
