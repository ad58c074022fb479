"""Evaluation: the accuracy figures of the README, measured by `argus eval` on the public data sets.

A tool over the services, never part of one: it runs the services' models in process (`local_analysis`), and no
service imports it. `coco` and `widerface` measure the detectors; `lfw` (verification and calibration),
`identification` and `verification` (the arithmetic of pairs) the face pipeline, over the embeddings `cache`
keeps; `plots` draws them (the optional extra `argus[plots]`).
"""
