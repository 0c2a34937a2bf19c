"""Print the README's claims table from a `paperzoo reproduce` results.json (so the README shows measured numbers,
not hand-typed ones): python scripts/readme_claims.py runs/reproduce-.../results.json"""

import json
import sys

from paperzoo.catalog import ENGINE, POSTS
from paperzoo.report import measured_text

ICONS = {"reproduced": "reproduced", "not_reproduced": "**not reproduced**", "error": "**error**",
         "skipped": "skipped"}


def main(path: str) -> None:
    data = json.loads(open(path).read())
    posts = {p.module: p for p in [ENGINE, *POSTS]}
    print(f"Measured with `paperzoo reproduce --preset {data['preset']}` (seed {data['seed']}, torch "
          f"{data['environment']['torch']}, CPU): {', '.join(f'{v} {k}' for k, v in data['summary'].items())}.\n")
    print("| post | claim | paper reports | measured (quick) | verdict |")
    print("|---|---|---|---|---|")
    for c in data["claims"]:
        post = posts.get(c["id"].split(".")[0])
        label = f"{post.number}. {post.title}" if post and post.number else (post.title if post else "")
        cell = lambda s: str(s).replace("|", "/").replace("\n", " ")  # noqa: E731
        verdict = ICONS[c["verdict"]] + (f" ({cell(c['message'][:80])})" if c["verdict"] == "skipped" else "")
        print(f"| {cell(label)} | `{c['id']}`: {cell(c['statement'])} | {cell(c['paper_reports'])} | "
              f"{cell(measured_text(c['measured']))} | {verdict} |")


if __name__ == "__main__":
    main(sys.argv[1])
