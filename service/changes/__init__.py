"""A change to a resource: schema, validation, tags, redaction, explanation,
scanning, the token workflow and its executor."""
