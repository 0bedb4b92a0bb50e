"""Native agency files for a synthetic population, in the formats the adapters parse.

Each ``render_*`` returns ``{relative path: bytes}`` and adds ``record key -> person id`` to a
truth mapping (record keys as ``hub.synth.truth.record_key`` derives them from envelopes).
"""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import date, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from hub.synth.population import REFERENCE_DATE, Population, SynthPerson
from hub.synth.views import NOISE, View, view_of

__all__ = ["AGENCIES", "render_cin", "render_health", "render_police", "render_schools"]

AGENCIES = {
    "health": "northshire-health",
    "schools": "northshire-primary",
    "police": "northshire-police",
    "childrens_services": "northshire-cs",
}
_CHUNK = 1000
_REASONS = ("Head injury", "Fall", "Abdominal pain", "Burn to hand", "Asthma", "Overdose")
_CONCERNS = ("Neglect", "Domestic abuse", "Self-harm", "Emotional abuse", "Online safety")
_ORG = {
    "fullUrl": "urn:uuid:7f3d2a10-0000-4c1e-9a51-000000000000",
    "resource": {
        "resourceType": "Organization",
        "id": "RNS01",
        "identifier": [
            {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RNS01"}
        ],
        "name": "Northshire General Hospital NHS Trust",
    },
}


def _rng(pop: Population, kind: str) -> random.Random:
    return random.Random(f"{pop.seed}:{kind}")


def _day(rng: random.Random, days: int = 365) -> datetime:
    start = datetime(2023, 4, 1, 8, 0)
    return start + timedelta(days=rng.randrange(days), minutes=rng.randrange(14 * 60))


def _homes(pop: Population) -> dict[str, Any]:
    return {h.hid: h for h in pop.households}


def render_health(pop: Population, truth: dict[str, str]) -> dict[str, bytes]:
    """One FHIR R4 Bundle per 1,000 children: a Patient and an unscheduled-care Encounter each."""
    rng, homes, files = _rng(pop, "health"), _homes(pop), {}
    children = pop.children
    for part in range(0, len(children), _CHUNK):
        entries: list[dict[str, Any]] = [_ORG]
        for child in children[part : part + _CHUNK]:
            v = view_of(child, homes[child.household], NOISE["health"], rng)
            pid = f"pt-{child.pid[1:]}"
            truth[f"{AGENCIES['health']}|Patient/{pid}"] = child.pid
            names = [{"use": "official", "family": v.family, "given": [v.given]}]
            if v.preferred:
                names.append({"use": "nickname", "family": v.family, "given": [v.preferred]})
            patient: dict[str, Any] = {
                "resourceType": "Patient",
                "id": pid,
                "name": names,
                "gender": v.sex,
                "birthDate": v.birth_date.isoformat(),
            }
            if v.nhs:
                patient["identifier"] = [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": v.nhs}
                ]
            if v.place:
                patient["address"] = [
                    {
                        "use": "home",
                        "line": [v.place.lines[0]],
                        "city": v.place.town,
                        "postalCode": v.place.postcode,
                    }
                ]
            start = _day(rng)
            encounter = {
                "resourceType": "Encounter",
                "id": f"ed-{child.pid[1:]}",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": rng.choice(("EMER", "AMB")),
                },
                "subject": {"reference": f"Patient/{pid}"},
                "period": {
                    "start": start.isoformat() + "+00:00",
                    "end": (start + timedelta(hours=2)).isoformat() + "+00:00",
                },
                "reasonCode": [{"text": rng.choice(_REASONS)}],
                "serviceProvider": {"reference": "Organization/RNS01"},
            }
            entries += [
                {"fullUrl": f"https://fhir.northshire.example/Patient/{pid}", "resource": patient},
                {"fullUrl": f"urn:uuid:ed-{child.pid[1:]}", "resource": encounter},
            ]
        bundle = {
            "resourceType": "Bundle",
            "id": f"synth-{part // _CHUNK + 1:04d}",
            "type": "collection",
            "timestamp": "2024-04-01T06:00:00+00:00",
            "entry": entries,
        }
        files[f"health/attendances_{part // _CHUNK + 1:04d}.json"] = json.dumps(
            bundle, indent=1
        ).encode()
    return files


def _xml(tag: str, value: object) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


def _pupil(v: View, layout: int) -> str:
    if layout == 0:
        names = _xml("Surname", v.family) + _xml("Forename", v.given)
        names += _xml("PreferredForename", v.preferred) if v.preferred else ""
        names += _xml("DOB", v.birth_date.isoformat()) + _xml("Sex", v.sex[0].upper())
    else:
        names = "<BasicDetails>" + _xml("LegalSurname", v.family) + _xml("LegalForename", v.given)
        names += _xml("PreferredForename", v.preferred) if v.preferred else ""
        names += _xml("DOB", v.birth_date.isoformat()) + _xml("Gender", v.sex[0].upper())
        names += "</BasicDetails>"
    address = ""
    if v.place:
        if layout == 0:
            address = (
                "<Address><BS7666Address>"
                + _xml("PAON", v.place.number)
                + _xml("Street", v.place.street)
                + _xml("Town", v.place.town)
                + "</BS7666Address>"
                + _xml("PostCode", v.place.postcode)
                + "</Address>"
            )
        else:
            address = (
                "<Address><AddressLines>"
                + _xml("AddressLine1", v.place.lines[0])
                + _xml("AddressLine2", v.place.town)
                + "</AddressLines>"
                + _xml("PostCode", v.place.postcode)
                + "</Address>"
            )
    return f"<Pupil>{_xml('UPN', v.upn)}{names}{address}"


def render_schools(pop: Population, truth: dict[str, str]) -> dict[str, bytes]:
    """CTF files (both name layouts) per 1,000 pupils, and a safeguarding-concerns CSV."""
    rng, homes, files = _rng(pop, "schools"), _homes(pop), {}
    agency = AGENCIES["schools"]
    pupils = [c for c in pop.children if c.upn]
    for part in range(0, len(pupils), _CHUNK):
        layout = (part // _CHUNK) % 2
        body = []
        for child in pupils[part : part + _CHUNK]:
            v = view_of(child, homes[child.household], NOISE["ctf"], rng)
            truth[f"{agency}|upn:{child.upn}"] = child.pid
            possible = 300
            authorised, unauthorised = rng.randint(1, 20), rng.randint(0, 15)
            body.append(
                _pupil(v, layout)
                + "<Attendance><YearData>"
                + _xml("Year", 2023)
                + _xml("SessionsPossible", possible)
                + _xml("SessionsAuthorised", authorised)
                + _xml("SessionsUnauthorised", unauthorised)
                + "</YearData></Attendance></Pupil>"
            )
        header = (
            "<Header><DocumentName>Common Transfer File</DocumentName>"
            f"<CTFversion>{'19.0' if layout == 0 else '23.0'}</CTFversion>"
            "<DateTime>2024-04-01T08:00:00</DateTime><SourceSchool><LEA>938</LEA>"
            f"<Estab>{2001 + part // _CHUNK}</Estab><SchoolName>Northshire School "
            f"{part // _CHUNK + 1}</SchoolName></SourceSchool></Header>"
        )
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<CTfile>'
            + header
            + "<CTFpupilData>"
            + "".join(body)
            + "</CTFpupilData></CTfile>\n"
        )
        files[f"schools/ctf_{part // _CHUNK + 1:04d}.xml"] = xml.encode()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "Concern ID",
            "Date",
            "UPN",
            "Name",
            "DOB",
            "Category",
            "Risk Level",
            "Summary",
            "Staff Role",
        ]
    )
    number = 0
    for child in pupils:
        if rng.random() >= 0.08:
            continue
        number += 1
        v = view_of(child, homes[child.household], NOISE["concerns"], rng)
        concern_id = f"SC-{number:06d}"
        truth[f"{agency}|concern:{concern_id}"] = child.pid
        shown = v.preferred or v.given
        name = f"{v.family}, {shown}" if rng.random() < 0.5 else f"{shown} {v.family}"
        dob = v.birth_date.strftime("%d/%m/%Y") if rng.random() < 0.5 else v.birth_date.isoformat()
        writer.writerow(
            [
                concern_id,
                _day(rng).date().isoformat(),
                v.upn or "",
                name,
                dob,
                rng.choice(_CONCERNS),
                rng.choice(("low", "medium", "high")),
                "Concern recorded by staff (synthetic).",
                "Designated safeguarding lead",
            ]
        )
    files["schools/safeguarding_concerns.csv"] = out.getvalue().encode()
    return files


_POLICE_HEADER = [
    "incident_ref",
    "incident_type",
    "occurred_at",
    "location",
    "risk_level",
    "dash_ticks",
    "summary",
    "officer_role",
    "person_ref",
    "role",
    "forename",
    "surname",
    "date_of_birth",
    "sex",
    "address",
    "postcode",
]


def _police_ref(person: SynthPerson) -> str:
    return f"NPP-{person.pid}"


def render_police(pop: Population, truth: dict[str, str]) -> dict[str, bytes]:
    """Domestic-abuse notices for some households, split between the CSV and JSON formats."""
    rng, agency = _rng(pop, "police"), AGENCIES["police"]
    views: dict[str, View] = {}
    homes = _homes(pop)
    rows: list[list[str]] = []
    notices: list[dict[str, Any]] = []
    for number, home in enumerate(h for h in pop.households if rng.random() < 0.12):
        ref = f"NP-24-{number + 1:06d}"
        when = _day(rng)
        ticks = rng.randint(3, 20)
        cast = [(home.mother, "Victim")]
        if home.partner:
            cast.append((home.partner, "Suspect"))
        cast += [(c, rng.choice(("Child present", "Child in household"))) for c in home.children]
        persons = []
        for pid, role in cast:
            person = pop.people[pid]
            if pid not in views:
                views[pid] = view_of(person, home, NOISE["police"], rng)
            v = views[pid]
            if person.is_child:
                truth[f"{agency}|{_police_ref(person)}"] = pid
            dob = (
                v.birth_date.strftime("%d/%m/%Y")
                if rng.random() < 0.5
                else v.birth_date.isoformat()
            )
            persons.append(
                {
                    "person_ref": _police_ref(person),
                    "role": role,
                    "forename": v.preferred or v.given,
                    "surname": v.family,
                    "date_of_birth": dob,
                    "sex": v.sex[0].upper(),
                    "address": ", ".join(v.place.lines) if v.place else "",
                    "postcode": v.place.postcode if v.place else "",
                }
            )
        location = ", ".join(homes[home.hid].address.lines)
        if number % 2 == 0:
            for p in persons:
                rows.append(
                    [
                        ref,
                        "Domestic abuse",
                        when.strftime("%d/%m/%Y %H:%M"),
                        location,
                        "",
                        str(ticks),
                        "Officers attended a domestic incident (synthetic).",
                        "Response officer",
                        p["person_ref"],
                        p["role"],
                        p["forename"],
                        p["surname"],
                        p["date_of_birth"],
                        p["sex"],
                        p["address"],
                        p["postcode"],
                    ]
                )
        else:
            notices.append(
                {
                    "incident_ref": ref,
                    "incident_type": "domestic_abuse",
                    "occurred_at": when.isoformat() + "Z",
                    "location": location,
                    "dash_ticks": ticks,
                    "summary": "Officers attended a domestic incident (synthetic).",
                    "persons": [
                        {
                            **{k: v for k, v in p.items() if k not in ("address", "postcode")},
                            "role": p["role"].lower().replace(" ", "_"),
                            **(
                                {
                                    "address": {
                                        "lines": p["address"].split(", "),
                                        "postcode": p["postcode"],
                                    }
                                }
                                if p["postcode"]
                                else {}
                            ),
                        }
                        for p in persons
                    ],
                }
            )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_POLICE_HEADER)
    writer.writerows(rows)
    document = {
        "force": "Northshire Police",
        "generated_at": "2024-04-01T07:00:00Z",
        "notices": notices,
    }
    return {
        "police/ppn_notices.csv": out.getvalue().encode(),
        "police/ppn_notices.json": json.dumps(document, indent=1).encode(),
    }


def render_cin(pop: Population, truth: dict[str, str]) -> dict[str, bytes]:
    """A CIN census with referrals (and some child-protection plans) for a few children."""
    rng, homes, agency = _rng(pop, "cin"), _homes(pop), AGENCIES["childrens_services"]
    body = []
    for child in pop.children:
        if rng.random() >= 0.06:
            continue
        v = view_of(child, homes[child.household], NOISE["cin"], rng)
        la_id = f"NCS{child.pid[1:]}"
        truth[f"{agency}|{la_id}"] = child.pid
        referral = max(child.birth_date, date(2023, 4, 1)) + timedelta(days=rng.randrange(200))
        sex = rng.choice(({"male": "1", "female": "2"}[v.sex], v.sex[0].upper()))
        ids = _xml("LAchildID", la_id) + (_xml("UPN", v.upn) if v.upn else "")
        ids += _xml("PersonBirthDate", v.birth_date.isoformat()) + _xml("Sex", sex)
        details = _xml("CINreferralDate", referral.isoformat()) + _xml("ReferralSource", "5A")
        details += _xml("PrimaryNeedCode", rng.choice(("N1", "N2", "N4")))
        if rng.random() < 0.3:
            details += (
                "<ChildProtectionPlans>"
                + _xml("CPPstartDate", (referral + timedelta(days=30)).isoformat())
                + _xml("InitialCategoryOfAbuse", rng.choice(("NEG", "EMO", "PHY")))
                + "</ChildProtectionPlans>"
            )
        body.append(
            f"<Child><ChildIdentifiers>{ids}</ChildIdentifiers>"
            f"<CINdetails>{details}</CINdetails></Child>"
        )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Message><Header><CollectionDetails>'
        "<Collection>CIN</Collection><Year>2024</Year>"
        f"<ReferenceDate>{REFERENCE_DATE.isoformat()}</ReferenceDate></CollectionDetails>"
        "<Source><SourceLevel>L</SourceLevel><LEA>938</LEA></Source></Header>"
        "<Children>" + "".join(body) + "</Children></Message>\n"
    )
    return {"childrens_services/cin_census.xml": xml.encode()}
