//! The route table (`api_routes`, every documented handler) and what
//! answers a request no route took: 405 with `Allow` on a known path, else
//! 404.

use crate::api;
use crate::error::{ApiError, ErrorCode};
use actix_web::{web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

/// Every documented route.
pub fn api_routes(cfg: &mut ServiceConfig) {
    cfg.service(api::tenants::create_tenant)
        .service(api::tenants::get_tenant)
        .service(api::tenants::patch_tenant)
        .service(api::brands::list_brands)
        .service(api::brands::create_brand)
        .service(api::brands::retire_brand)
        .service(api::keys::list_keys)
        .service(api::keys::create_key)
        .service(api::keys::revoke_key)
        .service(api::records::create_opt_in)
        .service(api::records::create_opt_out)
        .service(api::records::create_interaction)
        .service(api::imports::create_import)
        .service(api::imports::get_import)
        .service(api::forms::list_forms)
        .service(api::forms::create_form)
        .service(api::forms::get_form)
        .service(api::forms::replace_form)
        .service(api::documents::upload_document)
        .service(api::documents::get_document)
        .service(api::checks::check)
        .service(api::checks::check_batch)
        .service(api::statements::keep_statements)
        .service(api::statements::query_statements)
        .service(api::changes::read_changes)
        .service(api::changes::feed_key)
        .service(api::events::create_endpoint)
        .service(api::events::list_endpoints)
        .service(api::events::delete_endpoint)
        .service(api::events::list_deliveries)
        .service(api::events::retry_delivery)
        .service(api::subjects::query_subject)
        .service(api::subjects::erase_subject)
        .service(api::entries::get_entry)
        .service(api::log::receipt)
        .service(api::log::latest_checkpoint)
        .service(api::log::checkpoint_by_size)
        .service(api::log::keys)
        .service(api::log::inclusion_proof)
        .service(api::log::consistency_proof)
        .service(api::export::export)
        .service(api::export::dossier)
        .service(api::channel_settings::get_channels)
        .service(api::channel_settings::put_channels)
        .service(api::entry_points::create_entry_point)
        .service(api::entry_points::list_entry_points)
        .service(api::entry_points::entry_point_svg)
        .service(api::entry_points::entry_point_png)
        .service(api::ivr_flows::put_flow)
        .service(api::dead_letters::dead_letters)
        .service(api::dead_letters::dead_letter)
        .service(api::reviews::list_reviews)
        .service(api::reviews::settle_review)
        .service(api::audit::audit_events)
        .service(api::webhooks::whatsapp::whatsapp_handshake)
        .service(api::webhooks::whatsapp::whatsapp_notification)
        .service(api::webhooks::twilio::twilio_message)
        .service(api::webhooks::twilio_voice::twilio_call)
        .service(api::pages::show_page)
        .service(api::pages::post_page)
        .service(api::health::healthz)
        .service(api::health::readyz)
        .service(api::health::problem_type);
}

/// A path parameter that does not parse names no resource: 404.
pub(super) fn path_errors() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError::not_found("no such resource").into())
}

/// A query string that does not parse: 422 `invalid_request`, naming `query`.
pub(super) fn query_errors() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|_, _| {
        ApiError::invalid_field("query", "invalid_value", "the query string is not valid").into()
    })
}

/// The paths served that the OpenAPI document does not list (Swagger UI
/// and the document itself): GET only.
const UNDOCUMENTED_GETS: &[&str] = &["/", "/docs", "/docs/{_:.*}", "/openapi.json"];

/// The documented paths with their methods, to tell a wrong method (405
/// with `Allow`) from a path that does not exist (404).
pub(super) struct KnownRoutes(Vec<(actix_web::dev::ResourceDef, String)>);

impl KnownRoutes {
    pub(super) fn of(openapi: &utoipa::openapi::OpenApi) -> Self {
        let document = serde_json::to_value(openapi).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = document["paths"].as_object() {
            for (path, item) in paths {
                let methods: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .filter(|m| {
                        ["get", "put", "post", "delete", "patch", "head", "options"]
                            .contains(&m.as_str())
                    })
                    .map(|m| m.to_uppercase())
                    .collect();
                routes.push((
                    actix_web::dev::ResourceDef::new(path.as_str()),
                    methods.join(", "),
                ));
            }
        }
        // Served beside the document, not in it.
        for path in UNDOCUMENTED_GETS {
            routes.push((actix_web::dev::ResourceDef::new(*path), "GET".to_owned()));
        }
        Self(routes)
    }

    /// The `Allow` value of the documented path `path` matches, if any.
    fn allowed(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, allow)| allow.as_str())
    }
}

/// Anything no route took: 405 on a known path, else 404.
pub(super) fn unrouted(routes: &KnownRoutes, req: &actix_web::HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    match routes.allowed(req.path()) {
        Some(allow) => {
            let mut response = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!(
                    "{} is not allowed here; this path takes {allow}",
                    req.method()
                ),
            )
            .error_response();
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::ALLOW, value);
            }
            response
        }
        None => ApiError::not_found("no such route").error_response(),
    }
}
