"""Print the README's two tables from a `paperzoo reproduce` results.json, so the README shows measured numbers,
not hand-typed ones: python scripts/readme_claims.py runs/reproduce-.../results.json"""

import json
import sys
from collections import Counter

from paperzoo.catalog import ENGINE, POSTS
from paperzoo.report import measured_text

VERDICTS = {"reproduced": "reproduced", "not_reproduced": "**not reproduced**", "error": "**error**",
            "skipped": "skipped"}


def cell(text, limit: int = 0) -> str:
    text = str(text).replace("|", "/").replace("\n", " ")
    return text if not limit or len(text) <= limit else text[:limit].rstrip() + " …"


def main(path: str) -> None:
    data = json.loads(open(path).read())
    by_module: dict[str, list] = {}
    for c in data["claims"]:
        by_module.setdefault(c["id"].split(".")[0], []).append(c)
    print(f"Latest verdicts, measured with `paperzoo reproduce --preset {data['preset']}` (seed {data['seed']}, torch "
          f"{data['environment']['torch']}, 2-core CPU): "
          f"{', '.join(f'{v} {k.replace(chr(95), chr(32))}' for k, v in data['summary'].items())}.\n")
    print("| # | seed post | module | claims | latest verdicts (quick) |")
    print("|---|---|---|---|---|")
    for post in [ENGINE, *POSTS]:
        claims = by_module.get(post.module, [])
        counts = Counter(c["verdict"] for c in claims)
        verdicts = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items()) or "not yet implemented"
        names = ", ".join(f"`{c['id'].split('.', 1)[1]}`" for c in claims)
        print(f"| {post.number or '-'} | {post.title} | `paperzoo.{post.module}` | {names} | {verdicts} |")
    print("\n| claim | paper reports | measured (quick) | verdict |")
    print("|---|---|---|---|")
    for c in data["claims"]:
        verdict = VERDICTS[c["verdict"]] + (f" ({cell(c['message'], 80)})" if c["verdict"] == "skipped" else "")
        print(f"| `{c['id']}`: {cell(c['statement'])} | {cell(c['paper_reports'])} | "
              f"{cell(measured_text(c['measured']), 300)} | {verdict} |")


if __name__ == "__main__":
    main(sys.argv[1])
