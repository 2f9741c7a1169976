"""The annotation programme: a dataset (signed manifest, dataset log), its reading design,
assignments, worklists, calibration gates and the adjudication queue."""
