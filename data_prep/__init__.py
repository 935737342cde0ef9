"""Release files -> TFRecord shards, and a synthetic release."""
