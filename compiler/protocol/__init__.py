"""Triton's model configuration and the tensor types of the Triton / KServe
v2 protocol: what the compiler writes into a model repository (config.pbtxt,
`netspec compile` and `netspec export`) and the service reads and speaks.

`generated/` holds protoc's code for protos/model_config.proto, registered in
a private descriptor pool (see service/protos_gen.py, the one command that
makes it); `datatypes` is the one table of element types.  Nothing here
imports torch when it loads.
"""
