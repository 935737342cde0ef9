"""benchmarks.deviations: the README's table is the committed JSON's, rendered."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from benchmarks import deviations
from vlanet_tf import files

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "deviations.json"
README = REPO / "README.md"


@pytest.fixture(scope="module")
def committed():
    return files.read_json(str(RESULT))


def test_the_readme_table_is_the_committed_json(committed):
    page = README.read_text(encoding="utf-8")
    assert deviations.render(page, committed) == page
    assert deviations.main(["--check", f"--output={RESULT}", f"--readme={README}"]) == 0


def test_the_json_holds_both_forms_over_three_seeds_at_least(committed):
    for form in ("project", "paper"):
        runs = [r for r in committed["runs"] if r["form"] == form]
        assert len({r["seed"] for r in runs}) >= 3, form
        means = committed["means"][form]
        assert means["seeds"] == len(runs)
        for key in deviations.KEYS + deviations.SIM_KEYS:
            assert means[key] == pytest.approx(sum(r[key] for r in runs) / len(runs)), key
        for r in runs:
            assert r["val_sim_gap"] == pytest.approx(r["val_pos_sim"] - r["val_neg_sim"])


def test_render_rewrites_only_the_marked_table(committed, tmp_path):
    page = "# Title\n\nprose\n\n<!-- table:deviations -->\nstale\n<!-- /table:deviations -->\nend\n"
    changed = copy.deepcopy(committed)
    changed["runs"][0]["R1@0.5"] = 99.125
    out = deviations.render(page, changed)
    assert out.startswith("# Title\n\nprose\n\n<!-- table:deviations -->\n| form |")
    assert out.endswith("<!-- /table:deviations -->\nend\n")
    assert "99.12" in out and "stale" not in out
    stale = tmp_path / "README.md"
    stale.write_text(page, encoding="utf-8")
    assert deviations.main(["--check", f"--output={RESULT}", f"--readme={stale}"]) == 1
    with pytest.raises(ValueError, match="exactly one"):
        deviations.render("no markers\n", committed)
