"""The fluorescent label of a data set, checked in one place.

``"membrane"``: fluorophores on the cell surface (localizations on a shell);
``"volume"``: fluorophores filling the cytoplasm (localizations in a solid). The envelope,
neck fit, pipeline and simulator take one of these and refuse anything else with the
same message.

Examples
--------
>>> check_label("volume")
'volume'
>>> check_label("surface")
Traceback (most recent call last):
...
smlmspine.errors.ParameterError: label must be 'membrane' or 'volume', got 'surface'
"""

from __future__ import annotations

from .errors import ParameterError

__all__ = ["LABELS", "check_label"]

#: The labels every stage understands (also the choices of the CLI's ``--label``).
LABELS = ("membrane", "volume")


def check_label(label, *, name: str = "label") -> str:
    """Return ``label`` if it is ``"membrane"`` or ``"volume"``.

    Parameters
    ----------
    label : str
        The value to check.
    name : str
        What to call it in the message (a parameter or option name).

    Returns
    -------
    str
        ``label`` unchanged.

    Raises
    ------
    ParameterError
        Any other value (including other capitalisations).
    """
    if not isinstance(label, str) or label not in LABELS:
        raise ParameterError(f"{name} must be 'membrane' or 'volume', got {label!r}")
    return label
