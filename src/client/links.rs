//! Links: the owner hands out one folder of a library by URL, to people without an account.
//!
//! ```text
//! https://HOST:PORT/l/LINK#tKEY.CERT      a folder of one snapshot: KEY is its tree's key
//! https://HOST:PORT/l/LINK#fKEY.CERT      --follow: KEY opens a pointer the owner re-points
//! ```
//! KEY is 32 bytes in unpadded base64url and CERT the server certificate's SHA-256 (hex), so
//! a visitor's client pins the right server without asking. The fragment is never sent to
//! the server (HTTP clients drop it) and no log line holds it. What a key reaches, and why
//! nothing else, is argued in docs/FORMAT.md.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::config::KnownServers;
use super::objects::ObjectSource;
use super::remote::{parse_server_url, Remote, RemoteError};
use super::restore::{self, Found, Origin, RestoreSummary};
use super::session::{new_library_id, OpenLibrary, Session};
use super::snapshots::resolve;
use super::store::Store;
use super::{ClientError, Result};
use crate::api::links::{
    CreateLinkRequest, LinkFetchRequest, LinkInfo, LinkList, OpenLinkRequest, OpenLinkResponse,
    PointerUpdate,
};
use crate::api::{frame, routes, ErrorCode};
use crate::crypto::{BlobKind, ObjectId, ObjectKey, SymmetricKey};

/// What the owner's clients keep about a link, boxed to the owner's own key on the server.
/// It names the link and library it was made for, so a server that files it under another
/// link or library cannot have the owner's client re-point that one (issue 26).
#[derive(Serialize, Deserialize)]
struct Label {
    /// The link's id; labels written before it was bound lack it.
    #[serde(default)]
    link: Option<String>,
    library: String,
    path: String,
    snapshot: Option<ObjectId>,
    /// `--follow` links: the key the pointer is sealed under (also in the URL).
    #[serde(default)]
    link_key: Option<String>,
}

pub struct CreateOptions {
    /// `LIBRARY` or `LIBRARY:PATH`.
    pub spec: String,
    pub snapshot: Option<String>,
    pub expires_in: Option<std::time::Duration>,
    pub password: Option<Zeroizing<String>>,
    pub follow: bool,
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub id: String,
    pub url: String,
    pub library: String,
    pub path: String,
    pub follow: bool,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct LinkView {
    pub id: String,
    pub library: String,
    pub path: String,
    /// The snapshot shown, or `None` for a link that follows the newest.
    pub snapshot: Option<String>,
    pub follow: bool,
    pub password: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn pointer_context(link_id: &str) -> Vec<u8> {
    [b"ibackup link pointer ".as_slice(), link_id.as_bytes()].concat()
}

fn display_path(components: &[Vec<u8>]) -> String {
    let joined: Vec<String> = components
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("/{}", joined.join("/"))
}

/// The key of the folder at `components` of `root`; a file or a missing path is an error.
fn folder_key(
    source: &dyn ObjectSource,
    root: ObjectKey,
    components: &[Vec<u8>],
    what: &str,
) -> Result<ObjectKey> {
    match restore::find(source, root, components, what)? {
        Found::Folder(key, _) => Ok(key),
        Found::Entry(_) => Err(ClientError::Usage(format!(
            "`{}` is a file; a link shows a folder: link the folder that holds it",
            display_path(components)
        ))),
    }
}

/// The URL a link is opened with.
fn url(server: &str, id: &str, follow: bool, key: &[u8; 32], pin: Option<&str>) -> String {
    let kind = if follow { 'f' } else { 't' };
    let mut url = format!(
        "{}{}#{kind}{}",
        server.trim_end_matches('/'),
        routes::link(routes::LINK_PAGE, id),
        URL_SAFE_NO_PAD.encode(key)
    );
    if let Some(pin) = pin {
        url.push('.');
        url.push_str(pin.trim_start_matches("SHA256:"));
    }
    url
}

pub fn create(session: &Session, options: &CreateOptions) -> Result<Created> {
    let (name, path) = match options.spec.split_once(':') {
        Some((name, path)) => (name, path),
        None => (options.spec.as_str(), "/"),
    };
    if options.follow && options.snapshot.is_some() {
        return Err(ClientError::Usage(
            "a --follow link always shows the newest snapshot; leave out --snapshot".into(),
        ));
    }
    let library = session.open_owned(name)?;
    let store = Store::new(&session.remote, &library);
    let (snapshot_id, snapshot) = resolve(&store, options.snapshot.as_deref().unwrap_or("latest"))?;
    let components = restore::components(path);
    let what = format!("snapshot {}", snapshot_id.short());
    let key = folder_key(&store, snapshot.tree, &components, &what)?;
    let id = new_library_id();
    let (pointer, link_key, fragment_key) = if options.follow {
        let link_key = SymmetricKey::generate();
        let pointer = link_key.seal_bound(&pointer_context(&id), key.as_bytes());
        (
            pointer,
            Some(URL_SAFE_NO_PAD.encode(link_key.as_bytes())),
            *link_key.as_bytes(),
        )
    } else {
        (Vec::new(), None, *key.as_bytes())
    };
    let label = Label {
        link: Some(id.clone()),
        library: library.info.id.clone(),
        path: display_path(&components),
        snapshot: (!options.follow).then_some(snapshot_id),
        link_key,
    };
    let label_plain = Zeroizing::new(serde_json::to_vec(&label).expect("serialises"));
    let label_sealed = session
        .keys
        .box_to(&session.keys.public_bytes(), &label_plain)?;
    let request = CreateLinkRequest {
        id: id.clone(),
        root: key.id(),
        follow: options.follow,
        pointer,
        label_sealed,
        password: options.password.as_ref().map(|p| p.to_string()),
        expires_in_secs: options.expires_in.map(|d| d.as_secs().max(1)),
    };
    let path_route = routes::library(routes::LIBRARY_LINKS, &library.info.id);
    let info: LinkInfo = session.remote.post(&path_route, &request, false)?;
    let pin = KnownServers::load(session.paths())?
        .servers
        .get(&session.server)
        .cloned();
    Ok(Created {
        url: url(
            &session.server,
            &id,
            options.follow,
            &fragment_key,
            pin.as_deref(),
        ),
        id,
        library: library.name,
        path: label.path,
        follow: options.follow,
        expires_at: info.expires_at,
    })
}

fn open_label(session: &Session, info: &LinkInfo) -> Option<Label> {
    let plain = session
        .keys
        .open_from(&session.keys.public_bytes(), &info.label_sealed)
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

impl Label {
    /// Whether this label was made for `info` as the server files it: the same library, and
    /// the same link where the label names one.
    fn matches(&self, info: &LinkInfo) -> bool {
        self.library == info.library_id && self.link.as_ref().is_none_or(|id| *id == info.id)
    }
}

fn my_links(session: &Session) -> Result<Vec<LinkInfo>> {
    Ok(session.remote.get::<LinkList>(routes::LINKS)?.links)
}

pub fn list(session: &Session) -> Result<Vec<LinkView>> {
    let names: std::collections::HashMap<String, String> = session
        .libraries()?
        .into_iter()
        .map(|l| (l.info.id.clone(), l.name))
        .collect();
    let now = now_secs();
    Ok(my_links(session)?
        .into_iter()
        .map(|info| {
            let label = open_label(session, &info);
            let state = if info.revoked_at.is_some() {
                "revoked"
            } else if info.expires_at.is_some_and(|at| at < now) {
                "expired"
            } else {
                "active"
            };
            // The label says which library the link was made for; the server's filing may lie.
            let named = label.as_ref().map_or(&info.library_id, |l| &l.library);
            let mut library = names
                .get(named)
                .cloned()
                .unwrap_or_else(|| "(deleted library)".into());
            if label.as_ref().is_some_and(|l| !l.matches(&info)) {
                library.push_str(" (MOVED by the server: not re-pointed)");
            }
            LinkView {
                library,
                path: label.as_ref().map(|l| l.path.clone()).unwrap_or_default(),
                snapshot: label.as_ref().and_then(|l| l.snapshot).map(|s| s.short()),
                follow: info.follow,
                password: info.has_password,
                created_at: info.created_at,
                expires_at: info.expires_at,
                state: state.into(),
                id: info.id,
            }
        })
        .collect())
}

/// Revokes the link whose id is or starts with `id`.
pub fn revoke(session: &Session, id: &str) -> Result<String> {
    let id = id.trim().to_lowercase();
    let matches: Vec<LinkInfo> = my_links(session)?
        .into_iter()
        .filter(|l| !id.is_empty() && l.id.starts_with(&id))
        .collect();
    let link = match matches.as_slice() {
        [one] => one,
        [] => {
            return Err(ClientError::Usage(format!(
                "you have no link `{id}`; `ibackup link list` shows yours"
            )))
        }
        _ => {
            return Err(ClientError::Usage(format!(
                "`{id}` matches {} links; give more of the id",
                matches.len()
            )))
        }
    };
    session
        .remote
        .delete(&routes::link(routes::LINK, &link.id))?;
    Ok(link.id.clone())
}

/// After a commit of `library` with root tree `root`: points every `--follow` link of it at
/// the same folder in the new root. Returns how many were re-pointed. Only the owner's
/// clients can (the labels are boxed to the owner); a folder that no longer exists leaves
/// its links showing the last version that had it.
pub fn repoint(session: &Session, library: &OpenLibrary, root: ObjectKey) -> Result<usize> {
    if !library.is_owner() {
        return Ok(0);
    }
    let now = now_secs();
    let store = Store::new(&session.remote, library);
    let mut moved = 0;
    let mut refused = Vec::new();
    for info in my_links(session)? {
        let live = info.follow
            && info.library_id == library.info.id
            && info.revoked_at.is_none()
            && info.expires_at.is_none_or(|at| at >= now);
        let Some(label) = live.then(|| open_label(session, &info)).flatten() else {
            continue;
        };
        if !label.matches(&info) {
            refused.push(info.id[..8].to_owned());
            continue;
        }
        let Some(link_key) = label
            .link_key
            .as_deref()
            .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
            .and_then(|k| SymmetricKey::from_slice(&k).ok())
        else {
            continue;
        };
        let components = restore::components(&label.path);
        let key = match folder_key(&store, root, &components, "the new snapshot") {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!("link {} not re-pointed: {e}", &info.id[..8]);
                continue;
            }
        };
        let update = PointerUpdate {
            root: key.id(),
            pointer: link_key.seal_bound(&pointer_context(&info.id), key.as_bytes()),
        };
        session
            .remote
            .put::<_, serde_json::Value>(&routes::link(routes::LINK_POINTER, &info.id), &update)?;
        moved += 1;
    }
    if !refused.is_empty() {
        return Err(ClientError::State(format!(
            "REFUSED to re-point link {}: the server files it under library `{}`, but the \
             link was made for another library or link. The server may be redirecting it; \
             its visitors keep what it showed. Tell the server's operator, and revoke it with \
             `ibackup link revoke ID`.",
            refused.join(", "),
            library.name
        )));
    }
    Ok(moved)
}

/// A link as typed: where the server is, which link, and the key from the fragment.
pub struct ParsedLink {
    pub server: reqwest::Url,
    pub id: String,
    pub follow: bool,
    key: Zeroizing<[u8; 32]>,
    pub pin: Option<String>,
}

pub fn parse(text: &str) -> Result<ParsedLink> {
    let bad = |why: &str| {
        ClientError::Usage(format!(
            "`{}` is not an ibackup link ({why}); copy the whole URL, with the part after `#`",
            text.split('#').next().unwrap_or_default()
        ))
    };
    let (address, fragment) = text
        .trim()
        .split_once('#')
        .ok_or_else(|| bad("no `#` part"))?;
    let mut server = parse_server_url(address).map_err(|e| bad(&e))?;
    let id = server
        .path()
        .strip_prefix("/l/")
        .filter(|id| crate::api::is_random_id(id))
        .ok_or_else(|| bad("the path is not /l/ and a link id"))?
        .to_owned();
    server.set_path("/");
    let (kind, rest) = fragment.split_at(fragment.len().min(1));
    let follow = match kind {
        "t" => false,
        "f" => true,
        _ => return Err(bad("unknown link kind")),
    };
    let (key_text, pin) = match rest.split_once('.') {
        Some((key, pin)) => (key, Some(format!("SHA256:{}", pin.to_lowercase()))),
        None => (rest, None),
    };
    let key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key_text)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("the key is damaged"))?;
    if server.scheme() == "https" && pin.is_none() {
        return Err(bad("it lacks the server's certificate fingerprint"));
    }
    Ok(ParsedLink {
        server,
        id,
        follow,
        key: Zeroizing::new(key),
        pin,
    })
}

/// A link's folder as an object source: blobs through the link's fetch route, opened with
/// the keys the folder's trees carry.
struct LinkSource<'a> {
    remote: &'a Remote,
    id: &'a str,
    token: String,
}

impl ObjectSource for LinkSource<'_> {
    fn load(&self, kind: BlobKind, keys: &[ObjectKey]) -> Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(keys.len());
        for group in keys.chunks(500) {
            let request = LinkFetchRequest {
                token: self.token.clone(),
                ids: group.iter().map(ObjectKey::id).collect(),
            };
            let body = self
                .remote
                .post_for_bytes(&routes::link(routes::LINK_FETCH, self.id), &request)?;
            let blobs = frame::split_frames(bytes::BytesMut::from(&body[..]))
                .map_err(|e| RemoteError::Protocol(e.to_string()))?;
            if blobs.len() != group.len() {
                return Err(RemoteError::Protocol("a link fetch answered short".into()).into());
            }
            for (key, blob) in group.iter().zip(blobs) {
                out.push(key.open(kind, blob)?);
            }
        }
        Ok(out)
    }
}

/// Downloads a link's folder into `target`; no account or login needed.
pub fn get(
    link: &ParsedLink,
    target: &Path,
    password: Option<Zeroizing<String>>,
) -> Result<RestoreSummary> {
    let remote = Remote::new(
        &link.server,
        link.pin.clone(),
        "the link's certificate".into(),
    )
    .map_err(ClientError::State)?;
    let request = OpenLinkRequest {
        password: password.as_ref().map(|p| p.to_string()),
    };
    let opened: OpenLinkResponse = remote
        .post(&routes::link(routes::LINK_OPEN, &link.id), &request, true)
        .map_err(|e| match e.code() {
            Some(ErrorCode::Unauthorized) if password.is_none() => ClientError::Usage(
                "this link needs a password: give it with --password-stdin or \
                 IBACKUP_LINK_PASSWORD"
                    .into(),
            ),
            _ => e.into(),
        })?;
    let key = if link.follow {
        let link_key = SymmetricKey::from_bytes(*link.key);
        let key = link_key
            .open_bound(&pointer_context(&link.id), &opened.pointer)
            .map_err(|_| {
                ClientError::State("the link's pointer does not open with its key".into())
            })?;
        ObjectKey::from_slice(&key)
            .ok_or(ClientError::State("the link's pointer is damaged".into()))?
    } else {
        ObjectKey::from_bytes(*link.key)
    };
    if key.id() != opened.root {
        return Err(ClientError::State(
            "the server answered with another folder than the link names; nothing was written"
                .into(),
        ));
    }
    let source = LinkSource {
        remote: &remote,
        id: &link.id,
        token: opened.token,
    };
    let tree = source.load_tree(&key)?;
    restore::restore_found(&source, Found::Folder(key, tree), target, Origin::Stranger)
}

/// Where `get` writes when no target is given: a new folder named after the link.
pub fn default_target(link: &ParsedLink) -> PathBuf {
    PathBuf::from(format!("ibackup-link-{}", &link.id[..8]))
}
