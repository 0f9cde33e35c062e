"""The report read back with the stdlib HTML parser: tags, tables as cell text, figures and their titles."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"meta", "br", "img", "link", "hr", "input", "source", "wbr", "col", "area", "base", "embed", "track"}


class Page(HTMLParser):
    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []  # every start tag with its attributes
        self.tables: list[dict] = []  # {"section", "caption", "rows": [[cell text]]}
        self.svg_titles: list[str] = []
        self.figure_ids: list[str] = []
        self.unbalanced: list[str] = []
        self.text_parts: list[str] = []
        self._stack: list[str] = []
        self._section = ""
        self._cell = None
        self._caption = None
        self._title = None
        self.feed(text)
        self.close()
        self.text = "".join(self.text_parts)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "br" and self._cell is not None:
            self._cell.append("\n")
        if tag in VOID:
            return
        self._stack.append(tag)
        if tag == "section" and "id" in a:
            self._section = a["id"]
        elif tag == "figure":
            self.figure_ids.append(a.get("id", ""))
        elif tag == "table":
            self.tables.append({"section": self._section, "caption": "", "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "caption":
            self._caption = []
        elif tag == "title" and "svg" in self._stack:
            self._title = []

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self._stack or self._stack[-1] != tag:
            self.unbalanced.append(tag)
        else:
            self._stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "caption" and self._caption is not None:
            self.tables[-1]["caption"] = "".join(self._caption)
            self._caption = None
        elif tag == "title" and self._title is not None:
            self.svg_titles.append("".join(self._title))
            self._title = None

    def handle_data(self, data):
        self.text_parts.append(data)
        for buf in (self._cell, self._caption, self._title):
            if buf is not None:
                buf.append(data)

    def table(self, first_header: str, section: str = "") -> list[list[str]]:
        """The rows (header first) of the table whose first column is `first_header`."""
        for t in self.tables:
            if (
                t["rows"]
                and t["rows"][0]
                and t["rows"][0][0] == first_header
                and (not section or t["section"] == section)
            ):
                return t["rows"]
        raise AssertionError(f"no table with first column {first_header!r}")
