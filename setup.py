"""Packaging for tf_reorder."""

from setuptools import find_packages, setup

setup(
    name="tf_reorder",
    version="0.1.0",
    description="Move monotone activations after max pooling in Keras models and TF graphs.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tf_reorder", "tf_reorder.*"]),
    # The runtime policy (tf_reorder/data/runtime_policy.json), written by
    # benchmarks/bench_runtimes.py and read by tf_reorder.policy.
    package_data={"tf_reorder": ["data/*.json"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.0",
        "numpy",
        "absl-py",
    ],
    # The runtimes the benchmarks and the packaged runtime policy were measured with.
    extras_require={
        "test": ["pytest", "jax==0.10.2", "tf2onnx==1.17.0", "onnxruntime==1.32.0",
                 "ai-edge-litert==2.3.0", "matplotlib"],
        "bench": ["jax==0.10.2", "tf2onnx==1.17.0", "onnxruntime==1.32.0",
                  "ai-edge-litert==2.3.0", "matplotlib"],
    },
    entry_points={"console_scripts": ["tf-reorder=tf_reorder.cli:run"]},
)
