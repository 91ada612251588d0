"""The BiLSTM student: the model and its folder, training, calibration of the similarity
vectors, int8 quantisation, ONNX export, the torch-free float32 runtime, and `Student.load`
for any model folder. Above `teacher`.

`Student.load` picks its loader among the subclasses of `Student` that declare `handles`
(`QuantizedStudent`, `OnnxStudent`), which `Student.loader_for` imports on first use
(`model.LOADER_MODULES`): this package imports nothing itself, so `base` and `light` import
without torch.
"""
