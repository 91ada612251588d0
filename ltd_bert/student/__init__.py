"""The BiLSTM student: the model and its folder, training, calibration of the similarity
vectors, int8 quantisation, ONNX export, and `Student.load` for any model folder. Above
`teacher`."""
