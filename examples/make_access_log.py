"""Writes examples/access.log: 20,000 lines of web-server access log (seeded, so the same
every time). The question the README asks of it — which client IP has the most failed logins
— needs a count over the whole file, which no single model call can read."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

PATHS = ["/", "/login", "/api/orders", "/api/items", "/static/app.js", "/account", "/search?q=lamp"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "python-requests/2.32", "Mozilla/5.0 (Macintosh)"]


def main() -> None:
    rng = random.Random(2512)
    ips = [
        f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(400)
    ]
    attacker = ips[137]
    start = datetime(2026, 3, 14, 6, 0, 0)
    lines = []
    for i in range(20_000):
        when = start + timedelta(seconds=i * 4 + rng.randint(0, 3))
        if rng.random() < 0.012:
            ip, path, status = attacker, "/login", 401
        else:
            ip, path = rng.choice(ips), rng.choice(PATHS)
            status = 401 if path == "/login" and rng.random() < 0.3 else rng.choice([200, 200, 200, 304, 404, 500])
        size = rng.randint(120, 48_000)
        agent = rng.choice(AGENTS)
        method = "POST" if path == "/login" else "GET"
        stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
        lines.append(f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {size} "-" "{agent}"')
    Path(__file__).with_name("access.log").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
