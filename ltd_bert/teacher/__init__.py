"""The teacher: loading (built-in or Hugging Face), IDF pooling, the HDF5 teacher file,
`teacher-embed` and the torchrun helpers. Above `text`."""
