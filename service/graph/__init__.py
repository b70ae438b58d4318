"""The dependency graph between managed resources: edges with provenance (schema
relationshipRef, value matching, explicit depends_on), kept current commit by commit, cycles
named, rendered as JSON, Mermaid, DOT or text. Pure domain: no I/O."""
