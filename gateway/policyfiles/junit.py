"""Case outcomes as JUnit XML, the report format CI systems read (one testsuite per case file)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby
from pathlib import Path

from gateway.policyfiles.cases import CaseOutcome


def junit_xml(outcomes: list[CaseOutcome], suite_name: str) -> str:
    root = ET.Element("testsuites", name=suite_name)
    for file, group in groupby(outcomes, key=lambda o: o.file):
        cases = list(group)
        failed = sum(1 for o in cases if o.problems)
        suite = ET.SubElement(
            root, "testsuite", name=str(file), tests=str(len(cases)), failures=str(failed),
            errors="0", time=f"{sum(o.seconds for o in cases):.4f}",
        )  # fmt: skip
        for outcome in cases:
            case = ET.SubElement(
                suite, "testcase", classname=Path(file).stem, name=outcome.name, time=f"{outcome.seconds:.4f}",
                file=str(file), line=str(outcome.line or 0),
            )  # fmt: skip
            if outcome.problems:
                failure = ET.SubElement(case, "failure", message="; ".join(outcome.problems), type="PolicyCaseFailure")
                failure.text = "\n".join([*outcome.problems, *outcome.reasons])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
