"""Packaging for tf_reorder."""

from setuptools import find_packages, setup

setup(
    name="tf_reorder",
    version="0.1.0",
    description="Move monotone activations after max pooling in Keras models and TF graphs.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tf_reorder", "tf_reorder.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.0",
        "numpy",
        "absl-py",
    ],
    extras_require={
        "test": ["pytest", "jax", "tf2onnx", "onnxruntime", "ai-edge-litert"],
        "bench": ["jax", "tf2onnx", "onnxruntime", "ai-edge-litert"],
    },
    entry_points={"console_scripts": ["tf-reorder=tf_reorder.cli:run"]},
)
