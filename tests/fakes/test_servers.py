"""The loopback fake of Ark, Replicate and fal, checked with plain httpx calls."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from fakes.servers import FakeProviders

ARK_MODEL = "seedream-5-0-260128"
FAL_T2I = "fal-ai/bytedance/seedream/v5/lite/text-to-image"
FAL_EDIT = "fal-ai/bytedance/seedream/v4.5/edit"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # One client for the module: building one costs more than most of these tests.
    with httpx.Client(timeout=5) as http:
        yield http


def auth(fake: FakeProviders, provider: str) -> dict[str, str]:
    scheme = "Key" if provider == "fal" else "Bearer"
    return {"Authorization": f"{scheme} {fake.keys[provider]}"}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def ark_post(client: httpx.Client, fake: FakeProviders, **body: Any) -> httpx.Response:
    body = {"model": ARK_MODEL, "prompt": "a lighthouse", "size": "2K", "watermark": False, **body}
    return client.post(f"{fake.base_urls['ark']}/images/generations", json=body, headers=auth(fake, "ark"))


def wait_until(check: Any, timeout: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.01)


# -- Ark ----------------------------------------------------------------------------------------


def test_ark_text_to_image_answers_urls_that_download_as_jpeg(fake: FakeProviders, client: httpx.Client) -> None:
    response = ark_post(client, fake, size="2848x1600")
    assert response.status_code == 200
    answer = response.json()
    assert answer["model"] == ARK_MODEL and isinstance(answer["created"], int)
    assert answer["usage"] == {"generated_images": 1, "output_tokens": 17800, "total_tokens": 17800}
    [item] = answer["data"]
    assert item["size"] == "2848x1600"
    image = decode(client.get(item["url"]).content)
    assert image.format == "JPEG" and image.width > image.height
    assert fake.billed == Counter({"ark": 1})
    assert fake.bodies("ark")[0]["size"] == "2848x1600"
    assert sum(fake.downloads.values()) == 1
    # The URL is signed: dropping its query is refused, as by the real object store.
    assert client.get(item["url"].split("?")[0]).status_code == 403


def test_ark_sequential_b64_png_with_one_filtered_image(fake: FakeProviders, client: httpx.Client) -> None:
    response = ark_post(
        client,
        fake,
        prompt="three frames PARTIAL",
        output_format="png",
        response_format="b64_json",
        sequential_image_generation="auto",
        sequential_image_generation_options={"max_images": 3},
    )
    answer = response.json()
    assert [sorted(item) for item in answer["data"]] == [["b64_json", "size"], ["b64_json", "size"], ["error"]]
    assert answer["data"][2]["error"]["code"] == "OutputImageSensitiveContentDetected"
    assert answer["usage"]["generated_images"] == 2
    first, second = (base64.b64decode(item["b64_json"]) for item in answer["data"][:2])
    assert decode(first).format == "PNG" and first != second
    assert fake.billed_images["ark"] == 2


def test_ark_refusals_have_the_documented_shapes_and_are_not_billed(fake: FakeProviders, client: httpx.Client) -> None:
    url = f"{fake.base_urls['ark']}/images/generations"
    missing = client.post(url, json={"model": ARK_MODEL, "prompt": "x"})
    wrong = client.post(url, json={"model": ARK_MODEL, "prompt": "x"}, headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        error = response.json()["error"]
        assert (error["code"], error["param"], error["type"]) == ("AuthenticationError", "", "Unauthorized")
        assert error["message"].startswith("The API key in the request is missing or invalid. Request id: ")
    forbidden = ark_post(client, fake, prompt="a FORBIDDEN thing")
    assert forbidden.status_code == 400
    assert forbidden.json()["error"]["code"] == "InputTextSensitiveContentDetected"
    assert forbidden.json()["error"]["param"] == "prompt"
    unknown = ark_post(client, fake, model="seedream-9")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "InvalidEndpointOrModel.NotFound")
    too_small = ark_post(client, fake, size="1024x1024")
    assert (too_small.status_code, too_small.json()["error"]["param"]) == (400, "size")
    assert fake.billed == Counter()
    assert len(fake.creates("ark")) == 5  # recorded, though none was paid for


def test_ark_accepts_data_url_references_and_rejects_broken_ones(fake: FakeProviders, client: httpx.Client) -> None:
    png = io.BytesIO()
    Image.new("RGB", (20, 20), "red").save(png, "PNG")
    data_url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    assert ark_post(client, fake, image=[data_url]).status_code == 200
    broken = ark_post(client, fake, image="data:image/PNG;base64," + base64.b64encode(png.getvalue()).decode())
    assert (broken.status_code, broken.json()["error"]["param"]) == (400, "image")
    assert fake.billed["ark"] == 1


# -- Replicate ----------------------------------------------------------------------------------


def test_replicate_prediction_from_starting_to_succeeded(client: httpx.Client) -> None:
    with FakeProviders(latency=0.2) as fake:
        created = client.post(
            f"{fake.base_urls['replicate']}/models/bytedance/seedream-5-lite/predictions",
            json={"input": {"prompt": "a fox", "size": "2K", "aspect_ratio": "3:4"}},
            headers=auth(fake, "replicate"),
        )
        assert created.status_code == 201
        prediction = created.json()
        assert prediction["status"] == "starting" and prediction["output"] is None
        assert created.headers["location"] == prediction["urls"]["get"]
        poll = client.get(prediction["urls"]["get"], headers=auth(fake, "replicate")).json()
        assert poll["status"] in ("starting", "processing")
        done = wait_until(
            lambda: (
                (p := client.get(prediction["urls"]["get"], headers=auth(fake, "replicate")).json())["status"]
                == "succeeded"
                and p
            )
        )
        assert done["metrics"]["image_count"] == 1
        [url] = done["output"]
        image = decode(client.get(url).content)
        assert image.format == "PNG" and image.height > image.width  # 5-lite defaults to PNG
        # Cancelling a finished prediction changes nothing.
        again = client.post(prediction["urls"]["cancel"], headers=auth(fake, "replicate")).json()
        assert again["status"] == "succeeded"
        assert fake.billed == Counter({"replicate": 1})


def test_replicate_prefer_wait_sequential_jpeg_and_failures(fake: FakeProviders, client: httpx.Client) -> None:
    url = f"{fake.base_urls['replicate']}/models/bytedance/seedream-4.5/predictions"
    headers = {**auth(fake, "replicate"), "Prefer": "wait"}
    inputs = {"prompt": "frames", "size": "2K", "sequential_image_generation": "auto", "max_images": 3}
    done = client.post(url, json={"input": inputs}, headers=headers).json()
    assert done["status"] == "succeeded" and len(done["output"]) == 3
    assert all(decode(client.get(u).content).format == "JPEG" for u in done["output"])
    partial = client.post(url, json={"input": {**inputs, "prompt": "PARTIAL frames"}}, headers=headers).json()
    assert len(partial["output"]) == 2
    flagged = client.post(url, json={"input": {**inputs, "prompt": "FORBIDDEN"}}, headers=headers).json()
    assert flagged["status"] == "failed" and flagged["output"] is None
    assert flagged["error"].endswith("(E005)")
    invalid = client.post(url, json={"input": {"prompt": "x", "size": "3K"}}, headers=headers)
    assert invalid.status_code == 422 and invalid.json()["invalid_fields"][0]["field"] == "input.size"
    unauthenticated = client.post(url, json={"input": inputs})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }
    unknown = client.post(url.replace("seedream-4.5", "seedream-9"), json={"input": inputs}, headers=headers)
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not found."}
    assert fake.billed == Counter({"replicate": 3})


def test_replicate_cancel_and_a_new_client_resumes(client: httpx.Client) -> None:
    with FakeProviders(latency=0.15) as fake:
        url = f"{fake.base_urls['replicate']}/models/bytedance/seedream-4/predictions"
        slow = client.post(url, json={"input": {"prompt": "x"}}, headers=auth(fake, "replicate")).json()
        kept = client.post(url, json={"input": {"prompt": "y"}}, headers=auth(fake, "replicate")).json()
        canceled = client.post(slow["urls"]["cancel"], headers=auth(fake, "replicate")).json()
        assert canceled["status"] == "canceled"
        # Jobs live on the server: another client (as after a killed build) polls the same id.
        with httpx.Client(timeout=5) as other:
            time.sleep(0.16)
            assert other.get(slow["urls"]["get"], headers=auth(fake, "replicate")).json()["status"] == "canceled"
            assert other.get(kept["urls"]["get"], headers=auth(fake, "replicate")).json()["status"] == "succeeded"
        assert fake.job_status(kept["id"]) == "done"


def test_replicate_file_upload_is_recorded_and_usable_as_input(fake: FakeProviders, client: httpx.Client) -> None:
    png = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(png, "PNG")
    response = client.post(
        f"{fake.base_urls['replicate']}/files",
        files={"content": ("ref.png", png.getvalue(), "image/png")},
        data={"metadata": '{"asset": "a1"}'},
        headers=auth(fake, "replicate"),
    )
    assert response.status_code == 201
    described = response.json()
    assert described["content_type"] == "image/png" and described["size"] == len(png.getvalue())
    assert described["metadata"] == {"asset": "a1"} and len(described["checksums"]["sha256"]) == 64
    [upload] = fake.uploads
    assert (upload.provider, upload.data, upload.url) == ("replicate", png.getvalue(), described["urls"]["get"])
    inputs = {"prompt": "edit", "image_input": [described["urls"]["get"]]}
    prediction = client.post(
        f"{fake.base_urls['replicate']}/models/bytedance/seedream-4/predictions",
        json={"input": inputs},
        headers={**auth(fake, "replicate"), "Prefer": "wait=5"},
    ).json()
    assert prediction["status"] == "succeeded"


# -- fal ----------------------------------------------------------------------------------------


def test_fal_queue_from_in_queue_to_completed(client: httpx.Client) -> None:
    with FakeProviders(latency=0.2) as fake:
        submitted = client.post(
            f"{fake.base_urls['fal']}/{FAL_T2I}",
            json={"prompt": "a bay", "image_size": {"width": 2560, "height": 1440}, "num_images": 2, "max_images": 2},
            headers=auth(fake, "fal"),
        ).json()
        assert submitted["status"] == "IN_QUEUE"
        assert submitted["status_url"].startswith(f"{fake.url}/fal/fal-ai/bytedance/requests/")
        status = client.get(submitted["status_url"], headers=auth(fake, "fal"))
        assert status.status_code == 202 and status.json()["status"] in ("IN_QUEUE", "IN_PROGRESS")
        early = client.get(submitted["response_url"], headers=auth(fake, "fal"))
        assert (early.status_code, early.json()) == (400, {"detail": "Request is still in progress"})
        assert wait_until(
            lambda: client.get(submitted["status_url"], headers=auth(fake, "fal")).json()["status"] == "COMPLETED"
        )
        result = client.get(submitted["response_url"], headers=auth(fake, "fal")).json()
        assert len(result["images"]) == 4 and isinstance(result["seed"], int)
        first = result["images"][0]
        assert (first["content_type"], first["width"], first["height"]) == ("image/png", 2560, 1440)
        image = decode(client.get(first["url"]).content)
        assert image.format == "PNG" and image.width > image.height
        late = client.put(submitted["cancel_url"], headers=auth(fake, "fal"))
        assert (late.status_code, late.json()) == (400, {"status": "ALREADY_COMPLETED"})
        assert fake.billed == Counter({"fal": 1}) and fake.billed_images["fal"] == 4


def test_fal_content_filter_surfaces_on_the_result(fake: FakeProviders, client: httpx.Client) -> None:
    submitted = client.post(
        f"{fake.base_urls['fal']}/{FAL_T2I}", json={"prompt": "FORBIDDEN"}, headers=auth(fake, "fal")
    ).json()
    assert client.get(submitted["status_url"], headers=auth(fake, "fal")).json()["status"] == "COMPLETED"
    result = client.get(submitted["response_url"], headers=auth(fake, "fal"))
    assert result.status_code == 422
    assert result.json()["detail"][0]["type"] == "content_policy_violation"
    wrong_key = client.post(
        f"{fake.base_urls['fal']}/{FAL_T2I}", json={"prompt": "x"}, headers={"Authorization": "Key x"}
    )
    assert (wrong_key.status_code, wrong_key.json()) == (401, {"detail": "Invalid key"})
    unknown = client.post(f"{fake.base_urls['fal']}/fal-ai/nope/v1", json={"prompt": "x"}, headers=auth(fake, "fal"))
    assert unknown.status_code == 404


def test_fal_cancel_while_queued(client: httpx.Client) -> None:
    with FakeProviders(latency=5) as fake:
        submitted = client.post(
            f"{fake.base_urls['fal']}/{FAL_T2I}", json={"prompt": "x"}, headers=auth(fake, "fal")
        ).json()
        cancel = client.put(submitted["cancel_url"], headers=auth(fake, "fal"))
        assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
        assert fake.job_status(submitted["request_id"]) == "canceled"


def test_fal_storage_upload_then_edit_with_it(fake: FakeProviders, client: httpx.Client) -> None:
    png = io.BytesIO()
    Image.new("RGB", (16, 16), "green").save(png, "PNG")
    initiated = client.post(
        f"{fake.base_urls['fal_storage']}/storage/upload/initiate",
        params={"storage_type": "fal-cdn-v3"},
        json={"content_type": "image/png", "file_name": "ref.png"},
        headers=auth(fake, "fal"),
    ).json()
    assert client.get(initiated["file_url"]).status_code == 404  # nothing there before the PUT
    put = client.put(initiated["upload_url"], content=png.getvalue(), headers={"Content-Type": "image/png"})
    assert put.status_code == 200
    assert client.get(initiated["file_url"]).content == png.getvalue()
    assert [(u.provider, u.data, u.url) for u in fake.uploads] == [("fal", png.getvalue(), initiated["file_url"])]
    submitted = client.post(
        f"{fake.base_urls['fal']}/{FAL_EDIT}",
        json={"prompt": "edit", "image_urls": [initiated["file_url"]]},
        headers=auth(fake, "fal"),
    ).json()
    assert client.get(submitted["response_url"], headers=auth(fake, "fal")).status_code == 200
    no_refs = client.post(f"{fake.base_urls['fal']}/{FAL_EDIT}", json={"prompt": "edit"}, headers=auth(fake, "fal"))
    assert no_refs.status_code == 422


# -- faults and load ------------------------------------------------------------------------------


def test_fault_injection_rates_and_faulted_creates_are_not_billed(client: httpx.Client) -> None:
    outcomes: Counter[str] = Counter()
    with FakeProviders(fault_rate=0.3, seed=7) as fake:
        for _ in range(200):
            try:
                response = ark_post(client, fake, size="2048x2048")
            except httpx.RemoteProtocolError:
                outcomes["drop"] += 1
                continue
            outcomes[str(response.status_code)] += 1
            if response.status_code == 429:
                assert response.headers["retry-after"] == "0"
                assert response.json()["error"]["code"] == "RateLimitExceeded.EndpointRPMExceeded"
            if response.status_code == 500:
                assert response.json()["error"]["code"] == "InternalServiceError"
        faults = Counter(r.fault for r in fake.requests if r.fault)
    assert sum(outcomes.values()) == 200
    assert faults == Counter({k: outcomes[k] for k in ("429", "500", "drop")})
    assert 35 <= sum(faults.values()) <= 85  # 60 expected
    assert all(faults[k] >= 5 for k in ("429", "500", "drop"))
    assert fake.billed["ark"] == outcomes["200"] == len(fake.creates("ark"))


def test_cut_download_raises_in_httpx(fake: FakeProviders, client: httpx.Client) -> None:
    url = ark_post(client, fake).json()["data"][0]["url"]
    fake.cut_rate = 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)
    fake.cut_rate = 0.0
    assert decode(client.get(url).content).format == "JPEG"
    assert [r.fault for r in fake.calls(kind="download")] == ["cut", None]


def test_two_dozen_concurrent_clients_are_served_in_parallel(client: httpx.Client) -> None:
    with FakeProviders(latency=0.25) as fake:
        statuses: list[int] = []

        def one() -> None:
            statuses.append(ark_post(client, fake).status_code)  # httpx.Client is thread-safe

        threads = [threading.Thread(target=one) for _ in range(24)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    assert statuses == [200] * 24
    assert elapsed < 3.0  # 6 s if they were served one by one
    assert fake.billed["ark"] == 24
