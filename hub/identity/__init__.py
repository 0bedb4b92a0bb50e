"""Identity and family: probabilistic person matching, the review queue, merges and households.

Pure parts (no I/O): ``names``, ``compare``, ``records``, ``scoring``, ``index``,
``households``, ``events``. Storage: ``tables``, ``store``. HTTP: ``api``. See docs/identity.md.
"""

from hub.identity.households import Households, Link, LinkKind, address_key, links_from_person
from hub.identity.index import Candidate, MatchResult, PersonIndex
from hub.identity.records import PersonRecord, make_record, record_from_person
from hub.identity.scoring import Band, MatchModel, Thresholds, default_model

__all__ = [
    "Band",
    "Candidate",
    "Households",
    "Link",
    "LinkKind",
    "MatchModel",
    "MatchResult",
    "PersonIndex",
    "PersonRecord",
    "Thresholds",
    "address_key",
    "default_model",
    "links_from_person",
    "make_record",
    "record_from_person",
]
