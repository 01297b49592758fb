"""Where the datasets come from, and a downloader that refuses clearly when it cannot work.

`snnx.data.download("shd_train", "data")` calls `download` directly: the module is callable,
so the README's call works and `snnx.data.download.download`/`.SOURCES` keep working too.
"""

import gzip
import hashlib
import pathlib
import shutil
import sys
import types
import urllib.error
import urllib.request

#: Official sources. snnx does not ship checksums it could not verify: `md5` is None where
#: unknown, and `download(..., md5=...)` checks one you supply.
SOURCES = {
    "shd_train": {"url": "https://zenkelab.org/datasets/shd_train.h5.gz", "file": "shd_train.h5"},
    "shd_test": {"url": "https://zenkelab.org/datasets/shd_test.h5.gz", "file": "shd_test.h5"},
    "ssc_train": {"url": "https://zenkelab.org/datasets/ssc_train.h5.gz", "file": "ssc_train.h5"},
    "ssc_valid": {"url": "https://zenkelab.org/datasets/ssc_valid.h5.gz", "file": "ssc_valid.h5"},
    "ssc_test": {"url": "https://zenkelab.org/datasets/ssc_test.h5.gz", "file": "ssc_test.h5"},
    "nmnist": {"url": "https://www.garrickorchard.com/datasets/n-mnist", "file": "Train/, Test/"},
}


def download(name: str, root, *, md5: str | None = None, timeout: float = 30.0) -> pathlib.Path:
    """Fetch and gunzip an SHD/SSC split into `root` (if not already there).

    **Arguments:**

    - `name`: a key of `SOURCES`, e.g. `"shd_train"`.
    - `root`: the data folder.
    - `md5`: optional checksum of the `.gz` file to verify.
    - `timeout`: network timeout in seconds.

    **Returns:**

    The path of the `.h5` file.

    **Raises:**

    `KeyError` for an unknown name; `RuntimeError` naming the URL and the path to put the
    file at when the download fails (offline machines); `ValueError` on a checksum mismatch.
    """
    if name not in SOURCES:
        raise KeyError(f"`name` must be one of {sorted(SOURCES)}, got {name!r}.")
    src = SOURCES[name]
    root = pathlib.Path(root)
    target = root / src["file"]
    if name == "nmnist":
        raise RuntimeError(
            f"N-MNIST is distributed as zip files from {src['url']}: unzip Train.zip and "
            f"Test.zip into {str(root)!r} and call `snnx.data.load_nmnist({str(root)!r})`."
        )
    if target.exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    gz = target.with_suffix(".h5.gz")
    try:
        with urllib.request.urlopen(src["url"], timeout=timeout) as r, open(gz, "wb") as f:
            shutil.copyfileobj(r, f)
    except (urllib.error.URLError, OSError) as e:
        gz.unlink(missing_ok=True)
        raise RuntimeError(
            f"Could not download {src['url']} ({e}). On an offline machine, fetch it elsewhere, "
            f"gunzip it, and put it at {str(target)!r}."
        ) from None
    if md5 is not None:
        digest = hashlib.md5(gz.read_bytes()).hexdigest()
        if digest != md5:
            gz.unlink()
            raise ValueError(f"{src['url']} has md5 {digest}, expected {md5}; download again.")
    with gzip.open(gz, "rb") as fin, open(target, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    gz.unlink()
    return target


class _CallableModule(types.ModuleType):
    """`snnx.data.download(...)` is `snnx.data.download.download(...)`."""

    def __call__(self, name: str, root, *, md5: str | None = None, timeout: float = 30.0):
        return download(name, root, md5=md5, timeout=timeout)


sys.modules[__name__].__class__ = _CallableModule
