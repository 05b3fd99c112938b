//! What a verified Twilio inbound SMS carries (docs/webhooks.md), pure: the
//! checks of its account and number, and the message it is. The handler is
//! `api/webhooks/twilio.rs`.

use super::message::{InboundMessage, Provider};
use super::settings::StoredTwilio;
use super::whatsapp_payload::Content;
use crate::domain::number::E164;
use crate::domain::time::Timestamp;

/// A form parameter by name.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What a signed request is.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A message to record.
    Message(Box<InboundMessage>),
    /// Nothing this channel records, and why (for the log).
    Ignored(&'static str),
}

/// Reads a signed request (its signature already checked). `Err` names why
/// it is refused: not the tenant's account, or not one of its numbers.
/// `received` is when it arrived: Twilio's request carries no timestamp.
/// A signed request of a call to a hosted phone opt-in (docs/ivr.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub call_id: String,
    /// The caller's number; `None` when withheld or not a number.
    pub caller: Option<E164>,
    /// The key pressed, once the prompt was read.
    pub digits: Option<String>,
    /// Twilio's caller-id attestation (`StirVerstat`), when sent.
    pub stir_verstat: Option<String>,
}

/// Reads a call's parameters: the tenant's account, one of its numbers
/// called, a call id.
pub fn read_call(params: &[(String, String)], twilio: &StoredTwilio) -> Result<Call, &'static str> {
    if param(params, "AccountSid") != Some(twilio.account_sid.as_str()) {
        return Err("AccountSid is not the tenant's Twilio account");
    }
    param(params, "To")
        .and_then(|to| E164::parse(to, None, None).ok())
        .filter(|to| twilio.numbers.iter().any(|n| n == to.as_str()))
        .ok_or("To is not one of the tenant's Twilio numbers")?;
    let call_id = param(params, "CallSid")
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .ok_or("a call without CallSid")?;
    let short = |name: &str| {
        param(params, name)
            .filter(|v| !v.is_empty() && v.len() <= 64)
            .map(str::to_owned)
    };
    Ok(Call {
        call_id: call_id.to_owned(),
        caller: param(params, "From").and_then(|from| E164::parse(from, None, None).ok()),
        digits: short("Digits"),
        stir_verstat: short("StirVerstat"),
    })
}

pub fn read_delivery(
    params: &[(String, String)],
    twilio: &StoredTwilio,
    received: Timestamp,
) -> Result<Delivery, &'static str> {
    if param(params, "AccountSid") != Some(twilio.account_sid.as_str()) {
        return Err("AccountSid is not the tenant's Twilio account");
    }
    let from = param(params, "From").unwrap_or_default();
    if from.starts_with("whatsapp:") {
        return Ok(Delivery::Ignored(
            "WhatsApp through Twilio is not this channel",
        ));
    }
    let to = param(params, "To")
        .and_then(|to| E164::parse(to, None, None).ok())
        .filter(|to| twilio.numbers.iter().any(|n| n == to.as_str()))
        .ok_or("To is not one of the tenant's Twilio numbers")?;
    let Some(message_id) = param(params, "MessageSid")
        .or_else(|| param(params, "SmsSid"))
        .filter(|id| !id.is_empty() && id.len() <= 64)
    else {
        return Ok(Delivery::Ignored(
            "a signed Twilio request without MessageSid",
        ));
    };
    let content = match param(params, "Body") {
        Some(body) if !body.is_empty() => Content::Text {
            body: body.to_owned(),
            reply_to: None,
        },
        _ => Content::Other,
    };
    Ok(Delivery::Message(Box::new(InboundMessage {
        provider: Provider::Twilio,
        sender: Provider::Twilio.sender(Some(from), None, None),
        waba: None,
        from: Some(from.to_owned()),
        message_id: message_id.to_owned(),
        business: to.as_str().to_owned(),
        captured_at: Some(received),
        content,
    })))
}
