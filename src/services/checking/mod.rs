//! Checking consent (docs/decisions.md): "may we send this, now?", for one
//! check, a batch, or every question a subject's report answers. One
//! evaluator reads committed state (no cache across requests), what one
//! request reads once it keeps (the brands, the tenant's WhatsApp numbers,
//! a batch's identities read together), and decides through
//! `domain/decision.rs`. Each call owns its read transaction.

mod group;
mod report;

pub use report::{report_subject, Report, SubjectConsent};

use super::error::{ServiceError, ServiceResult};
use crate::domain::decision::{self, ConsentEvent, Question, Reason, Window};
use crate::domain::identity::Identity;
use crate::domain::ids::BrandId;
use crate::domain::number::E164;
use crate::domain::person::parse_identity;
use crate::domain::problem::{ErrorCode, Invalid};
use crate::domain::purpose::{MessageChannel, Purpose};
use crate::domain::request::{check_phone_number_id, check_user_id_channels};
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::channels::whatsapp_phone_number_ids;
use crate::store::tenants::{active_brands, find_brand, BrandRow, TenantRow};
use crate::store::DbConn;
use group::{GroupRead, Prefetched};
use std::collections::HashMap;

/// One check as asked.
#[derive(Debug, Clone)]
pub struct Ask {
    pub named: Named,
    pub purpose: Purpose,
    /// Matched against all brands, active or retired; `None`: the tenant's
    /// only active brand.
    pub brand: Option<String>,
    pub channel: MessageChannel,
    pub business_phone_number_id: Option<String>,
    /// The decision is to be answered with a signed statement
    /// (`services::statements`), naming the sender's `reference`.
    pub statement: bool,
    pub reference: Option<String>,
}

/// The identity a check names, as sent: exactly one of `number` (national
/// ones in `region`, else in the tenant's `default_region`) and `user_id`;
/// not validated yet.
#[derive(Debug, Clone)]
pub struct Named {
    pub number: Option<String>,
    pub user_id: Option<String>,
    pub region: Option<String>,
}

/// The decision about one check.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub identity: Identity,
    pub purpose: Purpose,
    /// The brand's name as stored.
    pub brand: String,
    pub channel: MessageChannel,
    /// A business-initiated message (a template) may be sent now.
    pub allowed: bool,
    pub reason: Reason,
    /// The event the decision rests on.
    pub consent: Option<ConsentEvent>,
    pub window: Window,
    /// The window is closed: any message needs a template.
    pub template_required: bool,
    /// The window of that business number is open and the person has not
    /// opted out.
    pub session_reply_allowed: bool,
}

/// Decides one check. On SQLite its reads share one read transaction: they
/// take the database's read lock once instead of once each (single checks
/// 10,600 -> 14,400/s in the service benchmark), and see one snapshot. On
/// PostgreSQL a transaction would be two more round trips; each statement
/// reads committed state.
pub fn check_one(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantRow,
    ask: &Ask,
    now: Timestamp,
) -> ServiceResult<Evaluated> {
    let mut evaluator = Evaluator::new(master, tenant, now);
    if conn.is_postgres() {
        evaluator.check(conn, ask)
    } else {
        conn.snapshot(|conn| evaluator.check(conn, ask))
    }
}

/// Decides a batch in one snapshot and one `now`: every item's identity
/// parsed first, then the batch's identities read together, then each item
/// decided and handed to `each` with its index, in order. An item the door
/// could not read (`Err`) is handed back as it came; an item a rule
/// refuses is answered in its place; a failure of the store fails the
/// batch.
pub fn check_many<E: From<ServiceError>>(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantRow,
    items: Vec<Result<Ask, E>>,
    now: Timestamp,
    mut each: impl FnMut(usize, Result<Evaluated, E>),
) -> ServiceResult<()> {
    let parsed: Vec<Result<(Ask, Who), E>> = items
        .into_iter()
        .map(|item| {
            let ask = item?;
            let who = Who::of(tenant, &ask).map_err(ServiceError::from)?;
            Ok((ask, who))
        })
        .collect();
    conn.snapshot(|conn| {
        let mut asked: Vec<&str> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|(_, who)| who.identity().as_str()))
            .collect();
        asked.sort_unstable();
        asked.dedup();
        let many = Prefetched::read(conn, master, tenant, &asked)?;
        let mut evaluator = Evaluator::new(master, tenant, now);
        evaluator.many = Some(many);
        for (index, item) in parsed.into_iter().enumerate() {
            let outcome = match item {
                Ok((ask, who)) => match evaluator.check_item(conn, &ask, who) {
                    Ok(evaluated) => Ok(evaluated),
                    Err(refused) if refused.is_refusal() => Err(E::from(refused)),
                    Err(failed) => return Err(failed),
                },
                Err(unread) => Err(unread),
            };
            each(index, outcome);
        }
        Ok(())
    })
}

/// A check's identity: validated (a user id, or a number checked against
/// the numbering plan), or a number only shaped like canonical E.164 (no
/// `region`, no `user_id`), to be validated unless the tenant already holds
/// state for it (which it stored only for valid numbers, in exactly this
/// form).
enum Who {
    Validated(Identity),
    Shaped(Identity),
}

impl Who {
    fn of(tenant: &TenantRow, ask: &Ask) -> Result<Self, Invalid> {
        let named = &ask.named;
        let shaped = match (&named.number, &named.user_id, &named.region) {
            (Some(number), None, None) => E164::from_canonical(number),
            _ => None,
        };
        Ok(match shaped {
            Some(number) => Who::Shaped(Identity::Number(number)),
            None => Who::Validated(identity_of(tenant, ask)?),
        })
    }

    fn identity(&self) -> &Identity {
        match self {
            Who::Validated(i) | Who::Shaped(i) => i,
        }
    }
}

/// A check's identity: exactly one of `number` (national ones in the
/// tenant's `default_region`) and `user_id`; a user id only on WhatsApp.
fn identity_of(tenant: &TenantRow, ask: &Ask) -> Result<Identity, Invalid> {
    let named = &ask.named;
    let identity = parse_identity(
        named.number.as_deref(),
        named.user_id.as_deref(),
        named.region.as_deref(),
        tenant.policy.default_region(),
    )?;
    let sms = ask.channel == MessageChannel::Sms;
    check_user_id_channels(&identity, "channel", sms)?;
    Ok(identity)
}

/// What one request (a check, or a whole batch) reads once.
struct Evaluator<'a> {
    master: &'a MasterKey,
    tenant: &'a TenantRow,
    now: Timestamp,
    brands: HashMap<Option<String>, BrandRow>,
    phone_number_ids: Option<Vec<String>>,
    /// A batch's identities, read together before its items are decided.
    many: Option<Prefetched>,
}

impl<'a> Evaluator<'a> {
    fn new(master: &'a MasterKey, tenant: &'a TenantRow, now: Timestamp) -> Self {
        Self {
            master,
            tenant,
            now,
            brands: HashMap::new(),
            phone_number_ids: None,
            many: None,
        }
    }

    /// A single check. A number already in canonical E.164 is looked up as
    /// it was sent, and checked against the numbering plan only when the
    /// tenant holds nothing of it: the tenant stored state only for numbers
    /// validated in exactly this form.
    fn check(&mut self, conn: &mut DbConn, ask: &Ask) -> ServiceResult<Evaluated> {
        match Who::of(self.tenant, ask)? {
            Who::Shaped(identity) => {
                let read = GroupRead::read(conn, self.master, self.tenant, identity.as_str())?;
                if !read.known {
                    identity_of(self.tenant, ask)?;
                }
                self.evaluate(conn, ask, identity, Some(read))
            }
            Who::Validated(identity) => self.evaluate(conn, ask, identity, None),
        }
    }

    /// A batch's item: its number validated now unless the batch's state
    /// shows the tenant already holds it (then it was valid when stored).
    fn check_item(&mut self, conn: &mut DbConn, ask: &Ask, who: Who) -> ServiceResult<Evaluated> {
        let identity = match who {
            Who::Validated(i) => i,
            Who::Shaped(i) if self.many.as_ref().is_some_and(|m| m.knows(i.as_str())) => i,
            Who::Shaped(_) => identity_of(self.tenant, ask)?,
        };
        self.evaluate(conn, ask, identity, None)
    }

    /// Decides a check of a parsed identity, over its whole group (`read`
    /// when it was read already).
    fn evaluate(
        &mut self,
        conn: &mut DbConn,
        ask: &Ask,
        identity: Identity,
        read: Option<GroupRead>,
    ) -> ServiceResult<Evaluated> {
        check_phone_number_id(ask.business_phone_number_id.as_deref())?;
        let brand = self.brand(conn, ask.brand.as_deref())?;
        let read = match (read, &self.many) {
            (Some(read), _) => read,
            (None, Some(many)) => many.group(identity.as_str()),
            (None, None) => GroupRead::read(conn, self.master, self.tenant, identity.as_str())?,
        };
        let question = Question {
            purpose: ask.purpose,
            brand_id: BrandId(brand.id),
            channel: ask.channel,
        };
        let outcome = read.decide(question, self.tenant, self.now);
        let (window, certain) = match ask.channel {
            MessageChannel::Sms => (Window::closed(None), false),
            MessageChannel::Whatsapp => {
                let (named, now) = (ask.business_phone_number_id.as_deref(), self.now);
                let configured = self.phone_number_ids(conn, named)?;
                decision::window_for(&read.inbound, named, configured, now)
            }
        };
        let whatsapp = ask.channel == MessageChannel::Whatsapp;
        crate::metrics::decision(outcome.reason.as_str());
        Ok(Evaluated {
            identity,
            purpose: ask.purpose,
            brand: brand.name,
            channel: ask.channel,
            allowed: outcome.reason == Reason::Allowed,
            reason: outcome.reason,
            template_required: whatsapp && !window.open,
            session_reply_allowed: whatsapp
                && window.open
                && certain
                && outcome.reason != Reason::OptedOut,
            window,
            consent: outcome.consent.cloned(),
        })
    }

    /// The tenant's WhatsApp phone number ids, read once and only when a
    /// check names no business number id (then none are needed).
    fn phone_number_ids(
        &mut self,
        conn: &mut DbConn,
        named: Option<&str>,
    ) -> ServiceResult<&[String]> {
        Ok(match (named, &mut self.phone_number_ids) {
            (Some(_), _) => &[],
            (None, Some(ids)) => ids,
            (None, configured @ None) => {
                configured.insert(whatsapp_phone_number_ids(conn, &self.tenant.id)?)
            }
        })
    }

    /// The brand of a check (any status), or the only active brand.
    fn brand(&mut self, conn: &mut DbConn, name: Option<&str>) -> ServiceResult<BrandRow> {
        let key = name.map(crate::domain::text::fold_key);
        if let Some(found) = self.brands.get(&key) {
            return Ok(found.clone());
        }
        let tenant = &self.tenant.id;
        let brand = match name {
            Some(name) => find_brand(conn, tenant, name)?.ok_or_else(unknown_brand)?,
            None => {
                let mut active = active_brands(conn, tenant)?;
                if active.len() != 1 {
                    return Err(brand_required().into());
                }
                active.remove(0)
            }
        };
        self.brands.insert(key, brand.clone());
        Ok(brand)
    }
}

fn unknown_brand() -> Invalid {
    Invalid::field(
        ErrorCode::UnknownBrand,
        "brand",
        "unknown_brand",
        "`brand` is not a brand of this tenant",
    )
}

fn brand_required() -> Invalid {
    Invalid::field(
        ErrorCode::BrandRequired,
        "brand",
        "required",
        "the tenant has more than one active brand (or none): name the `brand`",
    )
}
