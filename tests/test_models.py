"""The model registry as a contract: cited facts, the generated docs page, and the exact body each
provider is sent for every family and mode, with the fields a family does not take never sent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import PERSONA, REPO, model_batch, write_project

from imgbuild.modeldoc import render
from imgbuild.models import endpoint_key, families, get_model, model_keys, sources
from imgbuild.providers import Call, create_provider
from imgbuild.providers.bfl import seed_of
from imgbuild.resolve import resolve

# -- the registry's facts ----------------------------------------------------------------------------

LIMITS = ("regions", "takes", "max_references", "max_input_bytes", "max_input_pixels", "pixels", "max_images")


def test_docs_models_md_is_generated_from_the_registry() -> None:
    page = (REPO / "docs" / "models.md").read_text(encoding="utf-8")
    assert page == render(), "docs/models.md is stale: python -m imgbuild.modeldoc > docs/models.md"


def test_every_limit_and_price_names_its_source_and_the_date_it_was_checked() -> None:
    known = sources()
    for family in families():
        spec = get_model(endpoint_key(family, "text"))
        cited = set(spec.facts)
        assert set(LIMITS) <= cited, family
        assert {f"provider_limits.{p}" for p in spec.provider_limits} <= cited, family
        for name, fact in spec.facts.items():
            assert fact.source in known, (family, name)
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", fact.checked), (family, name)
        served = {p for p in spec.provider_models if p != "preview"}
        assert served <= {route.split("@")[0] for route in spec.prices}, family  # known or said unknown
        for route, price in spec.prices.items():
            fact = price.fact if price is not None else spec.facts[f"prices.{route}"]
            assert fact.source in known and fact.checked, (family, route)


def test_families_without_sequential_generation_have_no_sequential_endpoint() -> None:
    for key in model_keys():
        spec = get_model(key)
        assert spec.sequential <= ("sequential" in spec.takes), key
    assert "image-seedream-v5-pro-sequential" not in model_keys()
    assert "image-seedream-v5-lite-edit-sequential" in model_keys()


# -- exact bodies --------------------------------------------------------------------------------------

PROMPT = "Photo of Mia Tan, oval face, light freckles, wearing a cream sweater, in a home office, morning light."
REF = "data:image/png;base64,iVBORw0KGgo="  # as uploads hand it over; hosted routes get a URL the same way


class Family:
    """What the provider documentation says each family's body holds (written out, not derived)."""

    def __init__(
        self,
        key: str,
        ark: str | None,
        replicate: str | None,
        fal: str | None,
        *,
        png: bool,
        sequential: bool,
        openai: str | None = None,
        gemini: str | None = None,
        bfl: str | None = None,
    ) -> None:
        self.key, self.png, self.sequential = key, png, sequential
        self.ids = {"ark": ark, "replicate": replicate, "fal": fal, "openai": openai, "gemini": gemini, "bfl": bfl}


FAMILIES = {
    "seedream-5.0-lite": Family(
        "image-seedream-v5-lite",
        "seedream-5-0-260128",
        "bytedance/seedream-5-lite",
        "fal-ai/bytedance/seedream/v5/lite",
        png=True,
        sequential=True,
    ),
    "seedream-4.5": Family(
        "image-seedream-v4.5",
        "seedream-4-5-251128",
        "bytedance/seedream-4.5",
        "fal-ai/bytedance/seedream/v4.5",
        png=False,
        sequential=True,
    ),
    "seedream-4.0": Family(
        "image-seedream-v4",
        "seedream-4-0-250828",
        "bytedance/seedream-4",
        "fal-ai/bytedance/seedream/v4",
        png=False,
        sequential=True,
    ),
    "seedream-5.0-pro": Family(
        "image-seedream-v5-pro",
        "seedream-5-0-pro-260628",
        "bytedance/seedream-5-pro",
        "fal-ai/bytedance/seedream/v5/pro",
        png=True,
        sequential=False,
    ),
    "seedream-5.0-flash": Family(
        "image-seedream-v5-flash",
        "seedream-5-0-flash-260915",
        None,
        "fal-ai/bytedance/seedream/v5/flash",
        png=True,
        sequential=False,
    ),
    "seedream-5.5": Family("image-seedream-v5.5", "seedream-5-5-261028", None, None, png=True, sequential=False),
}
FAMILIES["gpt-image-2"] = Family(
    "image-gpt-image-2", None, None, None, png=True, sequential=False, openai="gpt-image-2"
)
for flux in ("pro", "max"):
    FAMILIES[f"flux-2-{flux}"] = Family(
        f"image-flux-2-{flux}", None, None, None, png=True, sequential=False, bfl=f"flux-2-{flux}"
    )
FAMILIES["gemini-3.1-flash-image"] = Family(
    "image-nano-banana-2", None, None, None, png=False, sequential=False, gemini="gemini-3.1-flash-image"
)
FAMILIES["gemini-3-pro-image"] = Family(
    "image-nano-banana-pro", None, None, None, png=False, sequential=False, gemini="gemini-3-pro-image-preview"
)
ROUTE_NAMES = ("ark", "replicate", "fal", "openai", "gemini", "bfl")
ROUTES = [(f, r) for f, fam in FAMILIES.items() for r in ROUTE_NAMES if fam.ids[r]]
KEYS = {
    "ark": "ARK_API_KEY",
    "replicate": "REPLICATE_API_TOKEN",
    "fal": "FAL_KEY",
    "openai": "OPENAI_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "bfl": "BFL_API_KEY",
}


def modes_batch(family: Family, output_format: str, quality: str = "standard") -> str:
    shots = [
        "  - id: text\n    need: text to image\n    template: cover.j2\n",
        "  - id: edit\n    need: an edit\n    template: cover.j2\n    references:\n      - path: refs/face.png\n",
    ]
    if family.sequential:
        shots += [
            "  - id: set\n    need: an identity set\n    template: cover.j2\n    max_images: 3\n",
            "  - id: edit-set\n    need: an edited set\n    template: cover.j2\n    max_images: 2\n"
            "    references:\n      - path: refs/face.png\n",
        ]
    return model_batch(f"{family.key}-text", "".join(shots), quality=quality, output_format=output_format)


def bodies_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: str, batch: str, config: str = ""
) -> dict[str, dict[str, Any]]:
    """shot id -> the body `route` would be sent for it (no call is made)."""
    root = write_project(
        tmp_path / "p",
        batches={"covers": batch},
        personas={"mia": PERSONA},
        config=f"provider: {route}\n{config}",
    )
    (root / "refs").mkdir()
    (root / "refs" / "face.png").write_bytes(_tiny_png())
    monkeypatch.setenv(KEYS[route], "test-key")
    resolution = resolve(root, use_cache=False)
    provider = create_provider(route, root, resolution.project.config.providers.get(route, {}))
    try:
        out = {}
        for req in resolution.all_requests():
            call = Call(req, 1, "run", reference_urls=(REF,) if req.references else ())
            out[req.shot] = provider.request_body(call)
            if route == "fal":
                out[req.shot]["<endpoint>"] = provider.endpoint(call)  # type: ignore[attr-defined]
            if route == "bfl":  # the seed comes from the request hash and the candidate
                assert out[req.shot]["seed"] == seed_of(req.request_hash, 1)
                out[req.shot]["seed"] = "<seed>"
        return out
    finally:
        provider.close()


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def expected(family: Family, route: str, shot: str, output_format: str) -> dict[str, Any]:
    edit, images = shot.startswith("edit"), {"text": 1, "edit": 1, "set": 3, "edit-set": 2}[shot]
    model = family.ids[route]
    if route == "ark":
        body: dict[str, Any] = {
            "model": model,
            "prompt": PROMPT,
            "size": "2048x2048",
            "response_format": "url",
            "watermark": False,
        }
        if edit:
            body["image"] = [REF]
        if family.sequential:
            body["sequential_image_generation"] = "auto" if images > 1 else "disabled"
            if images > 1:
                body["sequential_image_generation_options"] = {"max_images": images}
        if family.png:
            body["output_format"] = output_format
        return body
    if route == "bfl":  # seeded; references as input_image, input_image_2, ...; 1 MP at standard
        body = {"prompt": PROMPT, "width": 1024, "height": 1024, "seed": "<seed>", "output_format": output_format}
        return body | ({"input_image": REF} if edit else {})
    if route == "gemini":  # the prompt and every reference as parts of one turn; size tier 1K at standard
        parts: list[dict[str, Any]] = [{"text": PROMPT}]
        if edit:
            parts.append({"inlineData": {"mimeType": "image/png", "data": REF.split(",")[1]}})
        config = {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"}}
        return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    if route == "openai":  # quality from the tier (standard: medium), size from the gpt-1K table
        body = {"model": model, "prompt": PROMPT, "size": "1024x1024", "quality": "medium", "output_format": "png"}
        return body | ({"image[]": [REF]} if edit else {})
    if route == "replicate":
        inputs: dict[str, Any] = {"prompt": PROMPT, "size": "2K", "aspect_ratio": "1:1"}
        if family.sequential:
            inputs |= {"sequential_image_generation": "auto" if images > 1 else "disabled", "max_images": images}
        if edit:
            inputs["image_input"] = [REF]
        if family.png:
            inputs["output_format"] = output_format
        return {"input": inputs}
    body = {"prompt": PROMPT, "image_size": {"width": 2048, "height": 2048}, "num_images": 1}
    if family.sequential:
        body["max_images"] = images
    if edit:
        body["image_urls"] = [REF]
    body["<endpoint>"] = f"{model}/{'edit' if edit else 'text-to-image'}"
    return body


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    return set()


@pytest.mark.parametrize(("family", "route"), ROUTES, ids=[f"{f}-{r}" for f, r in ROUTES])
def test_each_family_route_and_mode_sends_its_exact_body(
    family: str, route: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fam = FAMILIES[family]
    output_format = "png" if fam.png or route in ("fal", "gemini") else "jpeg"
    sent = bodies_sent(tmp_path, monkeypatch, route, modes_batch(fam, output_format))
    shots = ["text", "edit", "set", "edit-set"] if fam.sequential else ["text", "edit"]
    assert sorted(sent) == sorted(shots)
    for shot in shots:
        assert sent[shot] == expected(fam, route, shot, output_format), shot
        fields = keys_of(sent[shot])
        if not fam.sequential:  # 5.0 Pro, Flash and 5.5 answer 400 to these, even "disabled"
            assert not fields & {"sequential_image_generation", "sequential_image_generation_options", "stream"}
            assert "max_images" not in fields
        if not fam.png:
            assert "output_format" not in fields
        if family.startswith("seedream"):
            assert "seed" not in fields  # no Seedream family documents a seed


def test_fast_prompt_optimisation_is_sent_to_4_0_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = bodies_sent(tmp_path, monkeypatch, "ark", modes_batch(FAMILIES["seedream-4.0"], "jpeg", quality="draft"))
    assert sent["text"]["optimize_prompt_options"] == {"mode": "fast"}
    assert sent["text"]["size"] == "1024x1024"
    pro = bodies_sent(
        tmp_path / "pro", monkeypatch, "ark", modes_batch(FAMILIES["seedream-5.0-pro"], "png", quality="draft")
    )
    assert "optimize_prompt_options" not in pro["text"]
    assert pro["text"]["size"] == "1024x1024"


def test_volcengine_gets_its_own_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = "providers:\n  ark:\n    region: cn-beijing\n"
    sent = bodies_sent(tmp_path, monkeypatch, "ark", modes_batch(FAMILIES["seedream-5.0-pro"], "png"), config)
    assert sent["text"]["model"] == "doubao-seedream-5-0-pro-260628"
    assert "sequential_image_generation" not in sent["edit"]
