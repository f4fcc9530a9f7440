"""docs/models.md, generated from the model registry so that the two cannot disagree.

``python -m imgbuild.modeldoc > docs/models.md`` rewrites it; a test fails when it is out of date.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from imgbuild.models import DEFAULT_MODEL, Fact, ModelSpec, endpoint_key, families, get_model, model_keys, sources

__all__ = ["render"]

ROUTES = ("ark", "replicate", "fal", "openai", "gemini", "bfl")

INTRO = """\
# Models

<!-- Generated from imgbuild/data/models.json by `python -m imgbuild.modeldoc > docs/models.md`;
     tests/test_models.py fails when this file is out of date. Edit the registry, not this page. -->

The registry is data: `imgbuild/data/models.json`. One entry per endpoint key; capabilities,
limits, sizes, prices and provider model ids per model family. The batch schema's `model` enum is
generated from it, and so is this page. Every limit and price names its source and the date it
was checked (the last section); where a source is third-party (3P) or sources disagree, the note
says so. Re-check model ids and limits against the live docs before relying on them for paid
work. All of it is checked when the project loads, before any call: a shot the family or the
provider cannot make is an input error naming the file and line.
"""

FIELDS = {  # capability -> the request fields it stands for (Ark's names; other routes map them)
    "sequential": "`sequential_image_generation`, `max_images`",
    "output_format": "`output_format`",
    "watermark": "`watermark` (sent as false)",
    "optimize_prompt": "`optimize_prompt_options`",
    "seed": "`seed` (derived from the request hash and the candidate)",
}


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _family_specs() -> list[ModelSpec]:
    return [get_model(endpoint_key(family, "text")) for family in families()]


def _endpoints() -> list[str]:
    rows = []
    for spec in _family_specs():
        keys = [k for k in model_keys() if get_model(k).family == spec.family]
        modes = ", ".join(f"`{k}`" + (" (default)" if k == DEFAULT_MODEL else "") for k in keys)
        rows.append((spec.label, modes))
    return _table(("family", "endpoint keys (text, edit[, sequential, edit-sequential])"), rows)


def _capabilities() -> list[str]:
    rows = []
    for spec in _family_specs():
        takes = ", ".join(text for name, text in FIELDS.items() if name in spec.takes) or "none"
        not_taken = ", ".join(text for name, text in FIELDS.items() if name not in spec.takes)
        rows.append((spec.label, takes, not_taken))
    return _table(("family", "optional fields it takes", "never sent (nor `stream`)"), rows)


def _limits() -> list[str]:
    rows = []
    for spec in _family_specs():
        tiers = ", ".join(sorted({t.size_tier for t in spec.tiers.values()}))
        rows.append(
            (
                spec.label,
                tiers,
                f"{spec.min_pixels:,} – {spec.max_pixels:,}",
                f"≤ {spec.max_references}",
                (f"≤ {spec.max_input_bytes // (1024 * 1024)} MB" if spec.max_input_bytes else "bytes not documented")
                + (f", ≤ {spec.max_input_pixels / 1e6:g} MP" if spec.max_input_pixels else ", pixels not documented"),
                str(spec.max_images),
                ", ".join(spec.output_formats),
            )
        )
    return _table(("family", "sizes", "pixels (W×H)", "refs", "each reference", "images per call", "output"), rows)


def _tiers() -> list[str]:
    rows = []
    for spec in _family_specs():
        rows.append((spec.label, *(spec.tiers[name].size_tier for name in ("draft", "standard", "high", "max"))))
    return _table(("family", "draft", "standard", "high", "max"), rows)


def _ids() -> list[str]:
    rows = []
    for spec in _family_specs():
        cells = [spec.label]
        for route in ROUTES:
            regions = spec.regions.get(route)
            if regions:
                cells.append("<br>".join(f"{region}: `{model}`" for region, model in regions.items()))
            else:
                cells.append(f"`{spec.provider_models[route]}`" if route in spec.provider_models else "—")
        rows.append(cells)
    return _table(("family", "Ark (per region)", "Replicate", "fal", "OpenAI", "Gemini", "BFL"), rows)


def _provider_limits() -> list[str]:
    rows = []
    for spec in _family_specs():
        for route in ROUTES:
            if route not in spec.provider_models:
                continue
            lim = spec.limits(route)
            rows.append(
                (
                    spec.label,
                    route,
                    f"≤ {lim.max_references}",
                    f"≤ {lim.max_images}",
                    f"≤ {lim.max_outputs_with_references}",
                    ", ".join(lim.output_formats),
                )
            )
    return _table(("family", "provider", "references per call", "images per call", "refs + images", "output"), rows)


def _prices() -> list[str]:
    rows = []
    for spec in _family_specs():
        for route, price in spec.prices.items():
            if price is None:
                unknown = "not known: estimated at a USD price of another route"
                rows.append((spec.label, f"`{route}`", unknown, _cite(spec.facts[f"prices.{route}"])))
            else:
                rows.append((spec.label, f"`{route}`", price.label(), _cite(price.fact)))
    return _table(("family", "route", "price per image", "source, checked"), rows)


def _cite(fact: Fact) -> str:
    kind = sources()[fact.source]["kind"]
    note = f": {fact.note}" if fact.note else ""
    return f"[{fact.source}] ({kind}) {fact.checked}{note}"


def _facts() -> list[str]:
    rows = []
    for spec in _family_specs():
        for name, fact in spec.facts.items():
            rows.append((spec.label, f"`{name}`", _cite(fact)))
    return _table(("family", "fact", "source, checked, note"), rows)


def _sources() -> list[str]:
    return _table(
        ("key", "kind", "source"),
        ((f"[{key}]", s["kind"], f"{s['title']} — {s['url']}") for key, s in sources().items()),
    )


def render() -> str:
    """The text of docs/models.md for the registry as it is now."""
    parts = [
        INTRO,
        "## Families and endpoint keys\n",
        *_endpoints(),
        "\nThe mode follows the shot: reference images make it an edit, `max_images` an identity set. A",
        "family without sequential generation has only the text and edit modes; `max_images` on it is",
        "an input error.\n",
        "## What each family takes\n",
        "A provider body holds only the optional fields the family takes: Seedream 5.0 Pro, 5.0 Flash",
        "and 5.5 answer HTTP 400 to any `sequential_image_generation` or `stream` field, even one that",
        "says `disabled`.\n",
        *_capabilities(),
        "\n## Limits\n",
        *_limits(),
        "\nQuality tiers pick the size tier; the aspect ratio then picks `WxH` from the recommended tables",
        "(2K 9:16 = `1600x2848`, 3K 9:16 = `2304x4096`, ...). A size outside the family's pixel range is",
        "an input error (for example Seedream 5.0 Pro at 2K 16:9, `2848x1600`, is over 4.19 MP).\n",
        *_tiers(),
        "\n## Model ids per provider\n",
        *_ids(),
        "\nfal adds the endpoint: `.../text-to-image`, or `.../edit` when the call has reference images.",
        "The request record keeps the registry's id (the first Ark id); Ark's region picks the id",
        "actually sent. A family a region does not serve is an input error naming the region",
        "(`providers.ark.region`). How each provider is called: docs/providers.md.\n",
        "## Limits per provider\n",
        "Where a provider accepts less (or more) than the family's own limits, `provider_limits` in the",
        "registry says so.\n",
        *_provider_limits(),
        '\n"Images per call" is `max_images` of an identity set; "refs + images" applies to calls with',
        "reference images. fal's output is taken to be PNG, so a batch moving to fal may have to change",
        "`output_format` (docs/decisions.md).\n",
        "## Prices\n",
        "Prices are list-price estimates per route: the provider, or `provider@region` where the region",
        "bills differently (Volcengine, `ark@cn-beijing`, bills in CNY). `imgbuild plan` and the `budget:`",
        "check use them. **The budget and every total are in USD**: a CNY price counts at",
        "`providers.ark.usd_per_cny` (required when a budget is set on such a route), and a route whose",
        "price is not known is estimated at the family's USD list price on another route. The `preview`",
        "provider costs nothing.\n",
        *_prices(),
        "\n## Sources of every limit\n",
        *_facts(),
        "\n## Sources\n",
        *_sources(),
    ]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":  # pragma: no cover - the docs command
    sys.stdout.write(render())
