"""Evaluation: the accuracy figures of the README, measured by `argus eval` on the public data sets."""
