"""Wire contracts of the safeguarding hub: the envelope, event payloads, people and identifiers.

Everything that crosses an agency boundary is validated here, versioned, and exportable as
JSON Schema. Parse untrusted input with ``parse_envelope``.
"""

from contracts.envelope import (
    AgencyKind,
    Classification,
    Envelope,
    LawfulBasis,
    SensitivityTag,
    parse_envelope,
)
from contracts.errors import ContractError, ContractValidationError, FieldError
from contracts.events import (
    EVENT_FAMILIES,
    ConcernCategory,
    ConcernRaised,
    ContactRecorded,
    ContactType,
    EventCorrected,
    EventFamily,
    EventPayload,
    EventRetracted,
    EventType,
    InvolvementChanged,
    InvolvementEnded,
    InvolvementStarted,
    InvolvementType,
    Payload,
    Practitioner,
    RiskLevel,
    family_of,
)
from contracts.identifiers import (
    FHIR_SYSTEMS,
    Identifier,
    IdentifierSystem,
    nhs_number_is_valid,
    normalise_nhs_number,
    normalise_upn,
    upn_is_valid,
)
from contracts.person import Address, Person, PersonName, RelatedPerson, Relationship, Sex
from contracts.schema import export_json_schemas
from contracts.versions import CURRENT_SCHEMA_VERSION, UnsupportedSchemaVersion, upcast

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "EVENT_FAMILIES",
    "FHIR_SYSTEMS",
    "Address",
    "AgencyKind",
    "Classification",
    "ConcernCategory",
    "ConcernRaised",
    "ContactRecorded",
    "ContactType",
    "ContractError",
    "ContractValidationError",
    "Envelope",
    "EventCorrected",
    "EventFamily",
    "EventPayload",
    "EventRetracted",
    "EventType",
    "FieldError",
    "Identifier",
    "IdentifierSystem",
    "InvolvementChanged",
    "InvolvementEnded",
    "InvolvementStarted",
    "InvolvementType",
    "LawfulBasis",
    "Payload",
    "Person",
    "PersonName",
    "Practitioner",
    "RelatedPerson",
    "Relationship",
    "RiskLevel",
    "SensitivityTag",
    "Sex",
    "UnsupportedSchemaVersion",
    "export_json_schemas",
    "family_of",
    "nhs_number_is_valid",
    "normalise_nhs_number",
    "normalise_upn",
    "parse_envelope",
    "upcast",
    "upn_is_valid",
]
