"""How chapters state the experiments' numbers in prose: a stored accuracy as a percentage, a share of a gap.

(Candidates for ``advlib.formatting`` once chapters outside the experiments need them.)
"""
from __future__ import annotations

#: Below this share, a part of a gap counts as none of it.
NEGLIGIBLE_SHARE = 0.05


def percent_text(fraction: float) -> str:
    """A fraction in [0, 1] (a stored accuracy) as text in percent with one decimal: 0.1234 → "12.3 %"."""
    return f"{100 * fraction:.1f} %"


def share_text(fraction: float, negligible: float = NEGLIGIBLE_SHARE) -> str:
    """The share of a gap that something closes, in words: "none of it" below ``negligible``, else "55 %"."""
    if not 0 <= negligible < 1:
        raise ValueError(f"negligible must be in [0, 1), got {negligible}")
    return "none of it" if fraction < negligible else f"{100 * fraction:.0f} %"


def model_text(entry: dict) -> str:
    """An experiment's model entry in words: its profile and identity — the model key (``advlib.identity``) of
    documents written since record identities exist, the profile's configuration hash of those written before."""
    if "model_key" in entry:
        return f"{entry['profile']}, model {entry['model_key'][:8]}"
    return f"{entry['profile']}, profile config {entry['config_hash']}"
