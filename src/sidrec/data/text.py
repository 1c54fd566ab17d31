"""Item text: the template that builds it, checked against the items' fields, and how much of it is real.

The Semantic IDs are learned from this text, so an item whose text silently falls back to its id is a
bug the user cannot see in the metrics. Here a template's fields are checked against the fields the
items file has, an empty template is built from the text fields found, and items without text are
counted (`text_report`).
"""

from __future__ import annotations

import string

import polars as pl

from sidrec.data.schema import ITEM, names, render_text

# Preferred text fields, in template order; each group takes its first field that has any text.
FIELD_GROUPS = (("title", "name"), ("categories", "genres", "category", "genre"), ("brand",), ("description",))
_TEXTUAL = (pl.Utf8, pl.String, pl.Categorical)


def template_fields(template: str) -> list[str]:
    """The field names a template uses: '{title}; {categories}' -> ['title', 'categories']."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(
            f"data.text_template={template!r} is not a valid template ({err}). "
            "Write field names in braces, e.g. '{title}; {categories}'; double a literal brace: '{{'"
        ) from None
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        base = name.split(".")[0].split("[")[0]
        if not base or base.isdigit():
            raise ValueError(
                f"data.text_template={template!r}: '{{{name}}}' is not a field name. "
                "Name the items' fields, e.g. '{title}; {categories}'"
            )
        names.append(base)
    return names


def _has_text(col: pl.Series) -> bool:
    """Whether a column holds any non-empty string (or non-empty list of strings)."""
    if col.dtype in _TEXTUAL:
        return bool(col.cast(pl.Utf8).str.strip_chars().str.len_chars().fill_null(0).gt(0).any())
    if isinstance(col.dtype, pl.List) and col.dtype.inner in _TEXTUAL:
        return bool(col.list.len().fill_null(0).gt(0).any())
    return False


def text_fields(items: pl.DataFrame) -> list[str]:
    """The items' fields (other than the id) that hold any text, in file order."""
    return [c for c in items.columns if c != ITEM and _has_text(items[c])]


def auto_template(items: pl.DataFrame) -> str:
    """A template from the text fields found: title or name, categories or genres, brand, description.

    Without any of those, every other text field, in file order (e.g. '{keywords}' for Sports);
    without any text field, '' (every item's text is then its id).
    """
    found = text_fields(items)
    chosen = [next(f for f in group if f in found) for group in FIELD_GROUPS if any(f in found for f in group)]
    return "; ".join(f"{{{f}}}" for f in (chosen or found))


def resolve_template(template: str, items: pl.DataFrame, source: str) -> str:
    """The template to use: `template` checked against the items' fields, or one built from them."""
    if not template.strip():
        return auto_template(items)
    unknown = [f for f in template_fields(template) if f not in items.columns]
    if unknown:
        fields = names([c for c in items.columns if c != ITEM])[1:-1] or "(none: the items have only ids)"
        suggestion = auto_template(items)
        fix = (
            f'Suggested: "data.text_template={suggestion}", or an empty data.text_template= to build it from them'
            if suggestion
            else "Give the items a text field (e.g. data.items_path= for the table format)"
        )
        raise ValueError(
            f"data.text_template={template!r} names field(s) {', '.join(map(repr, unknown))} that the items "
            f"of {source} do not have. Available fields: {fields}. {fix}"
        )
    return template


def render_texts(items: pl.DataFrame, template: str) -> list[str]:
    """Each item's text, in row order; an item without text gets its id (see `render_text`)."""
    rows = items.select(ITEM, *[c for c in items.columns if c != ITEM]).to_dicts()
    return [render_text(row, template) if template else str(row[ITEM]) for row in rows]


def text_report(ids: list[str], texts: list[str], template: str) -> dict:
    """How much real text the items have: the template, three examples, items whose text is missing."""
    missing = sum(1 for i, t in zip(ids, texts, strict=True) if not t.strip() or t == i)
    return {
        "template": template,
        "examples": texts[:3],
        "items_without_text": missing,
        "share_without_text": round(missing / max(len(texts), 1), 4),
    }
