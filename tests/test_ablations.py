"""The SPEC §9 grid and the Table 3 / demo markdown layouts."""

from __future__ import annotations

import tensorflow as tf

from vlanet_tf import ablations, demo
from vlanet_tf.config import ModelConfig


class AblationGridTest(tf.test.TestCase):
    def test_sliding_grid_is_strides_by_windows_then_the_ablations(self):
        variants = ablations.grid(ModelConfig())
        self.assertLen(variants, 9 + 3)
        self.assertLen({v.name for v in variants}, len(variants))
        grid = {(v.overrides["stride_frames"], v.overrides["window_frames"]) for v in variants[:9]}
        self.assertEqual(
            grid, {(s, w) for s in ablations.STRIDES for w in ablations.WINDOWS}
        )
        for variant in variants:
            ModelConfig(**{**ModelConfig().to_dict(), **variant.overrides})
        self.assertEqual(
            [v.overrides for v in variants[9:]],
            [
                {"use_cross_attention": False},
                {"use_self_attention": False},
                {"use_surrogate_selection": False},
            ],
        )

    def test_didemo_grid_has_no_window_variants(self):
        variants = ablations.grid(ModelConfig(proposal_mode="didemo"))
        self.assertEqual([v.name for v in variants][0], "full")
        self.assertLen(variants, 4)

    def test_table3_layout(self):
        metrics = {k: 10.0 * i for i, k in enumerate(ablations.CHARADES_COLUMNS)}
        table = ablations.table3([("w/o self-attention", metrics)], ablations.CHARADES_COLUMNS)
        lines = table.splitlines()
        self.assertEqual(lines[0], "| variant | R1@0.3 | R1@0.5 | R1@0.7 | R5@0.3 | R5@0.5 | R5@0.7 |")
        self.assertEqual(lines[2], "| w/o self-attention | 0.00 | 10.00 | 20.00 | 30.00 | 40.00 | 50.00 |")

    def test_full_model_is_the_flagfiles_own_variant(self):
        names = {v.name for v in ablations.grid(ModelConfig())}
        self.assertIn(ablations.full_model_name(ModelConfig()), names)
        self.assertEqual(
            ablations.full_model_name(ModelConfig(stride_frames=4, window_frames=(128, 256))),
            "stride4_w128-256",
        )
        self.assertEqual(ablations.full_model_name(ModelConfig(proposal_mode="didemo")), "full")

    def test_table3_order_names_each_half(self):
        full, key = "stride8_w176-208-240", "R1@0.5"
        paper = {full: {key: 30.0}, "no_cross_attention": {key: 25.0},
                 "no_surrogate_selection": {key: 20.0}}  # fmt: skip
        line = ablations.table3_order(paper, full, key)
        self.assertIn("above w/o cross-attention 25.00: met", line)
        self.assertIn("w/o surrogate selection 20.00 the lowest: met", line)
        # This benchmark's order: w/o surrogate selection between the two.
        ours = dict(paper, no_surrogate_selection={key: 28.0})
        self.assertIn("28.00 the lowest: missed", ablations.table3_order(ours, full, key))
        below = dict(paper, no_cross_attention={key: 31.0})
        self.assertIn("31.00: missed", ablations.table3_order(below, full, key))
        self.assertIsNone(ablations.table3_order({full: {key: 1.0}}, full, key))

    def test_demo_table_shows_the_random_spread(self):
        row = {k: 1.0 for k in demo.METRIC_KEYS}
        row.update({f"{k}_std": 0.5 for k in demo.METRIC_KEYS})
        table = demo.results_table({"Random": row})
        self.assertIn("| Random | 1.00 ± 0.50 |", table)


if __name__ == "__main__":
    tf.test.main()
