"""Property tests (hypothesis) for the numbers a user types: every ``--size``, ``--dpi``,
``--print-size``, ``--seed``, … gives exit 0 or one ``error:`` line, never a traceback or a
hang (issue 14, "How"). The render itself is stubbed: everything is checked before it starts."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stylecascade import cli
from stylecascade.errors import UsageError
from stylecascade.job import CheckedJob
from stylecascade.printsize import MAX_LONG_EDGE, MIN_LONG_EDGE, UNITS_PER_INCH, print_long_edge

EDGES = ["0", "1", "-1", "2147483648", "-2147483649", "9223372036854775808", str(2**64), "1e300"]
NUMBER_TEXT = st.one_of(
    st.sampled_from(EDGES),  # the limits of C ints and doubles, often
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "abc", "1e999", "-0", "0x10", "１２", "1_000", "5e-324", "nan"]),
)
SIDE = st.one_of(
    st.integers(0, 10**6).map(str),
    st.floats(0, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.sampled_from(["", "-1", "1e3", ".5", "inf"]),
)
PRINT_SIZES = st.builds(
    lambda w, sep, h, unit: f"{w}{sep}{h}{unit}",
    SIDE,
    st.sampled_from(["x", "×", " x ", "X", "*"]),
    SIDE,
    st.sampled_from(["cm", "mm", "in", "IN", "", "px", " cm"]),
)
OPTIONS = [
    "--size", "--dpi", "--seed", "--blend-weight", "--style-weight", "--content-weight",
    "--tv-weight", "--tile-size", "--threads",
    "--max-input-pixels", "--jpeg-quality", "--bit-depth",
]  # fmt: skip
FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples in every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def no_render(monkeypatch):
    """Stub the work (weights, stages, writes) and keep torch's thread count as it was."""
    monkeypatch.setattr(CheckedJob, "run", lambda self, observer=None, stop=None: {})
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _exit_0_or_one_error_line(args, capsys):
    capsys.readouterr()
    code = cli.run(args)
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    if code == 0:
        assert not any(line.startswith("error:") for line in lines), lines
    else:
        assert code in (1, 2), (code, lines)
        assert len(lines) == 1 and lines[0].startswith("error: "), lines


@FAST
@given(option=st.sampled_from(OPTIONS), value=NUMBER_TEXT)
def test_any_number_option_gives_exit_0_or_one_error_line(
    option, value, photos, tiny_preset_file, tmp_path, no_render, capsys
):
    args = ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file)]
    _exit_0_or_one_error_line([*args, "-o", str(tmp_path / "o.png"), option, value, "-q"], capsys)


@FAST
@given(print_size=PRINT_SIZES, dpi=st.one_of(st.none(), NUMBER_TEXT))
def test_any_print_size_gives_exit_0_or_one_error_line(
    print_size, dpi, photos, tiny_preset_file, tmp_path, no_render, capsys
):
    args = ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file)]
    args += ["-o", str(tmp_path / "o.png"), "--print-size", print_size, "-q"]
    _exit_0_or_one_error_line([*args, *([] if dpi is None else ["--dpi", dpi])], capsys)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    width=st.floats(0, 1e5),
    height=st.floats(0, 1e5),
    unit=st.sampled_from(sorted(UNITS_PER_INCH)),
    dpi=st.floats(-10, 1e5),
)
def test_a_print_size_is_its_long_side_at_the_dpi_or_one_usage_error(width, height, unit, dpi):
    text = f"{width!r}x{height!r}{unit}"
    try:
        edge = print_long_edge(text, dpi)
    except UsageError as exc:
        assert str(exc).startswith(("print_size", "dpi"))  # the CLI shows --print-size, --dpi
        return
    assert MIN_LONG_EDGE <= edge <= MAX_LONG_EDGE
    assert abs(edge - max(width, height) / UNITS_PER_INCH[unit] * dpi) <= 0.5 + 1e-9 * edge
