"""ToyWorld: a miniature rendered world (four shapes, four colours) where VidMP3 runs on CPU with ground truth.

Pretraining data, benchmark clips and the judge (a classifier) all come from the project's own renderer,
so edits can be measured against the truth instead of eyeballed.
"""
