"""Render benchmark: what the bounded sandbox costs per prompt, against Jinja's own sandbox.

Renders the same prompt template (attribute lookups, a filter, a conditional, a short loop) over
N asset contexts with imgbuild's PromptRenderer environment (``_BoundedSandbox``: range, calls,
filters, operators and the output stream bounded) and with a plain
``jinja2.sandbox.ImmutableSandboxedEnvironment`` configured the same way, interleaved, REPEAT
times each, and prints the median times and their ratio (bounded / plain).

Usage::

    python bench/render_bounds.py            # N = 20,000 renders, 5 rounds
    python bench/render_bounds.py --n 2000   # a quick run
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from imgbuild.spec.render import _BoundedSandbox, _render_bounded

TEMPLATE = """\
Photo of {{ persona.name }}, {{ persona.traits.face }}, wearing a {{ attrs.wardrobe | lower }},
in a {{ attrs.environment }}{% if attrs.lighting %}, {{ attrs.lighting }}{% endif %}.
{% for word in ["sharp", "natural", "candid"] %}{{ word }} {% endfor %}
"""


def contexts(n: int) -> list[dict[str, Any]]:
    return [
        {
            "persona": {"name": "Mia Tan", "traits": {"face": "oval face"}},
            "attrs": {"wardrobe": f"Sweater {i % 7}", "environment": f"room {i % 13}", "lighting": "lamp"},
        }
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    options: dict[str, Any] = {"undefined": jinja2.StrictUndefined, "trim_blocks": True, "lstrip_blocks": True}
    bounded_env = _BoundedSandbox(**options)
    plain_env = ImmutableSandboxedEnvironment(**options)
    bounded, plain = bounded_env.from_string(TEMPLATE), plain_env.from_string(TEMPLATE)
    items = contexts(args.n)
    times: dict[str, list[float]] = {"bounded": [], "plain": []}
    for _ in range(args.repeat):
        started = time.perf_counter()
        for context in items:
            bounded_env.start()
            _render_bounded(bounded_env, bounded, context)
        times["bounded"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for context in items:
            plain.render(context)
        times["plain"].append(time.perf_counter() - started)
    b, p = statistics.median(times["bounded"]), statistics.median(times["plain"])
    print(f"renders: {args.n} x {args.repeat} rounds")
    print(f"bounded sandbox: {b:.3f} s ({b / args.n * 1e6:.1f} us per prompt)")
    print(f"plain sandbox:   {p:.3f} s ({p / args.n * 1e6:.1f} us per prompt)")
    print(f"ratio bounded / plain: {b / p:.2f}")


if __name__ == "__main__":
    main()
