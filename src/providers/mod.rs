//! What the providers' messages mean (WhatsApp's Cloud API, Twilio), for
//! the channels that record by themselves (docs/webhooks.md), pure: the
//! providers' payloads and signatures, `wa_id`s, what a message asks for,
//! the channel settings and what a dead letter keeps. The handlers are in
//! `api/webhooks/`; recording is in `services/inbound.rs`.

pub mod letter;
pub mod message;
pub mod settings;
pub mod signature;
pub mod standard_webhooks;
pub mod twilio;
pub mod wa_id;
pub mod whatsapp;
pub mod whatsapp_payload;
