//! The OpenAPI document: `ApiDoc` with its tags and security schemes, and
//! the modifiers run once the routes are in (`ServerErrors`,
//! `IdentityAlternatives`); committed as `openapi/openapi.json`.

use super::routes::api_routes;
use crate::domain::evidence::EvidenceFor;
use crate::error::{Problem, ProblemField};
use crate::ledger::entry::{Entry, EntryType, EvidenceOpening, Openings, SubjectOpening};
use actix_web::App;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "consent-ledger",
        description = "Opt-in consent ledger for WhatsApp Business and SMS messaging. Every opt-in and opt-out is an entry of a per-tenant, append-only, hash-chained Merkle log; `POST /v1/checks` answers whether a template may be sent, now. Errors are RFC 9457 problem+json; see /problems/{code}.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem, ProblemField, Entry, EntryType, Openings, SubjectOpening, EvidenceOpening)),
    tags(
        (name = "tenants", description = "Tenants and their settings (operator, admin)"),
        (name = "brands", description = "The company names a tenant may show (admin)"),
        (name = "keys", description = "API keys with roles (admin)"),
        (name = "recording", description = "Opt-ins, opt-outs and inbound interactions (collector)"),
        (name = "checks", description = "May we send this, now? (sender)"),
        (name = "ledger", description = "Entries and subjects with openings (auditor)"),
        (name = "forms", description = "Hosted opt-in forms: their definitions and versions (admin)"),
        (name = "documents", description = "Scans of signed paper forms (collector uploads, auditor reads)"),
        (name = "log", description = "Checkpoints, proofs, receipts and exports: the verifiable log (auditor)"),
        (name = "events", description = "Outbound events: endpoints that receive every change, signed as Standard Webhooks says, and their deliveries (admin)"),
        (name = "channels", description = "Channel settings for the webhooks, their dead letters, and campaign entry points with their QR codes (admin)"),
        (name = "webhooks", description = "WhatsApp Cloud API and Twilio SMS webhooks, authenticated by the providers' signatures"),
        (name = "pages", description = "The hosted opt-in and opt-out pages (public HTML)"),
        (name = "operations", description = "Health and problem types"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("A tenant's API key: clk_<12 hex>_<43 base64url>".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut operator = Http::new(HttpAuthScheme::Bearer);
        operator.description = Some("The operator token".to_owned());
        components.add_security_scheme("operator", SecurityScheme::Http(operator));
    }
}

/// Any operation may answer a 5XX problem (`internal`, or `not_ready` and
/// `busy` when the database is away or locked) and 429 `rate_limited`;
/// one that takes a body also 408 `request_timeout` and 413. Documented on
/// each that does not describe its own.
struct ServerErrors;

impl Modify for ServerErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let problem = |description: &str| {
            use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
            ResponseBuilder::new()
                .description(description)
                .content(
                    crate::api::PROBLEM_CONTENT_TYPE,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let server =
            problem("Problem on our side: `internal`, or `not_ready`/`busy`/`overloaded` (retry)");
        let limited = problem("`rate_limited`: too many requests, failed authentications, connections or exports; see `Retry-After`");
        let slow = problem("`request_timeout`: the body did not arrive in time");
        let large = problem("`payload_too_large`");
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let takes_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                // A status is described when it, or its class (`4XX`), is.
                let described = |responses: &std::collections::BTreeMap<String, _>,
                                 status: &str| {
                    let class = format!("{}XX", &status[..1]);
                    responses.keys().any(|s| s == status || *s == class)
                };
                if !responses.keys().any(|status| status.starts_with('5')) {
                    responses.insert("5XX".to_owned(), server.clone().into());
                }
                if !described(responses, "429") {
                    responses.insert("429".to_owned(), limited.clone().into());
                }
                if takes_body && !described(responses, "408") {
                    responses.insert("408".to_owned(), slow.clone().into());
                }
                if takes_body && !described(responses, "413") {
                    responses.insert("413".to_owned(), large.clone().into());
                }
            }
        }
    }
}

/// Everything that names a person takes `number` or `user_id`, exactly one
/// (docs/identities.md), and `region` only with a number: each request schema
/// with both says so with a `oneOf` of two branches that exclude each other
/// (a user id is WhatsApp's: no `sms` on opt-ins and checks). Opt-ins and
/// opt-outs add a `oneOf` of their capture channels, each with its evidence
/// row (docs/recording.md).
struct IdentityAlternatives;

impl Modify for IdentityAlternatives {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AllOfBuilder, OneOfBuilder, Schema};
        use utoipa::openapi::RefOr;
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            let RefOr::T(Schema::Object(object)) = schema else {
                continue;
            };
            let names_a_person = object.properties.contains_key("number")
                && object.properties.contains_key("user_id");
            let request = name.ends_with("Request") || name.ends_with("Query");
            let mut alternatives = Vec::new();
            if names_a_person && request {
                alternatives.push(identity_branches(name));
            }
            let evidence = match name.as_str() {
                "OptInRequest" => Some(EvidenceFor::OptIn),
                "OptOutRequest" => Some(EvidenceFor::OptOut),
                _ => None,
            };
            if let Some(kind) = evidence {
                let mut rows = OneOfBuilder::new();
                for branch in crate::domain::openapi::evidence_by_channel(kind) {
                    rows = rows.item(branch);
                }
                alternatives.push(Schema::OneOf(rows.build()));
            }
            if alternatives.is_empty() {
                continue;
            }
            let description = object.description.take();
            let mut whole = AllOfBuilder::new().item(Schema::Object(object.clone()));
            for alternative in alternatives {
                whole = whole.item(alternative);
            }
            *schema = RefOr::T(Schema::AllOf(whole.description(description).build()));
        }
    }
}

/// By `number` (a string; no `user_id`), or by `user_id` (a string; no
/// `number`, no `region`, and on opt-ins and checks no `sms`).
fn identity_branches(request: &str) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
    };
    let null = || ObjectBuilder::new().schema_type(Type::Null);
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let whatsapp = || string().enum_values(Some(["whatsapp"]));
    let by_number = ObjectBuilder::new()
        .required("number")
        .property("number", string())
        .property("user_id", null());
    let by_user_id = ObjectBuilder::new()
        .required("user_id")
        .property("user_id", string())
        .property("number", null())
        .property("region", null());
    let by_user_id = match request {
        "OptInRequest" => by_user_id.property(
            "message_channels",
            ArrayBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
                .items(whatsapp()),
        ),
        "CheckRequest" => by_user_id.property("channel", whatsapp()),
        _ => by_user_id,
    };
    Schema::OneOf(OneOfBuilder::new().item(by_number).item(by_user_id).build())
}

/// The OpenAPI document, as committed in `openapi/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, openapi) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(api_routes)
        .split_for_parts();
    let mut openapi = openapi;
    // After the routes: a modifier of `ApiDoc` would find no paths yet.
    ServerErrors.modify(&mut openapi);
    IdentityAlternatives.modify(&mut openapi);
    openapi
}

/// The committed form: pretty JSON with a final newline.
pub fn openapi_json() -> String {
    let mut text = openapi_document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
