"""Generated evaluation data: the written texts synthetic posts are drawn from, kept apart from the code they test.

``mention_texts`` holds the phrase pools of the synthetic brand-mention
streams (:mod:`crisiswatch.ingest.scenario`, used by the demo, the tests and
the detector's synthetic suite); ``theme_set`` builds a labelled set of
complaint posts for themes by meaning. Generated data tests code; it chooses
no settings. The package imports nothing from the rest of crisiswatch.
"""
