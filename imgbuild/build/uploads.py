"""Reference images of an edit, made reachable for the provider: reused while their URL is
valid, else uploaded once (candidates made at once share the upload) and recorded."""

from __future__ import annotations

import hashlib
import time

from imgbuild.build.images import as_jpeg
from imgbuild.errors import AssetFailed
from imgbuild.models import get_model
from imgbuild.providers import Call, Provider
from imgbuild.records import AssetStore, UploadCache, duration, utc_now
from imgbuild.requests import ImageRequest, Reference

__all__ = ["ReferenceUploads"]


class ReferenceUploads:
    def __init__(self, store: AssetStore, provider_name: str) -> None:
        self.store = store
        self.provider_name = provider_name
        self.cache = UploadCache(store.state_dir / "uploads.json", store.temp_dir)

    def urls(self, provider: Provider, req: ImageRequest) -> tuple[str, ...]:
        """A provider-readable URL per reference image of `req`."""
        return tuple(self.url(provider, req, ref) for ref in req.references)

    def url(self, provider: Provider, req: ImageRequest, ref: Reference, *, fresh: bool = False) -> str:
        """A provider-readable URL of `ref`, recorded in `req`'s asset folder when uploaded now
        (`fresh`: upload even when the cache holds a valid URL: `imgbuild upload`)."""
        with self.cache.uploading(self.provider_name, ref.sha256):
            cached = None if fresh else self.cache.get(self.provider_name, ref.sha256)
            return cached or self._upload(provider, req, ref)

    def _upload(self, provider: Provider, req: ImageRequest, ref: Reference) -> str:
        data = self.store.read_bytes(ref.path)
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise AssetFailed(f"{req.asset_id}: reference image {ref.path} changed since the plan; run again")
        limit = get_model(req.model).max_input_bytes
        transcoded = None
        if len(data) > limit:
            original = len(data)
            data = as_jpeg(data)
            if len(data) > limit:
                raise AssetFailed(f"{req.asset_id}: reference image {ref.path} is over {limit} bytes even as JPEG")
            transcoded = {"from_bytes": original, "to_bytes": len(data), "format": "jpeg", "quality": 92}
        upload_id = self.store.new_run_id(req.asset_dir, f"upload:{ref.sha256}")
        call = Call(req, 0, upload_id)
        request = {
            "upload_id": upload_id,
            "provider": self.provider_name,
            "reference": ref.record(),
            "bytes": len(data),
            "transcoded": transcoded,
            "submitted": utc_now(),
        }
        self.store.start_upload(req.asset_dir, upload_id, request)
        started = time.monotonic()
        try:
            upload = provider.upload(call, ref, data)
        finally:
            self.store.append_exchanges(req.asset_dir, upload_id, call.log, kind="upload")
        shown = upload.url if not upload.url.startswith("data:") else "(inline data URL)"
        self.store.record_upload(
            req.asset_dir,
            req.asset_id,
            upload_id,
            raw=upload.raw,
            manifest={
                "upload_id": upload_id,
                "reference": ref.record(),
                "url": shown,
                "expires": upload.expires,
                "timings": {"seconds": duration(time.monotonic() - started)},
                "completed": utc_now(),
            },
            exchanges=call.log,
            shown_url=shown,
            reference=ref.record(),
        )
        self.cache.put(self.provider_name, ref.sha256, upload.url, upload.expires)
        return upload.url
