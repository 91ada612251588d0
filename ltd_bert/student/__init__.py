"""The BiLSTM student: the model and its folder, training, calibration of the similarity
vectors, int8 quantisation, ONNX export, and `Student.load` for any model folder. Above
`teacher`.

`Student.load` picks its loader among the subclasses of `Student` that declare `handles`
(`QuantizedStudent`, `OnnxStudent`): importing them here registers them, whichever module of
the layer is imported first.
"""

from ltd_bert.student import export, quantize  # noqa: F401  (the loaders of Student.load)
