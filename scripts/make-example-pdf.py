#!/usr/bin/env python3
"""Regenerate examples/docs/whitepaper/driftwood-architecture.pdf.

Writes a small, valid two-page PDF by hand, using only the standard library:
the standard Type1 fonts Helvetica and Helvetica-Bold (no embedding), text drawn
with BT/ET operators, and a cross-reference table with exact byte offsets. The
output is deterministic, so rerunning the script reproduces the committed file.

Usage: python3 scripts/make-example-pdf.py [OUTPUT]
"""

import os
import sys

PAGE_W, PAGE_H = 612, 792  # US Letter, in points
MARGIN = 72
TEXT_W = PAGE_W - 2 * MARGIN

# Advance widths of Helvetica (per 1000 em) for ASCII 32..126, from the standard AFM.
HELVETICA_WIDTHS = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
]

TITLE = "Driftwood Architecture Overview"
SUBTITLE = "A technical white paper from Driftwood Labs - covers Driftwood 3.4 - March 2025"

# Each page: list of (heading, [paragraphs]).
PAGES = [
    [
        ("1. Overview", [
            "Driftwood is a self-hosted file-sync and backup system. A deployment consists of "
            "driftwood-server, the Driftwood Desktop client and the drift command-line client. "
            "The server keeps two kinds of state that are stored separately: a metadata database "
            "(SQLite or PostgreSQL) that records users, folders, file versions and shares, and a "
            "chunk store (a local directory or an S3-compatible bucket) that holds file contents "
            "as encrypted, immutable chunks.",
            "Clients never write to the chunk store directly. They upload chunks to the server over "
            "the sync channel on TCP port 7100, or through an HTTPS WebSocket tunnel on port 8443 "
            "when port 7100 is blocked, and then commit a new file version that lists the chunks "
            "in order. A version becomes visible to other devices only after the commit succeeds, "
            "so readers never see a half-uploaded file.",
        ]),
        ("2. Content-defined chunking", [
            "Files are split with a rolling-hash algorithm that chooses chunk boundaries from the "
            "content itself rather than at fixed offsets. Chunks are about 1 MiB on average, never "
            "smaller than 256 KiB and never larger than 4 MiB. Because boundaries follow the "
            "content, inserting a few bytes near the start of a file changes only the chunks around "
            "the edit; every later chunk keeps its boundaries and its identity.",
            "Each chunk is identified by a keyed BLAKE3 hash of its plaintext. Before uploading, the "
            "client asks the server which chunk identifiers it already has and sends only the "
            "missing ones. In Driftwood Labs' measurements, changing 10 MB inside a 4 GB virtual "
            "disk image caused about 14 MB to be uploaded, compared with the full 4 GB for "
            "whole-file sync.",
        ]),
        ("3. Deduplication", [
            "Identical chunks are stored once per server, across all files and all users, except "
            "for private vaults. On a typical office file share, Driftwood Labs measured 2.1 TB of "
            "logical data occupying 1.4 TB after deduplication, a saving of one third. Chunks are "
            "reference-counted by the metadata database, and the nightly garbage collection "
            "removes chunks that have had no references for at least 24 hours.",
        ]),
    ],
    [
        ("4. Encryption", [
            "Every chunk is encrypted on the server with AES-256-GCM before it reaches the chunk "
            "store. The per-chunk key is derived with HKDF-SHA256 from the server master key and "
            "the chunk hash, so identical plaintext produces identical ciphertext and deduplication "
            "keeps working. The master key never leaves the server and is not part of backups.",
            "Private vaults add a second, client-side layer. The desktop client encrypts vault "
            "chunks with XChaCha20-Poly1305 using a key derived from the vault passphrase with "
            "Argon2id, before the data leaves the device. The server stores vault chunks like any "
            "others but cannot read them, which is why vault contents cannot be previewed, shared "
            "by public link or deduplicated outside the vault.",
        ]),
        ("5. Replication", [
            "On the Business and Enterprise plans, a primary server can replicate to up to two "
            "standby servers over mutual TLS on TCP port 7200. Replication requires PostgreSQL for "
            "metadata. The primary streams committed metadata changes together with the chunks they "
            "reference, so a standby never holds a file version whose chunks are missing.",
            "Replication is asynchronous: a commit is acknowledged to the client before standbys "
            "confirm it. Typical replication lag on a local network is under 5 seconds. Failover is "
            "manual; running driftwood-server replication promote on a standby turns it into the "
            "new primary, usually in less than a minute, and clients follow automatically because "
            "they connect through the address in server.public_url.",
        ]),
        ("6. Change notification", [
            "Every committed change receives a sequence number that increases monotonically per "
            "server. Clients hold an event stream open at /api/v1/events and receive the new "
            "sequence numbers as they happen, then fetch the changed metadata. A client that was "
            "offline simply asks for all changes after the last sequence number it saw, so no "
            "full rescan of the server is ever needed.",
        ]),
    ],
]


def text_width(s, size, bold=False):
    w = sum(HELVETICA_WIDTHS[ord(c) - 32] if 32 <= ord(c) <= 126 else 556 for c in s)
    if bold:
        w *= 1.08  # Helvetica-Bold is slightly wider; headings are short, so an estimate is fine
    return w * size / 1000.0


def wrap(text, size, width=TEXT_W):
    lines, line = [], ""
    for word in text.split():
        candidate = word if not line else line + " " + word
        if text_width(candidate, size) <= width:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def pdf_string(s):
    s.encode("ascii")  # the generator only emits ASCII text
    return "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def page_content(page_no, sections):
    ops = []
    y = PAGE_H - MARGIN

    def put(font, size, text, y):
        ops.append("BT /%s %g Tf %d %.1f Td %s Tj ET" % (font, size, MARGIN, y, pdf_string(text)))

    if page_no == 1:
        put("F2", 20, TITLE, y - 20)
        put("F1", 10, SUBTITLE, y - 40)
        y -= 72
    body_size, leading = 10.5, 14
    for heading, paragraphs in sections:
        put("F2", 13, heading, y)
        y -= 20
        for para in paragraphs:
            lines = wrap(para, body_size)
            # One text object per paragraph, lines advanced with T* so extractors see line breaks.
            ops.append("BT /F1 %g Tf %g TL %d %.1f Td" % (body_size, leading, MARGIN, y))
            for i, line in enumerate(lines):
                ops.append(("" if i == 0 else "T* ") + pdf_string(line) + " Tj")
            ops.append("ET")
            y -= leading * len(lines) + 8
        y -= 8
    if y < MARGIN:
        raise SystemExit("page %d overflows the bottom margin (y=%.1f)" % (page_no, y))
    put("F1", 9, "Driftwood Labs - Driftwood Architecture Overview - page %d of %d" % (page_no, len(PAGES)), 40)
    return "\n".join(ops).encode("ascii")


def build():
    objects = {}  # object number -> bytes (without "n 0 obj" wrapper)
    n_pages = len(PAGES)
    # Object numbers: 1 catalog, 2 pages, 3 font F1, 4 font F2, 5 info, then per page: page, content.
    page_ids = [6 + 2 * i for i in range(n_pages)]
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[2] = ("<< /Type /Pages /Kids [%s] /Count %d >>"
                  % (" ".join("%d 0 R" % p for p in page_ids), n_pages)).encode("ascii")
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objects[4] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
    objects[5] = ("<< /Title %s /Author (Driftwood Labs) /Subject (Fictional example document for supportbot tests) "
                  "/Producer (supportbot scripts/make-example-pdf.py) /CreationDate (D:20250301000000Z) >>"
                  % pdf_string(TITLE)).encode("ascii")
    for i, sections in enumerate(PAGES):
        pid, cid = page_ids[i], page_ids[i] + 1
        objects[pid] = ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
                        "/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>"
                        % (PAGE_W, PAGE_H, cid)).encode("ascii")
        stream = page_content(i + 1, sections)
        objects[cid] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    xref_at = len(out)
    count = max(objects) + 1
    out += b"xref\n0 %d\n" % count
    out += b"0000000000 65535 f \n"
    for num in range(1, count):
        out += b"%010d 00000 n \n" % offsets[num]
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, xref_at)
    return bytes(out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "examples", "docs", "whitepaper", "driftwood-architecture.pdf")
    path = sys.argv[1] if len(sys.argv) > 1 else default
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = build()
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (os.path.normpath(path), len(data)))


if __name__ == "__main__":
    main()
