from gradsign_rs._core import GradSignError, SignAccumulator
