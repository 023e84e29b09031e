"""Tools over compiled models: the model repository (artifact, pbtxt), the
report, the graph picture, and verification against reference
implementations."""
