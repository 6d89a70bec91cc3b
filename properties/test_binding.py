"""Binding RT-DETR's arguments to a builder's parameters (dnspec.implementations.binding),
decided before the first call: by name, renamed parameters by position (printed), extra
parameters at their defaults (said so), ``bind`` / ``--bind`` for the rest; a builder
that cannot be bound is exit 2 with both signatures and no divergence."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnspec.cli import main
from dnspec.config import ConfigError, parse
from dnspec.implementations.binding import RTDETR_PARAMETERS, BindingError, Bound, bind, parse_bind
from dnspec.implementations.specs import SpecError, load_implementation

TREES = Path(__file__).parent / "repo_fixtures"
FUNCTION = "get_contrastive_denoising_training_group"
ARGS = ("T", "C", "Q", "E", "N", "R", "S")  # stand-ins for RT-DETR's seven arguments, in its order


def _received(fn, binding=None):
    """What each parameter of ``fn`` got when called with RT-DETR's arguments through its binding."""
    binding = binding or bind(fn)
    return binding.call(fn, ARGS, {})


def test_rtdetrs_own_signature_is_called_as_it_is():
    def f(
        targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0
    ):
        return locals()

    binding = bind(f)
    assert binding.plain and binding.lines == ()
    assert _received(f, binding) == dict(zip(RTDETR_PARAMETERS, ARGS, strict=True))


def test_renamed_parameters_in_rtdetrs_positions_bind_by_position_and_say_so():
    def f(
        targets,
        num_classes,
        num_queries,
        class_embeds,
        num_denoising_queries,
        label_noise_ratio,
        box_noise_scale,
        training=True,
    ):
        return locals()

    binding = bind(f)
    assert not binding.plain
    assert "class_embeds <- class_embed (by position)" in binding.lines
    assert "num_denoising_queries <- num_denoising (by position)" in binding.lines
    assert "training left at its default True" in binding.lines
    got = _received(f, binding)
    assert got["class_embeds"] == "E" and got["num_denoising_queries"] == "N" and got["training"] is True


def test_reordered_parameters_with_rtdetrs_names_bind_by_name():
    def f(targets, num_denoising, num_classes, num_queries, label_noise_ratio, box_noise_scale, class_embed):
        return locals()

    binding = bind(f)
    assert binding.lines[0] == "parameters in another order than RT-DETR's: bound by name"
    assert _received(f, binding) == dict(zip(RTDETR_PARAMETERS, ARGS, strict=True))


@pytest.mark.parametrize(
    "source, reason",
    [
        (
            "def f(targets, num_classes, class_embed, num_denoising, label_noise_ratio, box_noise_scale): pass",
            "no parameter takes num_queries",
        ),
        (
            "def f(targets, num_denoising, num_classes, hidden_dim, label_noise_ratio, box_noise_scale, class_embed,"
            " num_queries=300): pass",
            "hidden_dim is required and RT-DETR has no such argument",
        ),
        # a name that means something else is never a stand-in by position
        (
            "def f(targets, num_classes, hidden_dim, class_embed, num_denoising, label_noise_ratio, box_noise_scale): pass",
            "no parameter takes num_queries",
        ),
        (
            "def f(targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, /,"
            " extra): pass",
            "extra is required",
        ),
    ],
)
def test_a_builder_that_cannot_be_bound_is_one_line_with_both_signatures_and_the_fix(source, reason):
    namespace = {}
    exec(source, namespace)
    with pytest.raises(BindingError) as raised:
        bind(namespace["f"], label="fork")
    message = str(raised.value)
    assert "\n" not in message and reason in message
    assert "fork has parameters (targets, " in message  # theirs
    assert "RT-DETR's (targets, num_classes, num_queries, class_embed, num_denoising=100" in message  # RT-DETR's
    assert "--bind NAME=PARAM" in message and "docs/adapters.md" in message


def test_bind_names_the_parameter_that_takes_an_argument():
    def f(
        targets, num_classes, class_embed, total_queries, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0
    ):
        return locals()

    with pytest.raises(BindingError, match="no parameter takes num_queries"):
        bind(f)
    binding = bind(f, {"num_queries": "total_queries"})
    assert "total_queries <- num_queries (bind)" in binding.lines
    got = _received(f, binding)
    assert got["total_queries"] == "Q" and got["class_embed"] == "E"
    with pytest.raises(BindingError, match="has no parameter 'nq'"):
        bind(f, {"num_queries": "nq"})


def test_positional_only_and_star_args_builders_are_called_positionally():
    def positional(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, /
    ):
        return (targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale)

    def renamed_positional(t, c, q, e, n, r, s, /):
        return (t, c, q, e, n, r, s)

    def star(*args, **kwargs):
        return args

    assert bind(positional).plain and _received(positional) == ARGS
    assert _received(renamed_positional) == ARGS
    assert bind(star).plain and _received(star) == ARGS


def test_the_noise_keyword_is_passed_through_a_binding():
    def f(
        targets, num_classes, num_queries, class_embeds, num_denoising, label_noise_ratio, box_noise_scale, noise=None
    ):
        return class_embeds, noise

    bound = Bound(f, bind(f))
    assert bound(*ARGS, noise="draw") == ("E", "draw")


def test_bind_entries_are_validated_where_parsed():
    assert parse_bind(["num_queries=total"], "--bind") == {"num_queries": "total"}
    with pytest.raises(ValueError, match="--bind num_query=total: 'num_query' is not an RT-DETR argument"):
        parse_bind(["num_query=total"], "--bind")
    with pytest.raises(ValueError, match="expected NAME=PARAM"):
        parse_bind(["num_queries"], "--bind")
    assert parse({"bind": {"class_embed": "class_embeds"}}, "/x/pyproject.toml").bind == {"class_embed": "class_embeds"}
    with pytest.raises(ConfigError, match="bind"):
        parse({"bind": {"classes": "num_classes"}}, "/x/pyproject.toml")
    with pytest.raises(ConfigError, match="must be a table"):
        parse({"bind": ["class_embed=x"]}, "/x/pyproject.toml")


def test_load_implementation_binds_every_route_and_refuses_what_cannot_be_bound():
    impl = load_implementation(f"{TREES / 'renamed_fork' / 'denoising.py'}:{FUNCTION}")
    assert isinstance(impl.fn, Bound)
    assert any("class_embeds <- class_embed" in note for note in impl.notes)
    with pytest.raises(SpecError, match="hidden_dim is required"):
        load_implementation(f"{TREES / 'reordered_fork' / 'denoising.py'}:{FUNCTION}")
    # the reference, an Implementation, is never re-bound
    assert load_implementation("reference").notes == ()


def test_a_renamed_but_positional_fork_conforms_with_its_binding_printed(capsys):
    code = main(
        [
            "verify",
            f"{TREES / 'renamed_fork' / 'denoising.py'}:{FUNCTION}",
            "--profile",
            "ci",
            "--max-examples",
            "5",
            "--only",
            "structure",
            "class_queries",
            "noiseless_matches_reference",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    bound = next(line for line in out.splitlines() if line.startswith("bound: "))
    assert "class_embeds <- class_embed (by position)" in bound and "training left at its default True" in bound
    assert "compatibility: bit-compatible with RT-DETR under the same torch seed" in out


def test_a_reordered_fork_is_exit_2_with_both_signatures_and_no_divergence(capsys):
    code = main(["verify", f"{TREES / 'reordered_fork' / 'denoising.py'}:{FUNCTION}", "--profile", "ci"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "DIVERGENCE" not in captured.err
    assert "(targets, num_denoising, num_classes, hidden_dim," in captured.err
    assert "RT-DETR's (targets, num_classes, num_queries, class_embed" in captured.err


def test_bind_on_the_command_line_fixes_a_fork_it_could_not_bind(tmp_path, capsys):
    fork = tmp_path / "fork.py"
    fork.write_text(
        "from dnspec.contract.reference import get_contrastive_denoising_training_group as ref\n\n"
        "def build(targets, num_classes, class_embed, total_queries, num_denoising=100, label_noise_ratio=0.5,"
        " box_noise_scale=1.0):\n"
        "    return ref(targets, num_classes, total_queries, class_embed, num_denoising, label_noise_ratio,"
        " box_noise_scale)\n"
    )
    argv = ["verify", f"{fork}:build", "--profile", "ci", "--max-examples", "3", "--only", "structure"]
    assert main(argv) == 2
    assert "no parameter takes num_queries" in capsys.readouterr().err
    assert main([*argv, "--bind", "num_queries=total_queries"]) == 0
    assert "total_queries <- num_queries (bind)" in capsys.readouterr().out
    assert main([*argv, "--bind", "queries=total_queries"]) == 2
    assert "--bind queries=total_queries: 'queries' is not an RT-DETR argument" in capsys.readouterr().err
