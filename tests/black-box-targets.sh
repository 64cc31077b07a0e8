# Sourced by tests/real-spin/run.sh and tests/scale_out/run.sh: the test
# targets that run against any server of the app (KEYGATE_HOST_BIN) — the
# contract (tests/api/*), the health route, the concurrency and secrets
# checks. The runner's own tests are left out; the fault sweeps inside the
# suites return at once where KEYGATE_NO_FAULT_INJECTION is set (real Spin). Sets $black_box_targets (`--test <name>` pairs).
black_box_targets=()
for t in api_keys_create api_keys_list api_keys_get_delete api_audit api_verify api_webhook \
  api_auth api_conventions api_openapi api_robustness app_health reliability_concurrency \
  reliability_secrets api_users api_oidc api_okta api_ssf api_scim api_keys_patch api_keys_roll \
  api_keys_transfer api_service_accounts api_users_summary; do
  black_box_targets+=(--test "$t")
done
