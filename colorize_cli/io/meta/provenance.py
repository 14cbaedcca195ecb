"""Provenance XMP: every output says it was colorized by a trained model, with what, and from
which original, so an archive never mistakes a colorized copy for a colour original.

Written as one rdf:Description of its own, added to the input's XMP packet (a packet may hold
several; the input's own descriptions stay as they were, byte for byte). Properties it replaces
are removed from the input's descriptions first, so none appears twice: a DigitalSourceType
(the copy's source type is no longer the original's), a DerivedFrom, and the description an
earlier run of this tool added.

Iptc4xmpExt:DigitalSourceType is IPTC's `compositeWithTrainedAlgorithmicMedia`: the image is a
real photograph (its tones are the captured ones) combined with content a trained model made
(every pixel's colour). `trainedAlgorithmicMedia` would call the whole picture AI-made, and
`algorithmicallyEnhanced` is for minor corrections that add no new content (see README).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from colorize_cli import __version__

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
NAMESPACE = "https://colorize-cli.invalid/ns/provenance/1.0/"  # this tool's own XMP namespace
_OURS = re.compile(rb"<rdf:Description\b[^>]*xmlns:colorize=\"" + re.escape(NAMESPACE.encode()) + rb"\".*?</rdf:Description>\s*", re.S)
_REPLACED = [
    re.compile(rb"\s+[\w.-]+:DigitalSourceType=\"[^\"]*\""),
    re.compile(rb"<([\w.-]+):DigitalSourceType\b[^>]*?/>\s*", re.S),
    re.compile(rb"<([\w.-]+):DigitalSourceType\b[^>]*>.*?</\1:DigitalSourceType>\s*", re.S),
    re.compile(rb"<([\w.-]+):DerivedFrom\b[^>]*?/>\s*", re.S),
    re.compile(rb"<([\w.-]+):DerivedFrom\b[^>]*>.*?</\1:DerivedFrom>\s*", re.S),
]


@dataclass(frozen=True)
class Provenance:
    """Who made an output from what."""

    model_name: str = ""
    model_sha256: str = ""
    source_name: str = ""  # the original's file name
    source_sha256: str = ""
    tool: str = "colorize-cli"
    version: str = __version__

    def description(self) -> bytes:
        attrs = {
            "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
            "colorize:Tool": self.tool,
            "colorize:Version": self.version,
            "colorize:Model": self.model_name or "unknown",
            "colorize:ModelSHA256": self.model_sha256 or "unknown",
            "colorize:SourceSHA256": self.source_sha256 or "unknown",
        }
        text = (
            '<rdf:Description rdf:about=""'
            ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
            ' xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"'
            ' xmlns:stRef="http://ns.adobe.com/xap/1.0/sType/ResourceRef#"'
            f' xmlns:colorize="{NAMESPACE}"'
            + "".join(f"\n   {k}={quoteattr(v)}" for k, v in attrs.items())
            + ">\n   <xmpMM:DerivedFrom rdf:parseType=\"Resource\">\n"
            f"    <stRef:filePath>{escape(self.source_name or 'unknown')}</stRef:filePath>\n"
            "   </xmpMM:DerivedFrom>\n  </rdf:Description>\n"
        )
        return text.encode("utf-8")


def _packet(body: bytes) -> bytes:
    return (
        b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n  '
        + body
        + b" </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>"
    )


def _well_formed(xmp: bytes) -> bool:
    try:
        ET.fromstring(xmp.strip(b"\x00 \t\r\n"))
    except ET.ParseError:
        return False
    return True


def merge(xmp: bytes | None, provenance: Provenance, notes: list[str]) -> bytes:
    """The input's XMP with the provenance description added (a new packet when it has none)."""
    ours = provenance.description()
    if not xmp:
        return _packet(ours)
    kept = _OURS.sub(b"", xmp)
    for pattern in _REPLACED:
        kept = pattern.sub(b"", kept)
    end = kept.rfind(b"</rdf:RDF>")
    merged = kept[:end] + ours + b" " + kept[end:] if end >= 0 else b""
    if end < 0 or not _well_formed(merged):
        notes.append("XMP replaced: the input's XMP is not well-formed, only the provenance is written")
        return _packet(ours)
    return merged
