//! The adapters' one-line wrapping of a read in the read cache (`crate::cache`), with
//! `x-cache: HIT|MISS`.

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::api::error::ApiError;
use crate::auth::caller::Caller;
use crate::cache::{
    Audience, CacheKind, CacheValue, CallPath, Coverage, Found, Outcome, PreEncoded, VersionsAhead,
    request_digest,
};
use crate::state::AppState;

/// Answers `request` from the read cache or by `compute` (the adapter's use case call), with
/// `x-cache: HIT` or `MISS` in the response metadata. The key holds the whole request, the
/// caller's audience ([`Audience::of`]) and the versions of `coverage`. Errors are never
/// cached; they map to a status as the adapter's own would.
///
/// The answer goes out as the cache holds it, encoded ([`PreEncoded`]): the message in the
/// `Response` is empty, and the observe layer sends the bytes in its place.
pub async fn cached<Req, Res>(
    state: &AppState,
    kind: CacheKind,
    request: &Request<Req>,
    coverage: Coverage,
    compute: impl Future<Output = Result<Res, ApiError>>,
) -> Result<Response<Res>, Status>
where
    Req: prost::Message,
    Res: prost::Message + Default + Clone + Send + Sync + 'static,
{
    let read = Read::of(request)?;
    let (found, outcome) = read.look_up(state, kind, &coverage, compute).await?;
    let mut response = read.answered(state, &coverage, Res::default(), outcome);
    response
        .extensions_mut()
        .insert(PreEncoded(found.into_encoded()));
    Ok(response)
}

/// [`cached`] for an entry that is not the answer itself: `finish` turns the entry, cached or
/// just computed, into the answer (for figures that must be read when the answer is sent, such
/// as who is online now).
pub async fn cached_then<Req, Entry, Res>(
    state: &AppState,
    kind: CacheKind,
    request: &Request<Req>,
    coverage: Coverage,
    compute: impl Future<Output = Result<Entry, ApiError>>,
    finish: impl FnOnce(Entry) -> Res,
) -> Result<Response<Res>, Status>
where
    Req: prost::Message,
    Entry: CacheValue + Clone + Send + Sync + 'static,
{
    let read = Read::of(request)?;
    let (found, outcome) = read.look_up(state, kind, &coverage, compute).await?;
    Ok(read.answered(state, &coverage, finish(found.into_value()), outcome))
}

/// What a cached read takes from its request: who asks, the key's parts, the versions read
/// ahead and the method.
struct Read<'a> {
    caller: &'a Caller,
    audience: Audience,
    digest: String,
    ahead: Option<&'a VersionsAhead>,
    path: Option<&'a CallPath>,
}

impl<'a> Read<'a> {
    fn of<Req: prost::Message>(request: &'a Request<Req>) -> Result<Self, Status> {
        let caller = Caller::of(request)?;
        Ok(Self {
            caller,
            audience: Audience::of(caller),
            digest: request_digest(request.get_ref()),
            ahead: request.extensions().get::<VersionsAhead>(),
            path: request.extensions().get::<CallPath>(),
        })
    }

    /// The cache's answer for this request, or `compute`'s.
    async fn look_up<T: CacheValue + Clone + Send + Sync + 'static>(
        &self,
        state: &AppState,
        kind: CacheKind,
        coverage: &Coverage,
        compute: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<(Found<T>, Outcome), ApiError> {
        let (audience, digest) = (&self.audience, &self.digest);
        state
            .cache
            .get_or_compute_ahead(kind, audience, digest, coverage, self.ahead, compute)
            .await
    }

    /// `message` as the answer, with `x-cache`; the coverage is remembered for the user's
    /// next reads ahead.
    fn answered<Res>(
        &self,
        state: &AppState,
        coverage: &Coverage,
        message: Res,
        outcome: Outcome,
    ) -> Response<Res> {
        state.cache.learn(
            self.caller.user_id,
            coverage,
            self.path.map(|path| &*path.0),
        );
        let mut response = Response::new(message);
        response
            .metadata_mut()
            .insert("x-cache", MetadataValue::from_static(outcome.as_str()));
        response
    }
}

/// [`cached`] for a read whose sites are not known in advance ([`Coverage::Everything`]).
pub async fn cached_read<Req, Res>(
    state: &AppState,
    kind: CacheKind,
    request: &Request<Req>,
    compute: impl Future<Output = Result<Res, ApiError>>,
) -> Result<Response<Res>, Status>
where
    Req: prost::Message,
    Res: prost::Message + Default + Clone + Send + Sync + 'static,
{
    cached(state, kind, request, Coverage::Everything, compute).await
}
