"""Sharing rules: the rule-pack model, its validation, the decision point, redaction, diff.

The narrative read path and delivery call ``decide`` per event (cached by attributes) and
``redact`` on what is permitted; IG tooling calls ``validate_pack``, ``diff_packs``, ``dry_run``.
"""

from hub.sharing.decide import CompiledPack, compile_pack, decide, decide_all
from hub.sharing.diff import (
    DisclosureChange,
    DryRunResult,
    FieldChange,
    PackDiff,
    PastRequest,
    Recipient,
    RuleChange,
    diff_packs,
    dry_run,
)
from hub.sharing.facts import (
    AccessRequest,
    ChildContext,
    ConsentRecord,
    ConsentState,
    Decision,
    EventFacts,
    Grant,
    GrantedVia,
    Obligations,
)
from hub.sharing.redact import redact, redact_many
from hub.sharing.rules import (
    ChildStatus,
    ConsentMode,
    Milestone,
    Purpose,
    Rule,
    RulePack,
)
from hub.sharing.schema import export_rule_pack_schema, rule_pack_json_schema
from hub.sharing.validate import (
    RulePackInvalid,
    RuleProblem,
    load_pack,
    read_pack,
    validate_pack,
)

__all__ = [
    "AccessRequest",
    "ChildContext",
    "ChildStatus",
    "CompiledPack",
    "ConsentMode",
    "ConsentRecord",
    "ConsentState",
    "Decision",
    "DisclosureChange",
    "DryRunResult",
    "EventFacts",
    "FieldChange",
    "Grant",
    "GrantedVia",
    "Milestone",
    "Obligations",
    "PackDiff",
    "PastRequest",
    "Purpose",
    "Recipient",
    "Rule",
    "RuleChange",
    "RulePack",
    "RulePackInvalid",
    "RuleProblem",
    "compile_pack",
    "decide",
    "decide_all",
    "diff_packs",
    "dry_run",
    "export_rule_pack_schema",
    "load_pack",
    "read_pack",
    "redact",
    "redact_many",
    "rule_pack_json_schema",
    "validate_pack",
]
