"""Tools over compiled models: the model repository (artifact, pbtxt), the
report, the graph picture, verification against reference implementations,
and exports that other servers load (export/)."""
