"""The BiLSTM student: the model and its folder, training, calibration of the similarity
vectors, int8 quantisation, ONNX export, the torch-free float32 runtime, and `Student.load`
for any model folder. Above `teacher`.

`Student.load` picks its loader among the subclasses of `Student` that declare `handles`:
importing this package imports `quantize` and `export`, so `QuantizedStudent` and
`OnnxStudent` are registered before any folder is loaded. The torch-free reading and the
numpy runtime are one layer down, in `ltd_bert.runtime`.
"""

from ltd_bert.student import export, quantize  # noqa: F401  (registers their loaders)
