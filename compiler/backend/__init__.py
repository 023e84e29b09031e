"""The back end: an analyzed graph to torch.  `emit` builds the torch.fx
module, `standalone` the model.py source that needs only torch; `runtime`
holds the modules torch.nn lacks."""
