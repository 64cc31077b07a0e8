//! `fermyon:spin/variables@2.0.0`: flags, then SPIN_VARIABLE_*, then defaults.

use keygate_tests::RunnerConfig;

fn var(runner: &keygate_tests::Runner, name: &str) -> (u16, String) {
    let reply = runner.get(&format!("/probe/var/{name}"));
    let json = reply.json();
    let text = json
        .get("value")
        .or_else(|| json.get("error"))
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string();
    (reply.status, text)
}

#[test]
fn defaults_env_and_templates() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state)
        .env("SPIN_VARIABLE_FROM_ENV", "set in the environment")
        .start();
    assert_eq!(
        var(&runner, "greeting"),
        (200, "hello from the manifest".into())
    );
    assert_eq!(
        var(&runner, "from_env"),
        (200, "set in the environment".into())
    );
    assert_eq!(
        var(&runner, "combined"),
        (200, "[hello from the manifest|s3cret-probe-value]".into())
    );
}

#[test]
fn flag_overrides_env() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state)
        .env("SPIN_VARIABLE_FROM_ENV", "env")
        .arg("--variable")
        .arg("from_env=flag")
        .start();
    assert_eq!(var(&runner, "from_env"), (200, "flag".into()));
}

#[test]
fn undeclared_unset_and_invalid_names() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    // App variables are only visible through the component's own table.
    let (status, error) = var(&runner, "secret_thing");
    assert_eq!(status, 404);
    assert!(error.starts_with("Undefined"), "{error}");
    let (_, error) = var(&runner, "maybe");
    assert!(
        error.starts_with("Undefined"),
        "optional variable without value: {error}"
    );
    let (_, error) = var(&runner, "Not-Valid");
    assert!(error.starts_with("InvalidName"), "{error}");
}

#[test]
fn missing_required_variable_stops_start_up() {
    let state = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::probe(&state);
    config
        .env
        .retain(|(k, _)| k != "SPIN_VARIABLE_SECRET_THING");
    let (status, stderr) = config.fail_to_start();
    assert!(!status.success());
    assert!(
        stderr.contains("secret_thing") && stderr.contains("SPIN_VARIABLE_SECRET_THING"),
        "{stderr}"
    );
}
