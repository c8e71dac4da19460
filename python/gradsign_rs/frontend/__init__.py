"""The ONNX front end: small pure passes (ModelProto in, new ModelProto out) that prepare any exported classifier.

A pass never mutates its argument. When it has nothing to change it returns the argument itself (copies of a large
model cost more than the rest of the preparation), so nothing may mutate a pass's result in place: make a copy
(`_graph.copy_model`) first.
"""
