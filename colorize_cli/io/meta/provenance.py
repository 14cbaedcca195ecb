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
from colorize_cli.io.meta.source import xmp_encoding

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
    model_sha256: str = ""  # the weights file's own sha256 (a user's checkpoint: hashed at load)
    model_family: str = ""  # chromanet, ddcolor, eccv16, siggraph17, ...
    source_name: str = ""  # the original's file name
    source_sha256: str = ""
    tool: str = "colorize-cli"
    version: str = __version__

    def description(self, about: bytes = b"") -> bytes:
        """Our rdf:Description; `about` is the packet's own rdf:about (already XML-escaped), which
        every description of a packet must share (exiftool -validate: "Different 'rdf:about'")."""
        attrs = {
            "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
            "colorize:Tool": self.tool,
            "colorize:Version": self.version,
            "colorize:Model": self.model_name or "unknown",
            "colorize:ModelSHA256": self.model_sha256 or "unknown",
            "colorize:ModelFamily": self.model_family or "unknown",
            "colorize:SourceSHA256": self.source_sha256 or "unknown",
        }
        text = (
            f'<rdf:Description rdf:about="{about.decode("utf-8", "replace")}"'
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


def well_formed(xmp: bytes) -> bool:
    """An XMP packet that parses as XML (UTF-8)."""
    try:
        ET.fromstring(xmp.strip(b"\x00 \t\r\n").decode("utf-8"))
    except (ET.ParseError, UnicodeDecodeError):
        return False
    return True


_ABOUT = re.compile(rb"""<rdf:Description\b[^>]*?\s(?:rdf:)?about=(["'])(.*?)\1""", re.S)  # old XMP: no rdf:
def merge(xmp: bytes | None, provenance: Provenance, notes: list[str]) -> bytes:
    """The input's XMP with the provenance description added (a new packet when it has none),
    in the input's own encoding (UTF-8, or UTF-16/32 as some writers store it)."""
    if not xmp:
        return _packet(provenance.description())
    encoding = xmp_encoding(xmp)
    if encoding != "utf-8":
        try:
            text = xmp.decode(encoding).encode("utf-8")
        except UnicodeError:
            notes.append(f"XMP replaced: the input's XMP is not valid {encoding.upper()}, only the provenance is written")
            return _packet(provenance.description())
        merged = merge(text, provenance, notes)
        return merged.decode("utf-8").encode(encoding) if merged.startswith(text[:20]) else merged
    kept = _OURS.sub(b"", xmp)
    for pattern in _REPLACED:
        kept = pattern.sub(b"", kept)
    about = _ABOUT.search(kept)
    ours = provenance.description(about.group(2) if about else b"")
    end = kept.rfind(b"</rdf:RDF>")
    merged = kept[:end] + ours + b" " + kept[end:] if end >= 0 else b""
    if end < 0 or not well_formed(merged):
        notes.append("XMP replaced: the input's XMP is not well-formed, only the provenance is written")
        return _packet(provenance.description())
    return merged
