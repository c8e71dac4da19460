"""The ONNX front end: small pure passes (ModelProto in, new ModelProto out) that prepare any exported classifier."""
