"""Standalone evaluation (SPEC §8): ground truth, predictions files, scores, baselines.

    ground_truth   GroundTruth records from the annotation files or a prepared split
    predictions    the predictions JSONL: read, validate, write, re-rank
    scoring        R@n,IoU=m (Charades-STA), R@1/R@5/mIoU (DiDeMo); tables, metric files
    baselines      the Random and Upper-Bound rows over a ProposalGeometry's candidates
    metrics        the protocol arithmetic itself

It imports span arithmetic, the geometry and the data readers only — never the model
or training — so any model, a baseline or a file from another codebase is scored by
the same code. Training-time validation writes the same prediction records and calls
the same `scoring.score`.
"""
