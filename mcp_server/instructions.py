"""What the server tells the assistant about the workflow (MCP ``instructions``)."""

INSTRUCTIONS = """\
# ccstate: AWS Cloud Control with an audited, team-shared state

Every change to AWS goes through a chain of single-use execution tokens, and every change
(successful or failed) is recorded in the state with who, what, when, why and which token.

## Workflow for a change (create, update, delete)
1. check_environment_variables(): shows the AWS settings, SECURITY_SCANNING, DEFAULT_TAGS and
   whether the server is read-only -> environment_token.
2. get_aws_session_info(environment_token): shows the AWS account, identity and region ->
   credentials_token. ALWAYS show the account, identity and region to the user.
3. generate_infrastructure_code(resource_type, credentials_token, ...):
   - create: properties -> returns the exact properties (default tags added) and a template
   - update: identifier + patch_document (RFC 6902) -> returns before/after properties
   - delete: identifier + operation="delete" -> returns what will be deleted
   Pass region to act in another region than the server's.
   -> generated_code_token
4. explain(generated_code_token=..., user_intent="why the user wants this") -> explanation and
   explained_token. ALWAYS show the full explanation to the user and get their approval.
   (A delete may also be explained from get_resource's result:
   explain(content=<get_resource result>, operation="delete").)
5. Create and update: if SECURITY_SCANNING is enabled, run_checkov(explained_token).
   - PASSED: it returns the security_scan_token.
   - FAILED: show the failed checks, ask the user "fix", "proceed anyway" or "cancel", and WAIT
     for the answer. Only if they proceed: approve_security_findings(security_scan_token,
     decision="proceed anyway", accepted_checks=[every failed check id], reason=<theirs>) ->
     the security_scan_token for the change (recorded with their reason). Critical findings
     cannot be accepted unless the operator allows it.
   If SECURITY_SCANNING is disabled, tell the user resources are not scanned, and pass
   skip_security_check=True (or call run_checkov, which records the same).
6. create_resource / update_resource / delete_resource with credentials_token, explained_token
   and security_scan_token (or skip_security_check=True), region if one was given, and
   confirmed=True for a delete. The tokens carry EXACTLY the properties (create), patch
   (update) or identifier (delete) that were explained. Show any security_warning.
Tokens expire (default 15 minutes), are bound to this user, identity and region, and work once.

## State
- load_state: what the state says is managed; show_resource_history: one resource's lineage.
- list_state_versions / restore_state_version: the state's history and rollback of the state
  record (a restore is itself recorded; it does not change AWS).
- import_resource: adopt a resource that exists in AWS into the state, with the user's intent.
- save_state: write the readable state.json export.
- create_template(template_name, resources): a CloudFormation template of existing resources
  (poll with template_id until status is COMPLETED); get_aws_account_info(): the account and
  region in one call, without a token.

## Rules
- Never fall back to the AWS CLI or other tools to change resources: changes made outside this
  server are not recorded and will show up as drift.
- When a tool returns an error, tell the user its message and its next_step.
- Never put secrets in properties you explain back to the user; write-only and secret-looking
  values are stored only as salted fingerprints.
"""
