"""What the server tells the assistant about the workflow (MCP ``instructions``)."""

INSTRUCTIONS = """\
# ccstate: AWS Cloud Control with an audited, team-shared state

Every change to AWS goes through a chain of single-use execution tokens, and every change
(successful or failed) is recorded in the state with who, what, when, why and which token.

## Workflow for a change (create, update, delete)
1. check_environment_variables(): shows the AWS settings, SECURITY_SCANNING, DEFAULT_TAGS and
   whether the server is read-only.
2. get_aws_session_info(): shows the AWS account, identity and region -> credentials_token.
   ALWAYS show the account, identity and region to the user.
3. generate_infrastructure_code(resource_type, credentials_token, operation, ...):
   - create: properties -> returns the exact properties (default tags added) and a template
   - update: identifier + patch_document (RFC 6902) -> returns before/after properties
   - delete: identifier -> returns what will be deleted
   -> generated_code_token
4. explain(generated_code_token=..., user_intent="why the user wants this") -> explanation and
   explained_token. ALWAYS show the full explanation to the user and get their approval.
5. If SECURITY_SCANNING is enabled (create and update): run_checkov(explained_token) ->
   security_scan_token when the scan PASSED. A FAILED scan authorizes nothing: show the
   findings, fix the properties and start again at step 3.
6. create_resource / update_resource / delete_resource with credentials_token, explained_token
   and security_scan_token (if scanned). Pass EXACTLY the properties (create) or patch_document
   (update) or identifier (delete) that were explained: the tokens are bound to them.
Tokens expire (default 15 minutes), are bound to this user and identity, and work once.

## State
- load_state: what the state says is managed; show_resource_history: one resource's lineage.
- list_state_versions / restore_state_version: the state's history and rollback of the state
  record (a restore is itself recorded; it does not change AWS).
- import_resource: adopt a resource that exists in AWS into the state, with the user's intent.
- save_state: write the readable state.json export.

## Rules
- Never fall back to the AWS CLI or other tools to change resources: changes made outside this
  server are not recorded and will show up as drift.
- When a tool returns an error, tell the user its message and its next_step.
- Never put secrets in properties you explain back to the user; write-only and secret-looking
  values are stored only as salted fingerprints.
"""
