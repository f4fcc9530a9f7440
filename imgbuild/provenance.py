"""Provenance in the file: an XMP packet saying the image is AI-generated, by what, for which asset.

The packet carries IPTC's ``DigitalSourceType`` ``trainedAlgorithmicMedia`` (the value the IPTC
and C2PA guidance asks for on generated media), IPTC 2025.1's ``AISystemUsed`` and
``AISystemVersionUsed`` (the model key and the provider's model id), and in imgbuild's own
namespace the asset id, request hash and provider. It goes into a copy of the image *without
re-encoding the pixels*: a PNG gets an ``iTXt`` chunk with the keyword ``XML:com.adobe.xmp``
after ``IHDR``, a JPEG an ``APP1`` segment with the XMP signature after ``SOI`` and the JFIF /
Exif segments, as the XMP specification (part 3) places them. Every other byte is kept, so
the pixels are the provider's.

Hand-written because no kept library does this without re-encoding: Pillow writes XMP only while
saving (it encodes the pixels again), and python-xmp-toolkit needs the Exempi C library.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "IMGBUILD_NS",
    "C2paSigner",
    "Provenance",
    "ProvenanceError",
    "embed_xmp",
    "sign_c2pa",
    "xmp_packet",
]

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IMGBUILD_NS = "https://imgbuild.dev/ns/xmp/1.0/"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEYWORD = b"XML:com.adobe.xmp"
_JPEG_XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_MAX_SEGMENT = 0xFFFF - 2  # a segment's length field counts itself


class ProvenanceError(ValueError):
    """The image cannot carry the packet (not a PNG or JPEG, damaged, packet too large)."""


@dataclass(frozen=True)
class Provenance:
    """What the packet states about one exported image."""

    asset_id: str
    request_hash: str
    model: str  # imgbuild's model key: the AI system
    provider_model: str  # the provider's model id: its version
    provider: str
    creator_tool: str  # "imgbuild 0.1.0"

    def fields(self) -> Mapping[str, str]:
        return {
            "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
            "Iptc4xmpExt:AISystemUsed": self.model,
            "Iptc4xmpExt:AISystemVersionUsed": self.provider_model,
            "xmp:CreatorTool": self.creator_tool,
            "imgbuild:AssetID": self.asset_id,
            "imgbuild:RequestHash": self.request_hash,
            "imgbuild:Provider": self.provider,
        }


def xmp_packet(provenance: Provenance) -> bytes:
    """The XMP packet (UTF-8, with the standard wrapper, read-only: no padding)."""
    properties = "\n".join(f"   <{name}>{escape(value)}</{name}>" for name, value in provenance.fields().items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:imgbuild="{IMGBUILD_NS}">\n'
        f"{properties}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    ).encode()


def embed_xmp(data: bytes, packet: bytes) -> bytes:
    """`data` (a PNG or a JPEG) with `packet` as its XMP, replacing any XMP it had; every other
    byte unchanged. Raises ProvenanceError."""
    if data.startswith(_PNG_SIGNATURE):
        return _embed_png(data, packet)
    if data.startswith(b"\xff\xd8"):
        return _embed_jpeg(data, packet)
    raise ProvenanceError("only PNG and JPEG images can carry the XMP packet")


def _embed_png(data: bytes, packet: bytes) -> bytes:
    chunks = []
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise ProvenanceError("the PNG is truncated")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ProvenanceError(f"the PNG's {kind!r} chunk is truncated")
        body = data[pos + 8 : pos + 8 + length]
        if not (kind == b"iTXt" and body.startswith(_PNG_KEYWORD + b"\x00")):
            chunks.append((kind, data[pos:end]))
        pos = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR":
        raise ProvenanceError("the PNG does not start with IHDR")
    # keyword, null, compression flag 0 and method 0, empty language tag and translated keyword
    body = _PNG_KEYWORD + b"\x00\x00\x00\x00\x00" + packet
    itxt = struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", zlib.crc32(b"iTXt" + body))
    return _PNG_SIGNATURE + chunks[0][1] + itxt + b"".join(raw for _, raw in chunks[1:]) + data[pos:]


def _embed_jpeg(data: bytes, packet: bytes) -> bytes:
    if len(_JPEG_XMP_SIGNATURE) + len(packet) > _JPEG_MAX_SEGMENT:
        raise ProvenanceError("the XMP packet is too large for one JPEG APP1 segment")
    segments: list[tuple[int, bytes]] = []  # the APPn and COM segments after SOI, XMP left out
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and (0xE0 <= data[pos + 1] <= 0xEF or data[pos + 1] == 0xFE):
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos : pos + 2 + length]
        if length < 2 or len(segment) != 2 + length:
            raise ProvenanceError("the JPEG is truncated")
        if not (marker == 0xE1 and segment[4:].startswith(_JPEG_XMP_SIGNATURE)):
            segments.append((marker, segment))
        pos += 2 + length
    # After JFIF (APP0) and Exif (APP1), as the XMP specification places it.
    at = 0
    while at < len(segments) and segments[at][0] in (0xE0, 0xE1):
        at += 1
    body = _JPEG_XMP_SIGNATURE + packet
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    kept = [segment for _, segment in segments]
    return data[:2] + b"".join(kept[:at]) + app1 + b"".join(kept[at:]) + data[pos:]


# -- C2PA (optional: the `c2pa` extra) ---------------------------------------------------------------


@dataclass(frozen=True)
class C2paSigner:
    """A user's signing certificate chain and private key (PEM), for C2PA Content Credentials."""

    cert_chain: bytes  # the signing certificate first, then its issuers
    private_key: bytes
    alg: str = "es256"  # es256, es384, es512, ps256, ps384, ps512, ed25519


def sign_c2pa(data: bytes, mime: str, signer: C2paSigner, provenance: Provenance) -> bytes:
    """`data` with a signed C2PA manifest: created by `trainedAlgorithmicMedia`, the model as the
    software agent, and imgbuild's asset id and request hash. The c2pa-python library (the
    Content Authenticity Initiative's own) writes and signs it; the pixels are not re-encoded.
    Raises ProvenanceError when the library is missing or refuses the certificate or key."""
    try:
        import c2pa
    except ImportError:
        raise ProvenanceError("C2PA signing needs the c2pa extra: python3 -m pip install 'imgbuild[c2pa]'") from None
    import io
    import json

    manifest = {
        "claim_generator_info": [{"name": "imgbuild", "version": provenance.creator_tool.removeprefix("imgbuild ")}],
        "title": provenance.asset_id,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": {"name": provenance.model, "version": provenance.provider_model},
                        }
                    ]
                },
            },
            {
                "label": "dev.imgbuild.asset",
                "data": {
                    "asset_id": provenance.asset_id,
                    "request_hash": provenance.request_hash,
                    "provider": provenance.provider,
                },
            },
        ],
    }
    try:
        alg = getattr(c2pa.C2paSigningAlg, signer.alg.upper())
    except AttributeError:
        raise ProvenanceError(f"unknown C2PA signing algorithm {signer.alg!r}") from None
    try:
        info = c2pa.C2paSignerInfo(alg, signer.cert_chain, signer.private_key, None)
        with c2pa.Signer.from_info(info) as c2pa_signer, c2pa.Builder.from_json(json.dumps(manifest)) as builder:
            out = io.BytesIO()
            builder.sign(c2pa_signer, mime, io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing failed: {exc}") from exc
    return out.getvalue()
