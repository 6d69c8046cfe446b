#!/usr/bin/env python3
"""Draws assets/sprites/player.png: a white disc with a darker rim and soft top-left
light, 64x64 RGBA, anti-aliased. White so the client can tint it per player.
Standard library only; run it to regenerate the sprite."""
import math, struct, zlib

SIZE = 64
CENTRE = (SIZE - 1) / 2
RADIUS = SIZE / 2 - 1.5
RIM = 4.0

def pixel(x, y):
    d = math.hypot(x - CENTRE, y - CENTRE)
    coverage = max(0.0, min(1.0, RADIUS + 0.5 - d))  # anti-aliased edge
    if coverage == 0:
        return (0, 0, 0, 0)
    # Light from the top left, darker toward the bottom right.
    lx, ly = (x - CENTRE) / RADIUS, (y - CENTRE) / RADIUS
    light = 0.93 + 0.07 * max(-1.0, min(1.0, -(lx + ly) / 1.4))
    if d > RADIUS - RIM:
        light *= 0.62
    value = int(255 * max(0.0, min(1.0, light)))
    return (value, value, value, int(255 * coverage))

rows = b"".join(b"\x00" + bytes(c for x in range(SIZE) for c in pixel(x, y)) for y in range(SIZE))
chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
open(__file__.replace("make_player.py", "player.png"), "wb").write(png)
