"""The torch-free side of a model folder: reading it (`base`: config, vocabulary, character
weights, the `Encoder` interface every loader keeps) and running a float32 model with numpy
alone (`light.LightStudent`), so that `ltd similarity` and `ltd encode` start without
importing torch. Above `text`, below `teacher` and `student`."""
