"""MkDocs hooks (`hooks:` in mkdocs.yml): what the docs site computes when it is built.

- The results blocks of every page (`<!-- results:NAME -->` ... `<!-- /results:NAME -->`: a paper's claims, the
  posts table, the benchmark goals, the quick preset's wall time) are rendered from the committed results files
  by the functions of scripts/readme_claims.py, so the site's numbers are those of docs/results/*.json at build time.
- The API reference: one generated page per package or top-level module of src/paperzoo (docstrings through
  mkdocstrings), added to the navigation under "API reference".
- The table of registered models (`<!-- models:table -->` on docs/models.md), from `paperzoo.models` itself.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
import readme_claims  # noqa: E402  (the one place results are rendered)

PACKAGE = readme_claims.ROOT / "src" / "paperzoo"
API = "api"


def api_modules() -> list[str]:
    """The public top-level modules and packages of paperzoo, in name order (`__main__` and `_private` left out)."""
    names = [p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")]
    names += [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    return sorted(names)


INTERNAL_MODULES = {"experiments"}  # a paper's claims: run by `paperzoo reproduce`, documented on its page


def submodules(name: str) -> list[str]:
    """The public modules of package `name` (empty for a plain module): first, by name, those that define what the
    package exports, then the others; `experiments` (the claims) left out."""
    folder = PACKAGE / name
    if not folder.is_dir():
        return []
    found = [f"paperzoo.{name}.{p.stem}" for p in sorted(folder.glob("*.py"))
             if not p.stem.startswith("_") and p.stem not in INTERNAL_MODULES]
    defining = {target.rsplit(".", 1)[0] for target in exports(name).values() if target}
    return sorted(found, key=lambda module: (module not in defining, module))


def _source(module: str) -> Path:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def definition(module: str, name: str) -> str | None:
    """The dotted path where `name`, as seen from `module`, is defined in paperzoo; None when it comes from elsewhere
    (torch's own `nn.LayerNorm`, say)."""
    for node in ast.parse(_source(module).read_text()).body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    paperzoo = node.module and node.module.split(".")[0] == "paperzoo"
                    return definition(node.module, alias.name) if paperzoo else None
        elif isinstance(node, ast.Import) and any((a.asname or a.name) == name for a in node.names):
            return None
    return f"{module}.{name}"


def exports(name: str) -> dict[str, str | None]:
    """What `paperzoo.<name>/__init__.py` re-exports: exported name -> dotted path of its definition (or None)."""
    if not (PACKAGE / name).is_dir():
        return {}
    found = {}
    for node in ast.parse(_source(f"paperzoo.{name}").read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("paperzoo."):
            found.update({a.asname or a.name: definition(node.module, a.name) for a in node.names})
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def api_page(name: str) -> str:
    """The markdown of one API page: the module's docstring, its exported names, then every public submodule."""
    members = ["      members: false"] if submodules(name) else []  # a package's modules follow one by one
    lines = [f"# paperzoo.{name}", "", f"::: paperzoo.{name}", "    options:", *members,
             "      show_root_heading: false", ""]
    names = exports(name)
    if names:
        lines += ["Exported by the package (`from paperzoo.{0} import ...`):".format(name), ""]
        links = [f"[`{short}`][{target}]" if target else f"`{short}`" for short, target in names.items()]
        lines.append(", ".join(links))
        lines.append("")
    for module in submodules(name):
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def summary(name: str) -> str:
    """The first paragraph of a module's docstring, up to any list, on one line."""
    doc = ast.get_docstring(ast.parse(_source(f"paperzoo.{name}").read_text())) or ""
    return doc.split("\n\n")[0].split("\n-")[0].replace("\n", " ").rstrip(":")


def api_index() -> str:
    """The overview page of the API reference: every module with the first line of its docstring."""
    lines = ["# API reference", "", "Generated from the docstrings of paperzoo's public modules when the site is "
             "built. A paper's package exports the names its page uses; each page below lists them and then "
             "documents every module of the package.", "", "| module | what |", "|---|---|"]
    for name in api_modules():
        lines.append(f"| [`paperzoo.{name}`]({name}.md) | {readme_claims.cell(summary(name))} |")
    return "\n".join(lines)


MODELS_TABLE = "<!-- models:table -->"


def models_table() -> str:
    """Every model of `paperzoo.list_models()`: name, paper, constructor, input, output, preprocessing."""
    from paperzoo.models import list_models, model_info

    lines = ["| name | paper | what (keywords of `create_model`) | input | output | `transforms_for` |",
             "|---|---|---|---|---|---|"]
    for name in list_models():
        info = model_info(name)
        transform = type(info.transform()).__name__ if info.transform else "-"
        cells = [f"`{name}`", f"[{info.paper}]({info.paper}.md)", info.summary, info.input, info.output, transform]
        lines.append("| " + " | ".join(readme_claims.cell(c) for c in cells) + " |")
    return "\n".join(lines)


_rendered: dict[str, str] = {}  # the results blocks of this build


def on_config(config):
    nav = [{f"paperzoo.{name}": f"{API}/{name}.md"} for name in api_modules()]
    config.nav.append({"API reference": [{"Overview": f"{API}/index.md"}, *nav]})
    return config


def on_pre_build(config):
    _rendered.clear()
    _rendered.update(readme_claims.blocks(readme_claims.load_results(), pages=""))


def on_files(files, config):
    files.append(File.generated(config, f"{API}/index.md", content=api_index()))
    for name in api_modules():
        files.append(File.generated(config, f"{API}/{name}.md", content=api_page(name)))
    return files


def on_page_markdown(markdown, page, config, files):
    if MODELS_TABLE in markdown:
        markdown = markdown.replace(MODELS_TABLE, models_table())
    return readme_claims.render(markdown, _rendered)
