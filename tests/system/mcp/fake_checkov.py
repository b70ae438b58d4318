"""A stand-in for the checkov executable (a third-party tool) with one real-looking rule:
CKV_AWS_21 fails when an S3 bucket has no versioning. Prints checkov's ``-o json`` shape."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    template = json.loads(Path(argv[argv.index("-f") + 1]).read_text())
    properties = template["Resources"]["Resource"].get("Properties", {})
    versioned = properties.get("VersioningConfiguration", {}).get("Status") == "Enabled"
    check = {
        "check_id": "CKV_AWS_21",
        "check_name": "Ensure the S3 bucket has versioning enabled",
        "severity": None,
        "check_result": {"evaluated_keys": ["Properties/VersioningConfiguration/Status"]},
    }
    results = {
        "passed_checks": [check] if versioned else [],
        "failed_checks": [] if versioned else [check],
    }
    summary = {
        "passed": int(versioned),
        "failed": int(not versioned),
        "checkov_version": "stand-in",
    }
    print(json.dumps({"check_type": "cloudformation", "results": results, "summary": summary}))
    return 0 if versioned else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
