"""Who may do what: execution tokens and the policy that checks a principal."""
