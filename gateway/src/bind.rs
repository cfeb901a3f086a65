//! Sender constraints and step-up, checked after the token itself is valid: DPoP proofs
//! (RFC 9449), certificate-bound tokens (RFC 8705) and the route's step-up rules (RFC 9470).

use std::time::Instant;

use filters::dpop::{self, Binding, ProofContext, VerifiedProof};
use filters::{AuthError, Scheme, VerifiedToken};
use pingora::proxy::Session;

use crate::proxy::{Ctx, Gateway};
use crate::runtime::{Route, Runtime};

/// The request header carrying the DPoP proof.
pub const DPOP: &str = "dpop";
/// The response header carrying a fresh server nonce.
pub const DPOP_NONCE: &str = "dpop-nonce";

impl Gateway {
    /// Checks how the token was presented against what it is bound to. Returns the DPoP proof whose `jti` must still be recorded (after the
    /// revocation check, by [`Gateway::record_proof`]).
    pub(crate) fn check_binding(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        rt: &Runtime,
        route: &Route,
        (scheme, token): (Scheme, &str),
        t: &VerifiedToken,
    ) -> Result<Option<VerifiedProof>, AuthError> {
        let binding = Binding::of(&t.claims)?;
        if let Some(want) = binding.x5t_s256 {
            match client_cert_thumbprint(session) {
                Some(have) if have == want => {}
                _ => return Err(AuthError::CertificateMismatch),
            }
        }
        let proof = match (scheme, binding.jkt) {
            (Scheme::Bearer, Some(_)) => {
                ctx.dpop_challenge = true;
                return Err(AuthError::WrongTokenScheme(
                    "a DPoP-bound token must be sent with the DPoP scheme and a proof",
                ));
            }
            (Scheme::Bearer, None) if route.require_dpop => return Err(AuthError::DpopRequired),
            (Scheme::Bearer, None) => None,
            (Scheme::Dpop, None) => {
                return Err(AuthError::WrongTokenScheme(
                    "the token is not DPoP-bound: send it with the Bearer scheme",
                ))
            }
            (Scheme::Dpop, Some(jkt)) => Some(self.check_proof(session, rt, route, token, jkt)?),
        };
        Ok(proof)
    }

    /// RFC 9449 §4.3 and §7.1 for one request: one proof, valid for this method and URI,
    /// for this token, made with the key the token is bound to, with a fresh nonce when the
    /// route asks for one.
    fn check_proof(
        &self,
        session: &Session,
        rt: &Runtime,
        route: &Route,
        token: &str,
        jkt: &str,
    ) -> Result<VerifiedProof, AuthError> {
        let req = session.req_header();
        let mut proofs = req.headers.get_all(DPOP).iter();
        let (Some(value), None) = (proofs.next(), proofs.next()) else {
            return Err(AuthError::InvalidDpopProof(
                "exactly one DPoP header is required",
            ));
        };
        let proof = value
            .to_str()
            .map_err(|_| AuthError::InvalidDpopProof("the DPoP header is not ASCII"))?;
        let origin = route
            .public_origin
            .as_deref()
            .ok_or(AuthError::InvalidDpopProof(
                "DPoP is not enabled on this route (no public origin is configured)",
            ))?;
        let htu = dpop::normalize_htu(&format!("{origin}{}", req.uri.path())).ok_or(
            AuthError::InvalidDpopProof("the request URI cannot be compared with htu"),
        )?;
        let now = filters::validate::unix_now();
        let verified = dpop::verify_proof(
            proof,
            &rt.dpop.policy,
            &ProofContext {
                method: req.method.as_str(),
                htu: &htu,
                access_token: token,
                now,
            },
        )?;
        if verified.jkt != jkt {
            return Err(AuthError::DpopKeyMismatch);
        }
        if route.use_dpop_nonce {
            let fresh = verified
                .nonce
                .as_deref()
                .is_some_and(|n| rt.dpop.nonces.check(n, now));
            if !fresh {
                return Err(AuthError::UseDpopNonce);
            }
        }
        Ok(verified)
    }

    /// Records the proof's id in the shared store: a second use, on any replica sharing the
    /// store, is refused. A store failure always refuses (503): `on_store_error = "allow"`
    /// trades revocation freshness for availability, but never lets a proof be replayed.
    pub(crate) async fn record_proof(
        &self,
        rt: &Runtime,
        route: &Route,
        proof: &VerifiedProof,
    ) -> Result<(), AuthError> {
        let m = &self.shared.metrics;
        let started = Instant::now();
        let result = match rt.store.connected() {
            Ok(store) => {
                store
                    .0
                    .use_once(&proof.replay_id(), rt.dpop.policy.replay_ttl())
                    .await
            }
            Err(e) => Err(e),
        };
        m.dpop_replay_duration
            .observe(started.elapsed().as_secs_f64());
        let label = match &result {
            Ok(true) => "first_use",
            Ok(false) => "replay",
            Err(_) => "error",
        };
        m.dpop_replay_checks.with_label_values(&[label]).inc();
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::DpopReplay),
            Err(e) => {
                tracing::warn!(route = &*route.id, error = %e, "DPoP replay cache unavailable; request refused");
                Err(AuthError::StoreUnavailable)
            }
        }
    }
}

/// base64url SHA-256 of the client certificate's DER, when the connection is TLS and the
/// client presented one (Pingora records that digest at the handshake).
fn client_cert_thumbprint(session: &Session) -> Option<String> {
    let ssl = session.digest()?.ssl_digest.as_ref()?;
    (!ssl.cert_digest.is_empty()).then(|| dpop::certificate_thumbprint(&ssl.cert_digest))
}
