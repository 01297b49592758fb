"""Every ```python block of README.md runs as written: alone, and all of them in order.

The blocks are read from README.md at collection time, so a section added later is tested
too; each test id names the block's index and the heading it sits under. Blocks fenced as
anything but `python` (```bash, plain ```) are not executed.
"""

import contextlib
import pathlib
import re
import signal

import pytest

README = pathlib.Path(__file__).parents[1] / "README.md"
TIMEOUT_S = 300  # a hang guard only: the blocks take seconds (never asserted as a time)


def python_blocks(text: str) -> list[tuple[str, str]]:
    """`(heading, code)` of every ```python fence, in order of appearance.

    Fences of every language are tracked, so a `# comment` inside a ```bash block is not
    taken for a heading; an unterminated fence is an error.
    """
    heading, blocks, fence, code = "(top)", [], None, []
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        if fence is None:
            if line.startswith("```"):
                fence, code, start = line[3:].strip(), [], number
            elif line.startswith("#"):
                heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            if fence == "python":
                blocks.append((heading, "".join(code)))
            fence = None
        else:
            code.append(line)
    if fence is not None:
        raise ValueError(f"README.md: the ``` fence opened on line {start} is never closed.")
    return blocks


BLOCKS = python_blocks(README.read_text())


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")[:40]


@contextlib.contextmanager
def _time_limit(seconds: int, what: str):
    def expire(signum, frame):
        raise TimeoutError(f"{what} ran for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _exec(code: str, namespace: dict, what: str) -> None:
    with _time_limit(TIMEOUT_S, what):
        exec(compile(code, f"<README.md: {what}>", "exec"), namespace)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Blocks write files (checkpoints, .nir): run them in a fresh folder, plots to Agg."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


def test_readme_extraction_sees_the_sections():
    headings = [h for h, _ in BLOCKS]
    assert len(BLOCKS) >= 8, headings
    for section in ("In ten lines", "Your own neuron", "Your own layer", "Training"):
        assert section in headings, headings
    # the extractor is fence-aware: a bash comment is not a heading, bash is not run
    text = "# A\n```bash\n# not a heading\nmake demo\n```\n```python\nx = 1\n```\n"
    assert python_blocks(text) == [("A", "x = 1\n")]
    with pytest.raises(ValueError, match="never closed"):
        python_blocks("# A\n```python\nx = 1\n")


@pytest.mark.parametrize(
    "index", range(len(BLOCKS)), ids=[f"{i}-{_slug(h)}" for i, (h, _) in enumerate(BLOCKS)]
)
def test_readme_block_runs_alone(index, sandbox):
    heading, code = BLOCKS[index]
    # a fresh namespace: the block brings its own imports and data
    _exec(code, {"__name__": "__readme__"}, f"block {index} under '{heading}'")


def test_readme_blocks_run_in_order(sandbox):
    namespace = {"__name__": "__readme__"}
    for index, (heading, code) in enumerate(BLOCKS):
        _exec(code, namespace, f"block {index} under '{heading}' (all blocks in order)")
