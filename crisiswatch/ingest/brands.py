"""Which configured brand a post is about: names, handles and hashtags, minus exclusions."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BRANDS_FILE = Path(__file__).resolve().parent / "brands.toml"


@dataclass(frozen=True)
class Brand:
    """A brand the team watches and the ways people refer to it."""

    id: str
    names: tuple[str, ...]
    handles: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    exclusions: tuple[str, ...] = ()
    sector: str = ""
    """The brand's sector (``airline``, ``bank``): brands of one sector surging together is said in their alerts."""
    languages: tuple[str, ...] = ()
    """The languages its customers write, most common first: short or unsure posts lean on them."""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    excluded: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        terms = [re.escape(n) for n in self.names]
        terms += [re.escape("@" + h.lstrip("@")) for h in self.handles]
        terms += [re.escape("#" + t.lstrip("#")) for t in self.hashtags]
        if not terms:
            raise ValueError(f"brand {self.id!r} has no names, handles or hashtags to match")
        object.__setattr__(self, "pattern", re.compile(r"(?<![\w@#])(?:" + "|".join(terms) + r")(?!\w)", re.IGNORECASE))
        excluded = (
            re.compile("|".join(re.escape(e) for e in self.exclusions), re.IGNORECASE) if self.exclusions else None
        )
        object.__setattr__(self, "excluded", excluded)

    def matches(self, text: str) -> bool:
        """Whether ``text`` refers to this brand and contains none of its exclusion phrases."""
        if not self.pattern.search(text):
            return False
        return not (self.excluded and self.excluded.search(text))


class BrandCatalog:
    """The configured brands, looked up by id or matched against post text."""

    def __init__(self, brands: list[Brand]) -> None:
        ids = [b.id for b in brands]
        if len(set(ids)) != len(ids):
            raise ValueError(f"brand ids must be unique, got {ids}")
        self.brands = {b.id: b for b in brands}

    @classmethod
    def from_file(cls, path: Path) -> BrandCatalog:
        """Load ``[[brand]]`` tables from a TOML file (see ``brands.toml``)."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ValueError(f"cannot read brands file {path}: {error}") from error
        entries = data.get("brand", [])
        if not entries:
            raise ValueError(f"brands file {path} defines no [[brand]] entries")
        brands = [
            Brand(
                id=str(entry["id"]),
                names=tuple(entry.get("names", [])),
                handles=tuple(entry.get("handles", [])),
                hashtags=tuple(entry.get("hashtags", [])),
                exclusions=tuple(entry.get("exclusions", [])),
                sector=str(entry.get("sector", "")),
                languages=tuple(str(language).strip().lower() for language in entry.get("languages", [])),
            )
            for entry in entries
        ]
        return cls(brands)

    def display_name(self, brand_id: str) -> str:
        """How the brand calls itself in public: its first configured name ("" when it has none)."""
        names = self.brands[brand_id].names
        return names[0] if names else ""

    def sectors(self) -> dict[str, str]:
        """Each brand's sector, for the brands that name one."""
        return {b.id: b.sector for b in self.brands.values() if b.sector}

    def ids(self) -> list[str]:
        """Configured brand ids."""
        return list(self.brands)

    def match(self, text: str) -> list[str]:
        """Ids of every brand the text refers to."""
        return [b.id for b in self.brands.values() if b.matches(text)]
