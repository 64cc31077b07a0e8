//! Which identity-system channels can remove users, as configured, and
//! whether each one set can work: the health check's `removal` entry. Each
//! receiver applies the same rules when it answers (an unusable secret is
//! the same as none: the route answers 404, or 503 for the v1 webhook).

use crate::okta::HookSecret;
use crate::scim::ScimToken;
use crate::ssf::{SsfConfig, SsfError};
use crate::webhook::WebhookSecret;

/// The variables the removal channels read (`None` or empty: unset).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChannelVariables<'a> {
    pub webhook_secret: Option<&'a str>,
    pub scim_token: Option<&'a str>,
    pub okta_hook_secret: Option<&'a str>,
    pub ssf_issuer: Option<&'a str>,
    pub ssf_audience: Option<&'a str>,
    pub oidc_issuer: Option<&'a str>,
    pub oidc_user_claim: Option<&'a str>,
}

/// The channels that are on (`webhook`, `scim`, `okta`, `ssf`, as
/// `user.removed`'s `details.channel` names them), or what is wrong with the
/// ones that are set but cannot work (never a value).
pub fn check_removal_channels(v: ChannelVariables<'_>) -> Result<Vec<&'static str>, String> {
    let set = |value: Option<&str>| value.is_some_and(|s| !s.trim().is_empty());
    let mut on = Vec::new();
    let mut problems = Vec::new();
    if set(v.webhook_secret) {
        match WebhookSecret::parse(v.webhook_secret) {
            Ok(_) => on.push("webhook"),
            Err(_) => problems.push(
                "webhook_secret is not whsec_<base64>: /webhooks/user-removed answers 503".into(),
            ),
        }
    }
    if set(v.scim_token) {
        match ScimToken::from_variable(v.scim_token) {
            Ok(_) => on.push("scim"),
            Err(_) => problems.push(format!(
                "scim_token is shorter than {} characters: /scim/v2 answers 404",
                crate::scim::MIN_TOKEN_LEN
            )),
        }
    }
    if set(v.okta_hook_secret) {
        match HookSecret::from_variable(v.okta_hook_secret) {
            Ok(_) => on.push("okta"),
            Err(_) => problems.push(format!(
                "okta_hook_secret is shorter than {} characters: /webhooks/okta answers 404",
                crate::okta::MIN_SECRET_LEN
            )),
        }
    }
    match SsfConfig::from_variables(
        v.ssf_issuer,
        v.ssf_audience,
        v.oidc_issuer,
        v.oidc_user_claim,
    ) {
        Ok(_) => on.push("ssf"),
        Err(SsfError::Off) => {}
        Err(SsfError::NotConfigured(detail)) => problems.push(detail),
        Err(_) => problems.push("the ssf_* variables cannot work".into()),
    }
    if problems.is_empty() {
        Ok(on)
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHSEC: &str = "whsec_CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYY=";

    #[test]
    fn nothing_set_is_no_channel_and_no_problem() {
        assert_eq!(
            check_removal_channels(ChannelVariables::default()),
            Ok(vec![])
        );
    }

    #[test]
    fn each_usable_channel_is_on() {
        let on = check_removal_channels(ChannelVariables {
            webhook_secret: Some(WHSEC),
            scim_token: Some("scim-token-0123456789"),
            okta_hook_secret: Some("okta-secret-0123456789"),
            ssf_issuer: Some("https://transmitter.example.com"),
            ssf_audience: Some("https://keygate.example.com"),
            ..ChannelVariables::default()
        });
        assert_eq!(on, Ok(vec!["webhook", "scim", "okta", "ssf"]));
    }

    #[test]
    fn unusable_secrets_are_named_never_shown() {
        let problem = check_removal_channels(ChannelVariables {
            webhook_secret: Some("not-a-whsec"),
            scim_token: Some("short"),
            okta_hook_secret: Some("short-okta"),
            ssf_issuer: Some("ftp://transmitter.example.com"),
            ..ChannelVariables::default()
        })
        .unwrap_err();
        for name in [
            "webhook_secret",
            "scim_token",
            "okta_hook_secret",
            "ssf_issuer",
        ] {
            assert!(problem.contains(name), "{problem}");
        }
        for value in ["not-a-whsec", "short-okta"] {
            assert!(!problem.contains(value), "{problem}");
        }
    }
}
