//! Who is calling, as a handler sees it: [`Caller`], extracted only from a request the
//! authentication middleware admitted, and typed by the scope it was checked for.
//!
//! The types carry the rules:
//! - A handler gets the request's audit identity only through a `Caller`, and a `Caller` only
//!   exists for a request whose credential was verified (401 otherwise).
//! - The service's read functions take a caller that may read ([`Reader`], or a [`Writer`]
//!   reading back what it wrote); its write functions take an [`AuthorizedWrite`], which only a
//!   [`Writer`] can make. A handler that forgets to extract its caller does not compile, and a
//!   credential without `scim:write` cannot reach a write (403).

use crate::auth::Principal;
use crate::error::ApiError;
use crate::request::RequestContext;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use std::future::{Ready, ready};
use std::marker::PhantomData;
use store::{Scope, WriteContext};

mod sealed {
    pub trait Sealed {}
}

/// What a [`Caller`] was checked for: the scope its credential must hold, if any.
pub trait Access: sealed::Sealed + 'static {
    /// The scope required; `None`: any verified credential.
    const REQUIRED: Option<Scope>;
}

/// Access that may read resources: reading, and writing (a write answers with what it wrote).
pub trait MayRead: Access {}

/// Any verified credential (`/Bulk` checks each operation itself, `/Me` answers 501).
#[derive(Debug)]
pub enum Authenticated {}
/// A credential holding `scim:read`.
#[derive(Debug)]
pub enum Read {}
/// A credential holding `scim:write`.
#[derive(Debug)]
pub enum Write {}

impl sealed::Sealed for Authenticated {}
impl sealed::Sealed for Read {}
impl sealed::Sealed for Write {}
impl Access for Authenticated {
    const REQUIRED: Option<Scope> = None;
}
impl Access for Read {
    const REQUIRED: Option<Scope> = Some(Scope::Read);
}
impl Access for Write {
    const REQUIRED: Option<Scope> = Some(Scope::Write);
}
impl MayRead for Read {}
impl MayRead for Write {}

/// A verified caller whose credential holds what `A` requires.
#[derive(Debug, Clone)]
pub struct Caller<A: Access> {
    principal: Principal,
    request: RequestContext,
    access: PhantomData<fn() -> A>,
}

/// A caller that may read (`GET`, `POST …/.search`).
pub type Reader = Caller<Read>;
/// A caller that may write (`POST`, `PUT`, `PATCH`, `DELETE`).
pub type Writer = Caller<Write>;

impl<A: Access> Caller<A> {
    fn admit(principal: Principal, request: RequestContext) -> Result<Caller<A>, ApiError> {
        if let Some(scope) = A::REQUIRED
            && !principal.scopes.contains(scope)
        {
            return Err(ApiError::Forbidden(scope));
        }
        Ok(Caller {
            principal,
            request,
            access: PhantomData,
        })
    }

    /// The same caller checked for `B` instead (403 when its credential lacks `B`'s scope).
    pub fn require<B: Access>(&self) -> Result<Caller<B>, ApiError> {
        Caller::admit(self.principal.clone(), self.request.clone())
    }
}

impl Caller<Write> {
    /// The audit context of one write named `operation` (e.g. `PATCH /Groups/{id}`).
    pub fn write(&self, operation: impl Into<String>) -> AuthorizedWrite {
        AuthorizedWrite(WriteContext {
            request_id: self.request.request_id.clone(),
            token_name: Some(self.principal.name.clone()),
            source_addr: self.request.client_addr.map(|ip| ip.to_string()),
            operation: operation.into(),
        })
    }
}

/// A write the caller's credential allows, with its audit context. Only [`Writer::write`]
/// makes one; every write function of the service takes one.
#[derive(Debug, Clone)]
pub struct AuthorizedWrite(WriteContext);

impl AuthorizedWrite {
    /// The store's audit context for the write.
    pub fn context(&self) -> &WriteContext {
        &self.0
    }
}

impl<A: Access> FromRequest for Caller<A> {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let extensions = req.extensions();
        // The authentication middleware attaches the principal; a route outside its scope
        // never has one, so a caller extracted there is refused, not defaulted.
        let Some(principal) = extensions.get::<Principal>().cloned() else {
            return ready(Err(ApiError::Unauthorized(
                "an Authorization: Bearer token is required",
            )));
        };
        let request = extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_default();
        ready(Caller::admit(principal, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Scopes;

    fn principal(scopes: Scopes) -> Principal {
        Principal {
            name: "okta".into(),
            scopes,
        }
    }

    #[test]
    fn a_caller_is_admitted_only_with_the_scope_its_access_requires() {
        let request = RequestContext {
            request_id: "r1".into(),
            client_addr: Some("192.0.2.7".parse().unwrap()),
        };
        let reader = Caller::<Read>::admit(principal(Scopes::READ), request.clone()).unwrap();
        assert!(matches!(
            reader.require::<Write>(),
            Err(ApiError::Forbidden(Scope::Write))
        ));
        assert!(reader.require::<Authenticated>().is_ok());
        assert!(matches!(
            Caller::<Read>::admit(principal(Scopes::NONE), request.clone()),
            Err(ApiError::Forbidden(Scope::Read))
        ));
        let writer = Caller::<Write>::admit(principal(Scopes::ALL), request).unwrap();
        let write = writer.write("POST /Users");
        assert_eq!(write.context().token_name.as_deref(), Some("okta"));
        assert_eq!(write.context().source_addr.as_deref(), Some("192.0.2.7"));
        assert_eq!(write.context().request_id, "r1");
        assert_eq!(write.context().operation, "POST /Users");
    }
}
