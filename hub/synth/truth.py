"""The truth file: which agency records are the same invented person, and how to look it up."""

from __future__ import annotations

from contracts import Envelope

__all__ = ["record_key"]


def record_key(envelope: Envelope) -> str:
    """The key of the source record an envelope came from, as the truth file lists it.

    ``<agency id>|<subject>`` when the adapter sets a subject (FHIR Patient, police person,
    CIN ``LAchildID``), ``<agency id>|concern:<id>`` for a school concern row, else
    ``<agency id>|upn:<UPN>`` (a CTF pupil).
    """
    agency = envelope.agency_id
    if envelope.subject:
        return f"{agency}|{envelope.subject}"
    if ":concern:" in envelope.id:
        return f"{agency}|concern:{envelope.id.rsplit(':', 1)[-1]}"
    upn = next((i.value for i in envelope.person.identifiers if i.system == "upn"), None)
    return f"{agency}|upn:{upn}"
