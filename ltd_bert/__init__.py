"""ltd-bert: distil a BERT teacher into a tiny, CPU-fast BiLSTM sentence encoder (LTD-BERT).

The public Python API (README "Python API"); every name is imported on first use, so that
`import ltd_bert` stays light (the command line's --help does not import torch):

    from ltd_bert import Student
    vectors = Student.load("ltd_bert/models/zh-small").encode(["今天天气很好"])
"""

from __future__ import annotations

import importlib

from ltd_bert.common.version import __version__

#: name → the module that defines it
_API = {
    # models: Student.load loads any model folder (float32, int8, ONNX)
    "Student": "ltd_bert.student.model",
    "QuantizedStudent": "ltd_bert.student.quantize",
    "OnnxStudent": "ltd_bert.student.export",
    "LightStudent": "ltd_bert.runtime.light",
    "SIZES": "ltd_bert.student.model",
    # the pipeline: corpus → IDF → teacher file → model
    "clean_text": "ltd_bert.text.clean",
    "build_idf": "ltd_bert.text.idf",
    "load_idf": "ltd_bert.text.idf",
    "Weighter": "ltd_bert.text.weights",
    "Teacher": "ltd_bert.teacher.model",
    "PoolingSettings": "ltd_bert.teacher.model",
    "teacher_embed": "ltd_bert.teacher.embed",
    "TeacherFile": "ltd_bert.teacher.store",
    "TrainConfig": "ltd_bert.student.config",
    "train": "ltd_bert.student.train",
    "quantize_model": "ltd_bert.student.quantize",
    "export_onnx": "ltd_bert.student.export",
    # what the vectors are for
    "encode_file": "ltd_bert.tasks.encode",
    "evaluate": "ltd_bert.tasks.evaluate",
    "fidelity": "ltd_bert.tasks.evaluate",
    "build_index": "ltd_bert.tasks.search",
    "Index": "ltd_bert.tasks.search",
    "cluster_file": "ltd_bert.tasks.cluster",
    "FinetuneConfig": "ltd_bert.tasks.finetune",
    "finetune": "ltd_bert.tasks.finetune",
    "Classifier": "ltd_bert.tasks.finetune",
    # errors: every one the library raises on purpose is an LtdError
    "LtdError": "ltd_bert.common.errors",
    "InputError": "ltd_bert.common.errors",
    "IdfError": "ltd_bert.common.errors",
    "StoreError": "ltd_bert.common.errors",
    "ModelError": "ltd_bert.common.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'ltd_bert' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
