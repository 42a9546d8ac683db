"""The file formats ``har export`` writes: one place for their names and suffixes, free of torch
so that the command line can offer them without loading it."""

FORMATS = ("onnx", "torchscript", "onnx-int8", "torchscript-bf16")
#: What ``--format`` takes: a format, or ``auto`` (the backend ``har bench`` recommends).
CHOICES = FORMATS + ("auto",)
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "onnx-int8": ".int8.onnx",
            "torchscript-bf16": ".bf16.torchscript.pt"}
